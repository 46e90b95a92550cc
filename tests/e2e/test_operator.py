"""Operator view of a running stack: call counting through metrics, health, and `check` against the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from plugin.devstack.procs import http_request
from tests.e2e.test_differential import CASES, PLUGIN, auth_calls, send

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_with_the_id_extractor_repeats_are_served_by_the_gateway_without_a_plugin_call(plugin_stack, subject):
    token = plugin_stack.token(sub=subject)
    before = auth_calls(plugin_stack)
    statuses = [plugin_stack.get("/auth0-plugin/get", token=token).status for _ in range(6)]
    assert statuses == [200] * 6
    assert auth_calls(plugin_stack) - before == 1


def test_without_the_id_extractor_every_request_calls_the_plugin(plugin_stack, subject):
    token = plugin_stack.token(sub=subject)
    before = auth_calls(plugin_stack)
    assert [plugin_stack.get("/auth0-plugin-subject/get", token=token).status for _ in range(3)] == [200] * 3
    assert auth_calls(plugin_stack) - before == 3


def test_health_endpoints_answer_on_a_serving_stack(plugin_stack):
    assert http_request("GET", plugin_stack.metrics_url + "/healthz").status == 200
    assert http_request("GET", plugin_stack.metrics_url + "/readyz").status == 200


def test_metrics_count_refusals_by_reason(plugin_stack, subject):
    expired = plugin_stack.token(sub=subject, lifetime=-60)
    before = auth_calls(plugin_stack, "expired")
    assert plugin_stack.get("/auth0-plugin/get", token=expired).status == 401
    assert auth_calls(plugin_stack, "expired") - before == 1
    text = http_request("GET", plugin_stack.metrics_url + "/metrics").text
    assert "tyk_auth0_verify_seconds_bucket" in text
    assert "tyk_auth0_jwks_age_seconds" in text


def test_check_explains_every_corpus_token_as_the_gateway_answers(plugin_stack, tmp_path, capsys):
    config = tmp_path / "config_data.json"
    config.write_text(json.dumps(plugin_stack.config_data()))
    agree, compared = 0, 0
    for case in CASES:
        authorization = case.authorization(plugin_stack, f"check-{uuid.uuid4().hex[:8]}@clients")
        if authorization is None or not authorization.lower().startswith("bearer "):
            continue  # check takes a token; the header forms are the gateway's business
        token = authorization[7:]
        if not token:
            continue
        status, body = send(plugin_stack, PLUGIN, authorization)
        if status == 431:
            continue  # the gateway refused the header before any auth
        result = subprocess.run(
            [sys.executable, "-m", "plugin", "check", "--config-data", str(config), "--token", "-", "--json",
             "--org-id", "default", "--api-id", "auth0-plugin", "--tyk-policies", str(plugin_stack.workdir / "gateway" / "policies")],
            input=token, capture_output=True, text=True, cwd=ROOT, timeout=60)
        report = json.loads(result.stdout)
        compared += 1
        if status == 200:
            ok = report["verdict"] == "pass" and result.returncode == 0
        else:
            expected = json.loads(body)
            ok = report["response"] == {"status": status, "body": expected}
        agree += ok
        assert ok, (case.name, status, body, report["response"], report["failed_step"])
    with capsys.disabled():
        print(f"\ncheck: {agree} of {compared} corpus tokens explained with the gateway's exact answer")
    assert compared >= 25
