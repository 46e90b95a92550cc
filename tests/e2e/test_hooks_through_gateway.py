"""The built-in Auth0ClaimsToHeaders post-key-auth hook, called by the real gateway.

The upstream must see the verified claims as headers (never a client's own spelling of them),
no token when ``strip_authorization`` is on, and the request's method, query and body exactly
as the client sent them: the gateway rebuilds the request from the hook's reply.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin.devstack import gateway as gw
from plugin.devstack.procs import http_request
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e

HOOKS_API = "auth0-plugin-hooks"
HOOKS_POLICY = "hooks-policy"  # the walkthrough's policies grant only the walkthrough's APIs


@pytest.fixture(scope="module")
def hooks_url(plugin_stack: Stack) -> Iterator[str]:
    manifest = copy.deepcopy(gw.load_manifest())
    manifest["custom_middleware"]["post_key_auth"] = [{"name": "Auth0ClaimsToHeaders"}]
    config = dict(plugin_stack.config_data(), strip_authorization=True,
                  claims_to_headers={"sub": "X-Auth0-Sub", "scope": "X-Auth0-Scope"})
    assert plugin_stack.upstream is not None
    api = gw.plugin_api(plugin_stack.upstream.url, config, bundle=None, manifest=manifest,
                        api_id=HOOKS_API, listen_path=f"/{HOOKS_API}/")
    gateway = plugin_stack.gateway
    assert gateway is not None
    gateway.put_policy(gw.policy(HOOKS_POLICY, [HOOKS_API]))
    gateway.put_api(api)
    gateway.reload()
    url = f"{gateway.url}/{HOOKS_API}"
    # The plugin learns a new policy on its next policy-list refresh (a refusal asks for one at once).
    assert wait_until(lambda: http_request("GET", f"{url}/anything",
                                           headers={"Authorization": f"Bearer {token(plugin_stack)}"}).status == 200)
    try:
        yield url
    finally:
        gateway.remove_api(HOOKS_API)
        gateway.reload()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.2)
    return True


def token(stack: Stack, **claims: Any) -> str:
    return stack.token(sub=f"hooks-{uuid.uuid4().hex[:10]}@clients", pol=HOOKS_POLICY, **claims)


def claims_of(issued: str) -> dict[str, Any]:
    payload = issued.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def forwarded(method: str, url: str, token: str, *, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
    result = http_request(method, url, headers={"Authorization": f"Bearer {token}", **(headers or {})},
                          body=body, timeout=30)
    assert result.status == 200, (result.status, result.body[:200])
    return json.loads(result.body)


def test_verified_claims_reach_the_upstream_as_headers_and_the_token_does_not(plugin_stack, hooks_url):
    issued = token(plugin_stack, scope="read:x write:y")
    subject = claims_of(issued)["sub"]
    echo = forwarded("GET", f"{hooks_url}/anything?a=1&b=two", issued)
    headers = {name.lower(): value for name, value in echo["headers"].items()}
    assert headers["x-auth0-sub"] == subject
    assert headers["x-auth0-scope"] == "read:x write:y"
    assert "authorization" not in headers
    assert echo["args"] == {"a": "1", "b": "two"} and echo["method"] == "GET"


def test_a_client_s_own_claim_header_is_replaced_in_every_spelling(plugin_stack, hooks_url):
    issued = token(plugin_stack)
    subject = claims_of(issued)["sub"]
    echo = forwarded("GET", f"{hooks_url}/anything", issued,
                     headers={"X-Auth0-Sub": "admin@clients", "X_Auth0_Sub": "admin@clients"})
    values = [value for name, value in echo["headers"].items() if name.lower().replace("_", "-") == "x-auth0-sub"]
    assert values == [subject]


def test_a_large_body_passes_the_hook_unchanged(plugin_stack, hooks_url):
    # The gateway sends the body twice (body and raw_body) and reads replies up to 4 MiB by default:
    # a reply that echoed both copies of a 3 MiB body would fail there.
    body = ("é" * (3 * 1024 * 1024 // 2)).encode()
    echo = forwarded("POST", f"{hooks_url}/anything", token(plugin_stack), body=body, headers={"Content-Type": "text/plain; charset=utf-8"})
    assert echo["data"].encode() == body and echo["method"] == "POST"


# -- a hooks file in Tyk's plugin style (tests/support/tyk_style_hooks.py), through the gateway ----------

TYK_STYLE_HOOKS = Path(__file__).resolve().parents[1] / "support" / "tyk_style_hooks.py"
TYK_STYLE_APIS: dict[str, dict[str, list[str]]] = {  # API id -> manifest slot -> hook names, in call order
    "tyk-style": {"pre": ["StampRequest", "TidyRequest", "CheckUploadBody"],
                  "post_key_auth": ["GreetCaller", "RequireEuPlan"], "post": ["RerouteLegacyOrders"],
                  "response": ["TagResponse", "SetTwoCookies"]},
    "tyk-style-answer": {"pre": ["AnswerFromQuery"]},  # answers before auth, so it has an API of its own
    "tyk-style-body": {"response": ["ReplaceUpstreamBody"]},  # would hide the echo the other tests read
}


def eu_token(stack: Stack, **claims: Any) -> str:
    """A token whose claims pass RequireEuPlan unless ``claims`` say otherwise."""
    return token(stack, **{"plan": {"tier": "gold"}, "region": "eu", **claims})


@pytest.fixture(scope="module")
def tyk_style_urls(plugin_stack: Stack) -> Iterator[dict[str, str]]:
    """The plugin restarted with the Tyk-style hooks file, and one API per hook set that needs its own."""
    original = plugin_stack.plugin_args
    plugin_stack.plugin_args = (*original, "--hooks", str(TYK_STYLE_HOOKS))
    plugin_stack.restart_plugin()
    gateway = plugin_stack.gateway
    assert gateway is not None and plugin_stack.upstream is not None
    config = dict(plugin_stack.config_data(), session_metadata_claims=["sub", "plan", "region"])
    for api_id, slots in TYK_STYLE_APIS.items():
        manifest = copy.deepcopy(gw.load_manifest())
        for slot, names in slots.items():
            manifest["custom_middleware"][slot] = [{"name": name} for name in names]
        gateway.put_api(gw.plugin_api(plugin_stack.upstream.url, config, bundle=None, manifest=manifest,
                                      api_id=api_id, listen_path=f"/{api_id}/"))
    gateway.put_policy(gw.policy(HOOKS_POLICY, [HOOKS_API, *TYK_STYLE_APIS]))
    gateway.reload()
    urls = {api_id: f"{gateway.url}/{api_id}" for api_id in TYK_STYLE_APIS}
    assert wait_until(lambda: http_request("GET", f"{urls['tyk-style']}/anything",
                                           headers={"Authorization": f"Bearer {eu_token(plugin_stack)}"}).status == 200)
    try:
        yield urls
    finally:
        for api_id in TYK_STYLE_APIS:
            gateway.remove_api(api_id)
        gateway.put_policy(gw.policy(HOOKS_POLICY, [HOOKS_API]))
        gateway.reload()
        plugin_stack.plugin_args = original
        plugin_stack.restart_plugin()


def header_values(url: str, name: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Every value of one response header: http_request keeps only the last of a repeated header."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.headers.get_all(name) or []
    finally:
        conn.close()


def test_tyk_style_request_hooks_edit_headers_and_query_before_the_upstream(plugin_stack, tyk_style_urls):
    result = http_request("GET", f"{tyk_style_urls['tyk-style']}/anything?debug=1&keep=2",
                          headers={"Authorization": f"Bearer {eu_token(plugin_stack)}", "X-Debug-Token": "t0k"})
    assert result.status == 200, (result.status, result.body[:200])
    echo = result.json()
    headers = {name.lower(): value for name, value in echo["headers"].items()}
    assert headers["x-stamped-by"] == "tyk-style-hooks" and headers["x-debug-token-removed"] == "true"
    assert "x-debug-token" not in headers
    assert echo["args"] == {"keep": "2", "via": "gateway"}


def test_tyk_style_response_hooks_add_a_header_and_two_cookies(plugin_stack, tyk_style_urls):
    url = f"{tyk_style_urls['tyk-style']}/anything"
    authorization = {"Authorization": f"Bearer {eu_token(plugin_stack)}"}
    assert header_values(url, "Set-Cookie", authorization) == (200, ["theme=dark; Path=/", "lang=fr; Path=/; Secure"])
    assert http_request("GET", url, headers=authorization).headers["x-upstream-status"] == "200"


def test_a_tyk_style_pre_hook_refuses_a_json_body_that_is_not_an_object(plugin_stack, tyk_style_urls):
    url = f"{tyk_style_urls['tyk-style']}/anything"
    headers = {"Authorization": f"Bearer {eu_token(plugin_stack)}", "Content-Type": "application/json"}
    refused = http_request("POST", url, headers=headers, body=b"[7]")
    assert refused.status == 400 and "the body must be a JSON object" in refused.text
    assert http_request("POST", url, headers=headers, body=b'{"id": 7}').status == 200


@pytest.mark.parametrize(("claims", "reason"), [
    ({"region": "us"}, "this API serves the eu region only"),
    ({"plan": None}, "the token carries no plan"),
    ({"plan": {"seats": 3}}, "the plan names no tier"),
])
def test_a_tyk_style_post_key_auth_hook_refuses_on_session_metadata(plugin_stack, tyk_style_urls, claims, reason):
    result = http_request("GET", f"{tyk_style_urls['tyk-style']}/anything",
                          headers={"Authorization": f"Bearer {eu_token(plugin_stack, **claims)}"})
    assert result.status == 403 and reason in result.text


@pytest.mark.parametrize(("query", "status", "body"), [
    # Below 400 the gateway sends the body (or the error) as it is; from 400 it wraps it in its
    # error template, unless override_error is set.
    ("", 200, "answered as a body"),
    ("code=200&as=error", 200, "answered as an error"),
    ("code=403", 403, '{\n    "error": "answered as a body"\n}'),
    ("code=403&as=error", 403, '{\n    "error": "answered as an error"\n}'),
    ("code=403&raw=yes", 403, "answered as a body"),
    ("code=401&as=error&raw=yes", 401, "answered as an error"),
])
def test_tyk_style_return_overrides_answer_as_the_gateway_renders_them(tyk_style_urls, query, status, body):
    result = http_request("GET", f"{tyk_style_urls['tyk-style-answer']}/?{query}")
    assert (result.status, result.text) == (status, body) and result.headers.get("x-answered-by") == "AnswerFromQuery"


def test_a_tyk_style_response_hook_replaces_the_upstream_body(plugin_stack, tyk_style_urls):
    result = http_request("GET", f"{tyk_style_urls['tyk-style-body']}/anything",
                          headers={"Authorization": f"Bearer {eu_token(plugin_stack)}"})
    assert (result.status, result.body) == (200, b"replaced by ReplaceUpstreamBody")
