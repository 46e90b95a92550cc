"""The session really comes from the token's policy claim, and the gateway enforces it."""

from __future__ import annotations

import json
import threading
import time

import pytest

from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e

UNEXPECTED_BODY = b'{\n    "error": "Key not authorized: Unexpected signing method"\n}'


def get(stack: Stack, path: str, token: str):
    return stack.get(path, headers={"Accept": "application/json", "Authorization": f"Bearer {token}"})


def test_the_auth0_walkthrough_passes_through_the_plugin(plugin_stack: Stack) -> None:
    token = plugin_stack.request_token()  # POST /oauth/token with the walkthrough's JSON body
    result = get(plugin_stack, "/auth0-plugin/get", token)
    assert result.status == 200, result.text
    assert result.json()["path"] == "/get"


def test_wrong_algorithm_gets_the_walkthroughs_error_through_the_plugin(plugin_stack: Stack, subject: str) -> None:
    result = get(plugin_stack, "/auth0-plugin/get", plugin_stack.token(sub=subject, alg="HS256"))
    assert result.status == 403
    assert result.body == UNEXPECTED_BODY


def test_rate_limit_of_the_token_policy_gives_429_at_the_fourth_request(plugin_stack: Stack, subject: str) -> None:
    token = plugin_stack.token(sub=subject, pol="limited")  # rate 3 per 60 s
    statuses = [get(plugin_stack, "/auth0-plugin/get", token).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize("path", ["/auth0-native/get", "/auth0-plugin-subject/get", "/auth0-plugin/get"])
def test_rate_limit_of_the_token_policy_holds_across_seconds(plugin_stack: Stack, subject: str, path: str) -> None:
    """The gateway's rate limiter buckets by key and the session's last_updated: the plugin leaves it
    empty, as native JWT does, so requests in later seconds count against the same 3 per 60 s."""
    token = plugin_stack.token(sub=subject, pol="limited")
    statuses = []
    for _ in range(5):
        statuses.append(get(plugin_stack, path, token).status)
        time.sleep(0.6)
    assert statuses == [200, 200, 200, 429, 429]


def test_quota_of_the_token_policy_gives_403_quota_exceeded(plugin_stack: Stack, subject: str) -> None:
    token = plugin_stack.token(sub=subject, pol="quota3")
    results = [get(plugin_stack, "/auth0-plugin/get", token) for _ in range(4)]
    assert [r.status for r in results] == [200, 200, 200, 403]
    assert results[3].body == b'{\n    "error": "Quota exceeded"\n}'


def test_policy_without_access_to_the_api_is_403_disallowed(plugin_stack: Stack, subject: str) -> None:
    result = get(plugin_stack, "/auth0-plugin/get", plugin_stack.token(sub=subject, pol="no-access"))
    assert result.status == 403
    assert result.body == b'{\n    "error": "Access to this API has been disallowed"\n}'


def test_quota_belongs_to_the_auth0_subject_and_survives_a_renewed_token(plugin_stack: Stack, subject: str) -> None:
    path = "/auth0-plugin-subject/get"
    first = plugin_stack.token(sub=subject, pol="quota3")
    assert [get(plugin_stack, path, first).status for _ in range(2)] == [200, 200]
    time.sleep(1.1)  # a renewed token: new iat/exp, so a different token string
    renewed = plugin_stack.token(sub=subject, pol="quota3")
    assert renewed != first
    assert [get(plugin_stack, path, renewed).status for _ in range(2)] == [200, 403]


def test_native_jwt_and_the_plugin_share_one_key_per_subject(plugin_stack: Stack, subject: str) -> None:
    token = plugin_stack.token(sub=subject, pol="quota3")
    assert get(plugin_stack, "/auth0-native/get", token).status == 200
    assert get(plugin_stack, "/auth0-plugin-subject/get", token).status == 200
    assert get(plugin_stack, "/auth0-native/get", token).status == 200
    assert get(plugin_stack, "/auth0-plugin-subject/get", token).status == 403  # the 4th on the same quota


def test_key_rotation_while_requests_flow_rejects_no_valid_token(plugin_stack: Stack) -> None:
    """Through the plugin no valid token is refused; native JWT's figure is printed beside it."""
    idp = plugin_stack.idp
    assert idp is not None and plugin_stack.gateway is not None
    statuses: list[int] = []
    native: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            token = plugin_stack.token(sub=f"rotation-{n % 20}@clients")
            statuses.append(get(plugin_stack, "/auth0-plugin/get", token).status)
            native.append(get(plugin_stack, "/auth0-native/get", token).status)
            n += 1

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(3):
            time.sleep(2.5)
            idp.rotate()  # next becomes current (already published); a new next appears
        time.sleep(2.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        plugin_stack.gateway.flush_jwks_cache()  # native JWT needs this after a rotation; later tests use native
    rejected = [s for s in statuses if s != 200]
    print(f"\nrotation: {len(statuses)} requests per API across 3 rotations; rejected: plugin {len(rejected)}, "
          f"native JWT {sum(1 for s in native if s != 200)}")
    assert len(statuses) > 50
    assert rejected == []


def test_gateway_session_cache_is_never_used_past_the_token_exp(plugin_stack: Stack, subject: str) -> None:
    token = plugin_stack.token(sub=subject, lifetime=3)
    assert get(plugin_stack, "/auth0-plugin/get", token).status == 200
    time.sleep(4.2)
    result = get(plugin_stack, "/auth0-plugin/get", token)
    assert result.status == 401
    assert result.body == b'{\n    "error": "Key not authorized: token has expired"\n}'


def test_request_body_query_and_headers_reach_the_upstream_through_the_plugin(plugin_stack: Stack, subject: str) -> None:
    token = plugin_stack.token(sub=subject)
    result = plugin_stack.request("POST", "/auth0-plugin/anything?x=1&y=2",
                                  headers={"Authorization": f"Bearer {token}", "X-Custom": "kept",
                                           "Content-Type": "application/json"},
                                  body={"hello": "world"})
    assert result.status == 200, result.text
    echo = result.json()
    assert echo["method"] == "POST"
    assert echo["args"] == {"x": "1", "y": "2"}
    assert echo["headers"]["X-Custom"] == "kept"
    assert json.loads(echo["data"] if isinstance(echo.get("data"), str) else json.dumps(echo["json"])) == {"hello": "world"}


def test_a_revoked_scope_stops_at_the_next_token_where_native_keeps_its_policy(plugin_stack: Stack) -> None:
    """README, Repeat visits: native JWT keeps the policies a subject's session once got while the
    token names the same base policy; the plugin applies this token's policies only."""
    import uuid

    from plugin.devstack import gateway as gw
    from plugin.session import key_id

    gateway = plugin_stack.gateway
    assert gateway is not None
    saved = {api_id: dict(gateway.apis[api_id]) for api_id in (gw.NATIVE_API_ID, gw.PLUGIN_SUBJECT_API_ID)}
    mapping = {"read:limited": "limited"}
    native_api = {**saved[gw.NATIVE_API_ID], "jwt_scope_to_policy_mapping": mapping, "jwt_scope_claim_name": "scope"}
    plugin_api = dict(saved[gw.PLUGIN_SUBJECT_API_ID])
    plugin_api["config_data"] = {**plugin_api["config_data"], "jwt_scope_to_policy_mapping": mapping}
    kept: dict[str, list[str]] = {}
    try:
        gateway.put_api(native_api)
        gateway.put_api(plugin_api)
        gateway.reload()
        for side, path in (("native", "/auth0-native/get"), ("plugin", "/auth0-plugin-subject/get")):
            sub = f"revoked-{side}-{uuid.uuid4().hex[:8]}@clients"
            with_scope = plugin_stack.token(sub=sub, pol="auth0-policy", scope="read:limited")
            assert get(plugin_stack, path, with_scope).status == 200, side
            time.sleep(1.1)  # a later token: new iat, so a different token string
            without = plugin_stack.token(sub=sub, pol="auth0-policy", drop=["scope"])
            assert get(plugin_stack, path, without).status == 200, side
            session = gateway.session(key_id(gw.ORG_ID, sub))
            assert session is not None, side
            kept[side] = sorted(session["apply_policies"])
    finally:
        for api in saved.values():
            gateway.put_api(api)
        gateway.reload()
    assert kept == {"native": ["auth0-policy", "limited"], "plugin": ["auth0-policy"]}


def test_with_the_id_extractor_a_session_built_on_one_api_is_served_on_another_api_of_the_org(
        plugin_stack: Stack) -> None:
    """README, Token location: the gateway keys extractor sessions by org and header value only, so
    a token the plugin granted on one API reaches another API of the org whose extractor reads the
    same header, without that API's own checks, while the session's policies grant it."""
    import copy
    import uuid

    from plugin.devstack import gateway as gw

    gateway = plugin_stack.gateway
    assert gateway is not None
    saved = copy.deepcopy(gateway.apis[gw.PLUGIN_SUBJECT_API_ID])
    strict = copy.deepcopy(saved)
    strict["config_data"] = {**strict["config_data"], "audience": "https://another-api.example/"}
    strict["custom_middleware"] = copy.deepcopy(gw.load_manifest()["custom_middleware"])  # with the extractor
    token = plugin_stack.token(sub=f"shared-{uuid.uuid4().hex[:8]}@clients")
    try:
        gateway.put_api(strict)
        gateway.reload()
        statuses = [get(plugin_stack, path, token).status for path in
                    ("/auth0-plugin-subject/get", "/auth0-plugin/get", "/auth0-plugin-subject/get")]
    finally:
        gateway.put_api(saved)
        gateway.reload()
    assert statuses == [401, 200, 200]
