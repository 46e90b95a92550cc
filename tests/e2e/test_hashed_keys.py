"""Under the gateway's key hashing (tyk.conf ``hash_keys`` and ``hash_key_function``, as Tyk ships
it and operators run it), the plugin's session is the one native JWT keeps for the same subject:
one key and one quota per Auth0 subject, found and deleted through the Gateway API as native's is.

One stack per setting; the plugin is told the gateway's function through TYK_HASH_KEY_FUNCTION,
its server-wide variable, with every API carrying its own config_data.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin.devstack import gateway as gw
from plugin.devstack.procs import http_request
from plugin.devstack.stack import Stack
from plugin.session import key_id

pytestmark = pytest.mark.e2e

NATIVE = "/auth0-native/get"
PLUGIN_SUBJECT = "/auth0-plugin-subject/get"  # without the ID extractor: sessions per subject
PLUGIN = "/auth0-plugin/get"  # with the ID extractor: sessions per token, served from the gateway's cache

# (tyk.conf's hash_key_function, extra tyk.conf keys); the first is tyk.conf.example's own setting.
SETTINGS = [
    pytest.param(("murmur64", {}), id="murmur64"),
    pytest.param(("murmur128", {}), id="murmur128"),
    pytest.param(("sha256", {}), id="sha256"),
    pytest.param(("murmur32", {}), id="murmur32"),
    pytest.param(("", {}), id="no-function"),
    pytest.param(("murmur64", {"local_session_cache": {"disable_cached_session_state": True}}),
                 id="murmur64-no-session-cache"),
]


def hashed_stack(gateway_binary: Path, workdir: Path, gateway_fn: str, plugin_fn: str,
                 extra: dict[str, Any]) -> Stack:
    config = {"hash_keys": True, "hash_key_function": gateway_fn, "enable_hashed_keys_listing": True, **extra}
    env = {"TYK_HASH_KEY_FUNCTION": plugin_fn} if plugin_fn else {}
    return Stack(workdir=workdir, gateway_bin=gateway_binary, gateway_config=config, plugin_env=env)


@pytest.fixture(scope="module", params=SETTINGS)
def hashed(request: pytest.FixtureRequest, gateway_binary: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    function, extra = request.param
    with hashed_stack(gateway_binary, tmp_path_factory.mktemp("hashed"), function, function, extra) as running:
        yield running, function


def get(stack: Stack, path: str, token: str) -> int:
    return stack.get(path, headers={"Authorization": f"Bearer {token}"}).status


def new_subject() -> str:
    return f"hashed-{uuid.uuid4().hex[:12]}@clients"


def admin(stack: Stack) -> gw.Gateway:
    assert stack.gateway is not None
    return stack.gateway


def key_hashes(stack: Stack) -> set[str]:
    """Every session's storage hash, from the Gateway API (enable_hashed_keys_listing)."""
    result = admin(stack).admin("GET", "/tyk/keys")
    assert result.status == 200, result.text
    return set(result.json()["keys"])


def auth_calls(stack: Stack) -> float:
    text = http_request("GET", stack.metrics_url + "/metrics").text
    pattern = r'^tyk_auth0_requests_total\{[^}]*hook="auth_check"[^}]*outcome="ok"[^}]*\} (\S+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


def test_the_walkthrough_passes_through_the_plugin_and_native_jwt(hashed: tuple[Stack, str]) -> None:
    stack, _ = hashed
    token = stack.request_token()
    assert [get(stack, PLUGIN, token), get(stack, NATIVE, token)] == [200, 200]


def test_native_jwt_and_the_plugin_share_the_subjects_quota_across_a_renewed_token(
        hashed: tuple[Stack, str]) -> None:
    stack, _ = hashed
    subject = new_subject()
    first = stack.token(sub=subject, pol="quota3")
    renewed = stack.token(sub=subject, pol="quota3", jti=uuid.uuid4().hex)  # another token string
    assert [get(stack, NATIVE, first), get(stack, PLUGIN_SUBJECT, first), get(stack, NATIVE, renewed),
            get(stack, PLUGIN_SUBJECT, renewed), get(stack, NATIVE, renewed)] == [200, 200, 200, 403, 403]


@pytest.mark.parametrize("path", [NATIVE, PLUGIN_SUBJECT, PLUGIN])
def test_the_policy_rate_limit_answers_429_at_the_fourth_request(hashed: tuple[Stack, str], path: str) -> None:
    stack, _ = hashed
    token = stack.token(sub=new_subject(), pol="limited")  # 3 per 60 s
    assert [get(stack, path, token) for _ in range(4)] == [200, 200, 200, 429]


