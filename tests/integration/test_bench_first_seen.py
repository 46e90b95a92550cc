"""The gateway suite's first-seen load really sends each token once, from its own slice."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.gateway_suite import mint_first_seen, wrk
from tests.support.http_servers import serving


class FakeIdp:
    def issue_token(self, client_id: str, **claims: Any) -> str:
        return f"{client_id}.{claims['sub']}"


class FakeStack:
    client_id = "client"
    idp = FakeIdp()


class Recorder(BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:  # http.server's method name
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as base:
        yield f"{base}/get", seen


def test_slices_are_disjoint_and_each_token_names_its_own_client(tmp_path: Path) -> None:
    slices = mint_first_seen(FakeStack(), tmp_path, slices=3, per_slice=5)
    lines = (tmp_path / "first-seen-tokens.txt").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 15
    assert [s.offset for s in slices] == [0, 5, 10]
    assert all(s.size == 5 and s.script == slices[0].script for s in slices)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (Debian package wrk)")
def test_wrk_sends_each_token_of_its_slice_once_in_order(tmp_path: Path, recorder: tuple[str, list[str]]) -> None:
    url, seen = recorder
    slices = mint_first_seen(FakeStack(), tmp_path, slices=2, per_slice=50_000)
    result = wrk(url, slices[1], connections=1, duration=1, latency=False)
    assert 0 < result["requests"] < 50_000, "the slice must outlast the run"
    sent = [int(token.removeprefix("Bearer client.bench-client-").removesuffix("@clients")) for token in seen]
    # wrk calls request() once before it sends anything, so the slice's first token may go unsent
    assert sent[0] in (50_000, 50_001)
    assert sent == list(range(sent[0], sent[0] + len(sent)))
