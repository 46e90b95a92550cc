"""Chaos through the real gateway (short faults): valid tokens keep passing, forged ones never do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.devstack import chaos
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chaos_stack(gateway_binary: Path, tmp_path_factory) -> Iterator[Stack]:
    with chaos.chaos_stack(gateway_binary, tmp_path_factory.mktemp("chaos")) as stack:
        assert stack.plugin is not None, "the chaos stack started without the plugin server"
        yield stack


def report(row: chaos.Row, capsys) -> None:
    with capsys.disabled():
        print("\n" + chaos.table([row]).splitlines()[-1] + (f"  ({row.note})" if row.note else ""))


def test_jwks_outage_rejects_no_valid_token(chaos_stack, capsys):
    row = chaos.jwks_outage(chaos_stack, 12.0)
    report(row, capsys)
    assert row.valid > 100
    assert row.valid_refused == 0
    assert row.forged_let_in == 0


@pytest.mark.parametrize("fault", [chaos.jwks_html, chaos.jwks_empty], ids=["an_html_page", "no_keys"])
def test_a_jwks_answering_200_without_usable_keys_rejects_no_valid_token(chaos_stack, capsys, fault):
    row = fault(chaos_stack, 12.0)
    report(row, capsys)
    assert row.valid > 100 and row.jwks_fetches
    assert row.valid_refused == 0
    assert row.forged_let_in == 0


def test_a_hung_jwks_holds_no_valid_request_beyond_the_fetch_deadline(chaos_stack, capsys):
    row = chaos.jwks_hang(chaos_stack, 12.0)
    report(row, capsys)
    assert row.valid > 100 and row.jwks_fetches
    assert row.valid_refused == 0
    assert row.forged_let_in == 0
    assert row.latency_during is not None and row.latency_during.requests > 50
    assert row.latency_during.max_ms < (chaos.FETCH_DEADLINE + 2.0) * 1000


def test_rotation_rejects_no_valid_token_and_fetches_within_the_bound(chaos_stack, capsys):
    row = chaos.rotation(chaos_stack, 8.0)
    report(row, capsys)
    assert row.valid_refused == 0 and row.forged_let_in == 0
    assert row.jwks_fetches is not None and row.jwks_fetches <= row.jwks_fetch_bound


def test_unknown_kid_flood_stays_within_the_jwks_fetch_bound(chaos_stack, capsys):
    row = chaos.unknown_kid_flood(chaos_stack, 10_000)
    report(row, capsys)
    assert row.forged >= 10_000 and row.forged_let_in == 0
    assert row.jwks_fetches <= row.jwks_fetch_bound


def test_plugin_restart_lets_no_forged_token_in_and_resumes(chaos_stack, capsys):
    row = chaos.plugin_restart(chaos_stack, 2.0)
    report(row, capsys)
    assert row.forged_let_in == 0
    assert "resumed" in row.note and "not within" not in row.note
    refused_while_down = {k: v for k, v in row.statuses.items() if k.startswith("valid") and not k.endswith("200")}
    assert set(refused_while_down) <= {"valid 403 Key not authorised"}


def test_redis_restart_lets_no_forged_token_in(chaos_stack, capsys):
    row = chaos.redis_restart(chaos_stack, 2.0)
    report(row, capsys)
    assert row.forged_let_in == 0
    assert row.valid > 0
