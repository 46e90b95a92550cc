"""The built-in Auth0ClaimsToHeaders post-key-auth hook, called by the real gateway.

The upstream must see the verified claims as headers (never a client's own spelling of them),
no token when ``strip_authorization`` is on, and the request's method, query and body exactly
as the client sent them: the gateway rebuilds the request from the hook's reply.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
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
