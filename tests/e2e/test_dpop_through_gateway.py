"""DPoP through the real gateway: the stack's /auth0-plugin-dpop/ API (dpop: required, with the
bundle's ID extractor) takes Auth0-style DPoP-bound tokens with a fresh proof per request."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from plugin.devstack import gateway as gw
from plugin.devstack.idp import DPoPKey
from plugin.devstack.procs import HTTPResult, http_request
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e

DPOP_PATH = f"/{gw.PLUGIN_DPOP_API_ID}/get"


@pytest.fixture()
def client() -> DPoPKey:
    return DPoPKey.generate()


def bound_token(stack: Stack, client: DPoPKey, subject: str) -> str:
    return stack.token(sub=subject, claims={"cnf": {"jkt": client.thumbprint}})


def send(stack: Stack, token: str, proof: str | None, method: str = "GET", path: str = DPOP_PATH,
         scheme: str = "DPoP") -> HTTPResult:
    headers = {"Accept": "application/json", "Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return stack.request(method, path, headers=headers)


def plugin_grants(stack: Stack) -> float:
    """Auth checks the plugin has granted so far (its /metrics)."""
    text = http_request("GET", stack.metrics_url + "/metrics").text
    pattern = r'^tyk_auth0_requests_total\{[^}]*hook="auth_check"[^}]*outcome="ok"[^}]*\} (\S+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


def test_a_token_requested_with_a_proof_is_granted_with_a_proof_of_the_same_key(plugin_stack: Stack,
                                                                                 client: DPoPKey) -> None:
    """The whole Auth0 flow: /oauth/token with a DPoP header, then the API call with a fresh proof."""
    response = http_request("POST", plugin_stack.token_url, headers={"DPoP": client.proof("POST", plugin_stack.token_url)},
                            body={"client_id": plugin_stack.client_id, "client_secret": plugin_stack.client_secret,
                                  "audience": plugin_stack.audience, "grant_type": "client_credentials"})
    assert response.status == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    token = response.json()["access_token"]
    result = send(plugin_stack, token, client.proof("GET", plugin_stack.url + DPOP_PATH, token))
    assert result.status == 200, result.text
    assert result.json()["path"] == "/get"


def test_a_replayed_proof_is_refused_with_the_dpop_challenge(plugin_stack: Stack, client: DPoPKey,
                                                             subject: str) -> None:
    token = bound_token(plugin_stack, client, subject)
    proof = client.proof("GET", plugin_stack.url + DPOP_PATH, token)
    assert send(plugin_stack, token, proof).status == 200
    replayed = send(plugin_stack, token, proof)
    assert replayed.status == 401, replayed.text
    assert replayed.json() == {"error": "Key not authorized: DPoP proof has already been used"}
    assert replayed.headers["www-authenticate"] == 'DPoP error="invalid_dpop_proof", algs="ES256 EdDSA PS256 RS256"'


def test_a_fresh_proof_on_the_next_request_reaches_the_plugin_not_the_gateway_cache(plugin_stack: Stack,
                                                                                    client: DPoPKey,
                                                                                    subject: str) -> None:
    token = bound_token(plugin_stack, client, subject)
    url = plugin_stack.url + DPOP_PATH
    assert send(plugin_stack, token, client.proof("GET", url, token)).status == 200
    before = plugin_grants(plugin_stack)
    assert send(plugin_stack, token, client.proof("GET", url, token)).status == 200
    assert plugin_grants(plugin_stack) == before + 1


def test_a_proof_for_another_url_is_refused(plugin_stack: Stack, client: DPoPKey, subject: str) -> None:
    token = bound_token(plugin_stack, client, subject)
    result = send(plugin_stack, token, client.proof("GET", f"{plugin_stack.url}/{gw.PLUGIN_API_ID}/get", token))
    assert (result.status, result.json()) == (401, {"error": "Key not authorized: DPoP proof htu does not match the "
                                                             "request URL"})


def test_a_proof_for_another_method_is_refused(plugin_stack: Stack, client: DPoPKey, subject: str) -> None:
    token = bound_token(plugin_stack, client, subject)
    result = send(plugin_stack, token, client.proof("GET", plugin_stack.url + DPOP_PATH, token), method="POST")
    assert (result.status, result.json()) == (401, {"error": "Key not authorized: DPoP proof htm does not match the "
                                                             "request method"})


def test_a_bound_token_sent_as_bearer_is_refused(plugin_stack: Stack, client: DPoPKey, subject: str) -> None:
    result = send(plugin_stack, bound_token(plugin_stack, client, subject), None, scheme="Bearer")
    assert (result.status, result.json()) == (401, {"error": "Key not authorized: DPoP-bound token must be sent "
                                                             "with the DPoP scheme"})


def test_a_bound_token_granted_as_bearer_where_dpop_is_off_is_not_then_served_on_the_dpop_api(
        plugin_stack: Stack, client: DPoPKey, subject: str) -> None:
    """The gateway's ID extractor shares a session among an org's APIs: the API with DPoP off grants
    a bound token as Bearer, as native JWT does, but never lets the gateway keep that session, so the
    DPoP API still calls the plugin, which refuses it."""
    token = bound_token(plugin_stack, client, subject)
    plain = f"/{gw.PLUGIN_API_ID}/get"
    assert send(plugin_stack, token, None, path=plain, scheme="Bearer").status == 200
    before = plugin_grants(plugin_stack)
    assert send(plugin_stack, token, None, path=plain, scheme="Bearer").status == 200
    assert plugin_grants(plugin_stack) == before + 1  # the plugin was asked again, not the gateway's cache
    result = send(plugin_stack, token, None, scheme="Bearer")
    assert (result.status, result.json()) == (401, {"error": "Key not authorized: DPoP-bound token must be sent "
                                                             "with the DPoP scheme"})


def test_the_dpop_client_the_banner_prints_gets_200s_then_401_for_the_replay(plugin_stack: Stack) -> None:
    command = plugin_stack.curl_commands().splitlines()[-1]
    assert "-m plugin.devstack.dpop_client" in command
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, cwd=gw.REPO_ROOT,
                            env={**os.environ, "PYTHONPATH": str(gw.REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    first, *calls = result.stdout.splitlines()
    assert first.startswith("token_type DPoP")
    answers = {line[:22].strip(): line[23:26] for line in calls}
    assert answers == {"call 1, fresh proof": "200", "call 2, fresh proof": "200", "the last proof again": "401",
                       "as a bearer token": "401"}