def test_the_gateway_api_finds_the_plugins_session_by_natives_key_id_and_by_its_hash(
        hashed: tuple[Stack, str]) -> None:
    stack, function = hashed
    subject = new_subject()
    token = stack.token(sub=subject)
    before = key_hashes(stack)
    assert get(stack, PLUGIN_SUBJECT, token) == 200
    created = key_hashes(stack) - before
    assert len(created) == 1
    assert get(stack, NATIVE, token) == 200
    assert key_hashes(stack) - before == created  # native found the plugin's session: no second key
    native_key = key_id(gw.ORG_ID, subject, function)
    if function == "sha256":
        assert created == {hashlib.sha256(native_key.encode()).hexdigest()}
    by_key = admin(stack).admin("GET", f"/tyk/keys/{native_key}")
    by_hash = admin(stack).admin("GET", f"/tyk/keys/{created.pop()}?hashed=true")
    assert (by_key.status, by_hash.status) == (200, 200), (by_key.text, by_hash.text)
    assert by_key.json()["alias"] == by_hash.json()["alias"] == subject


@pytest.mark.parametrize("path", [NATIVE, PLUGIN_SUBJECT])
def test_deleting_the_subjects_key_through_the_gateway_api_resets_its_quota(
        hashed: tuple[Stack, str], path: str) -> None:
    stack, function = hashed
    subject = new_subject()
    token = stack.token(sub=subject, pol="quota3")
    assert [get(stack, path, token) for _ in range(4)] == [200, 200, 200, 403]
    native_key = key_id(gw.ORG_ID, subject, function)
    assert admin(stack).admin("DELETE", f"/tyk/keys/{native_key}").status == 200
    assert admin(stack).admin("GET", f"/tyk/keys/{native_key}").status == 404
    assert [get(stack, path, token) for _ in range(4)] == [200, 200, 200, 403]


def test_with_the_id_extractor_the_gateway_api_keys_the_session_by_the_header_value(
        hashed: tuple[Stack, str]) -> None:
    """docs/troubleshooting.md: the gateway keys extractor sessions by the header value, so the
    subject's key id finds nothing and only the header's resets the token's quota."""
    stack, function = hashed
    subject = new_subject()
    token = stack.token(sub=subject, pol="quota3")
    assert [get(stack, PLUGIN, token) for _ in range(4)] == [200, 200, 200, 403]
    assert admin(stack).admin("DELETE", f"/tyk/keys/{key_id(gw.ORG_ID, subject, function)}").status == 404
    header_key = key_id(gw.ORG_ID, f"Bearer {token}", function)
    assert admin(stack).admin("DELETE", f"/tyk/keys/{header_key}").status == 200
    assert get(stack, PLUGIN, token) == 200


def test_the_id_extractor_serves_repeats_from_the_gateway_cache_never_past_exp(hashed: tuple[Stack, str]) -> None:
    stack, _ = hashed
    token = stack.token(sub=new_subject(), lifetime=3)
    before = auth_calls(stack)
    assert [get(stack, PLUGIN, token) for _ in range(3)] == [200, 200, 200]
    assert auth_calls(stack) - before == 1
    time.sleep(3.2)
    expired = stack.get(PLUGIN, headers={"Authorization": f"Bearer {token}"})
    assert (expired.status, expired.body) == (401, b'{\n    "error": "Key not authorized: token has expired"\n}')


def test_a_plugin_left_without_the_gateways_hash_function_keeps_a_second_key_per_subject(
        gateway_binary: Path, tmp_path: Path) -> None:
    """docs/troubleshooting.md: the symptom of a missing TYK_HASH_KEY_FUNCTION under tyk.conf's
    murmur64. Every request passes, but native JWT and the plugin count the subject's quota
    apart, and the Gateway API finds no key under native's id for a subject only the plugin saw."""
    with hashed_stack(gateway_binary, tmp_path, "murmur64", "", {}) as stack:
        subject = new_subject()
        token = stack.token(sub=subject, pol="quota3")
        statuses = [get(stack, path, token) for path in (NATIVE, PLUGIN_SUBJECT, NATIVE, PLUGIN_SUBJECT)]
        alone = new_subject()
        assert get(stack, PLUGIN_SUBJECT, stack.token(sub=alone)) == 200
        lookup = admin(stack).admin("GET", f"/tyk/keys/{key_id(gw.ORG_ID, alone, 'murmur64')}")
    assert statuses == [200, 200, 200, 200]
    assert lookup.status == 404
