"""The walkthrough, end to end through the real gateway: keyless, native JWT, and the plugin."""

from __future__ import annotations

import pytest

from plugin.devstack.procs import http_request
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e

# The gateway's error template output, byte for byte (4-space indent, no trailing newline).
MISSING_AUTH_BODY = b'{\n    "error": "Authorization field missing"\n}'


def test_keyless_api_answers_through_the_gateway(stack: Stack) -> None:
    result = stack.get("/keyless/get?probe=1")
    assert result.status == 200, result.text
    echo = result.json()
    assert echo["path"] == "/get"
    assert echo["args"] == {"probe": "1"}
    assert echo["method"] == "GET"


def test_gateway_loaded_every_api(stack: Stack) -> None:
    assert stack.gateway is not None
    assert {"auth0-native", "auth0-plugin", "keyless"} <= stack.gateway.loaded_api_ids()


def test_walkthrough_with_native_jwt(stack: Stack) -> None:
    """Token from the (stand-in) Auth0 token endpoint, then the walkthrough's GET."""
    token = stack.request_token()
    result = stack.get("/auth0-native/get", headers={"Accept": "application/json", "Authorization": f"Bearer {token}"})
    assert result.status == 200, result.text
    echo = result.json()
    assert echo["path"] == "/get"
    assert echo["headers"]["Authorization"] == f"Bearer {token}"


def test_native_jwt_second_request_hits_the_jwks_cache(stack: Stack, subject: str) -> None:
    """jwt_source is base64 (as the Dashboard stores it), so the cached path works too."""
    token = stack.token(sub=subject)
    assert stack.idp is not None
    assert stack.get("/auth0-native/get", token=token).status == 200
    fetches = stack.idp.jwks_fetches
    for _ in range(3):
        result = stack.get("/auth0-native/get", token=token)
        assert result.status == 200, result.text
    assert stack.idp.jwks_fetches == fetches


def test_native_jwt_without_header_is_400_with_the_exact_body(stack: Stack) -> None:
    result = stack.get("/auth0-native/get")
    assert result.status == 400
    assert result.body == MISSING_AUTH_BODY
    assert result.headers["content-type"] == "application/json"
    assert result.headers["x-generator"] == "tyk.io"


def test_native_jwt_rejects_an_hs256_token_like_the_walkthrough_says(stack: Stack, subject: str) -> None:
    result = stack.get("/auth0-native/get", token=stack.token(sub=subject, alg="HS256"))
    assert result.status == 403
    assert result.json() == {"error": "Key not authorized: Unexpected signing method"}


def test_printed_curl_commands_name_the_real_addresses(stack: Stack) -> None:
    text = stack.curl_commands()
    assert stack.token_url in text
    assert f"{stack.url}/auth0-plugin/get" in text
    assert stack.client_id in text and (stack.client_secret or "") in text
    assert '-H "Authorization: Bearer $TOKEN"' in text


def test_bundle_is_served_for_the_gateway(stack: Stack) -> None:
    assert stack.bundles is not None and stack.bundle_path is not None
    assert stack.bundles.downloads >= 1  # the gateway fetched it when loading the plugin API
    result = http_request("GET", stack.bundles.url + stack.bundle_path.name)
    assert result.status == 200
    assert result.body == stack.bundle_path.read_bytes()


# -- the same through the plugin ---------------------------------------------------


def test_walkthrough_with_the_plugin(plugin_stack: Stack) -> None:
    token = plugin_stack.request_token()
    result = plugin_stack.get(
        "/auth0-plugin/get", headers={"Accept": "application/json", "Authorization": f"Bearer {token}"}
    )
    assert result.status == 200, result.text
    echo = result.json()
    assert echo["path"] == "/get"
    assert echo["headers"]["Authorization"] == f"Bearer {token}"


def test_plugin_without_header_is_400_with_the_exact_body(plugin_stack: Stack) -> None:
    result = plugin_stack.get("/auth0-plugin/get")
    assert result.status == 400
    assert result.body == MISSING_AUTH_BODY


def test_plugin_rejects_a_token_signed_with_an_unknown_key(plugin_stack: Stack, subject: str) -> None:
    result = plugin_stack.get("/auth0-plugin/get", token=plugin_stack.token(sub=subject, key="unknown"))
    assert result.status == 403, result.text
    assert result.json() == {"error": "Key not authorized"}
    assert result.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("policy_id", "fourth"),
    [
        ("limited", (429, "Rate Limit Exceeded")),
        ("quota3", (403, "Quota exceeded")),
        ("no-access", (403, "Access to this API has been disallowed")),
    ],
)
def test_stack_policies_do_what_their_names_say(stack: Stack, subject: str, policy_id: str, fourth: tuple) -> None:
    """The small policies other e2e tests rely on, checked through native JWT."""
    token = stack.token(sub=subject, pol=policy_id)
    answers = [stack.get("/auth0-native/get", token=token) for _ in range(4)]
    if policy_id == "no-access":
        assert all((r.status, r.json()["error"]) == fourth for r in answers)
    else:
        assert [r.status for r in answers[:3]] == [200, 200, 200]
        assert (answers[3].status, answers[3].json()["error"]) == fourth
