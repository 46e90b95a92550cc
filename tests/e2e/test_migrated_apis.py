"""`migrate` through the real gateway: an API answered by native JWT, then by its migrated definition.

The same kinds of token go to the API before and after the rewrite; the answers must be the same,
except where the plugin is stricter on purpose (test_differential's DELIBERATE cases that do not
depend on iss and aud, which the migrated classic API leaves unchecked, as classic native JWT does).
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest

from plugin.devstack.stack import Stack
from plugin.migrate import PluginHook, migrate
from tests.e2e.test_differential import (
    CASES,
    OAS_CLAIM_LIST_CASES,
    PARAM_ONLY,
    PLACES,
    TOKEN_PLACES,
    _claim_list_answer,
    auth_calls,
    place_answers,
    send,
)

pytestmark = pytest.mark.e2e

_ISS_AUD = ("wrong issuer (no trailing slash)", "wrong audience", "missing issuer")


def _hook(*, id_extractor: bool) -> PluginHook:
    from plugin.devstack import gateway as gw

    middleware = gw.load_manifest()["custom_middleware"]
    if not id_extractor:
        middleware.pop("id_extractor")
    return PluginHook(bundle=None, custom_middleware=middleware)


def test_a_migrated_classic_native_jwt_api_answers_the_corpus_as_native_did(plugin_stack: Stack) -> None:
    from plugin.devstack import gateway as gw

    gateway = plugin_stack.gateway
    assert gateway is not None
    original = copy.deepcopy(gateway.apis[gw.NATIVE_API_ID])
    path = f"/{gw.NATIVE_API_ID}/get"

    def answers() -> list[tuple[int, bytes]]:
        return [send(plugin_stack, path, case.authorization(plugin_stack, f"mig-{uuid.uuid4().hex[:10]}@clients"))
                for case in CASES]

    before = answers()
    try:
        gateway.put_api(migrate(original, _hook(id_extractor=True)).document)
        gateway.reload()
        calls = auth_calls(plugin_stack)
        after = answers()
        assert auth_calls(plugin_stack) > calls  # the plugin, not native JWT, answered
    finally:
        gateway.put_api(original)
        gateway.reload()
    unexpected = []
    for case, native, migrated in zip(CASES, before, after, strict=True):
        if case.plugin_expected is None or case.name in _ISS_AUD:
            if native != migrated:
                unexpected.append((case.name, native, migrated))
        elif migrated[0] != case.plugin_expected[0]:
            unexpected.append((case.name, native, migrated))
    assert not unexpected, unexpected


@pytest.mark.parametrize(("scheme", "tokens"), [(c[1], c[3]) for c in OAS_CLAIM_LIST_CASES],
                         ids=[c[0] for c in OAS_CLAIM_LIST_CASES])
def test_a_migrated_oas_native_jwt_api_gives_the_sessions_native_gave(plugin_stack: Stack, scheme: dict,
                                                                       tokens: list) -> None:
    """Without the ID extractor, so that sessions stay keyed by identity and can be compared."""
    from plugin.devstack import gateway as gw

    upstream, gateway = plugin_stack.upstream, plugin_stack.gateway
    assert upstream is not None and gateway is not None
    native = gw.native_oas_jwt_api(upstream.url, plugin_stack.jwks_url, scheme=scheme)
    path = f"/{gw.NATIVE_OAS_API_ID}/get"
    try:
        _put_oas(gateway, native, create=True)
        before = [_claim_list_answer(plugin_stack, path, claims) for claims in tokens]
        _put_oas(gateway, migrate(native, _hook(id_extractor=False)).document)
        calls = auth_calls(plugin_stack)
        after = [_claim_list_answer(plugin_stack, path, claims) for claims in tokens]
        assert auth_calls(plugin_stack) > calls
    finally:
        gateway.admin("DELETE", f"/tyk/apis/oas/{gw.NATIVE_OAS_API_ID}")
        assert gateway.admin("GET", "/tyk/reload?block=true").status == 200
    differences = [(claims, b, a) for claims, b, a in zip(tokens, before, after, strict=True) if b != a]
    assert not differences, differences


def test_a_migrated_oas_api_with_the_id_extractor_serves_a_repeated_token_from_the_gateway(
        plugin_stack: Stack) -> None:
    from plugin.devstack import gateway as gw

    upstream, gateway = plugin_stack.upstream, plugin_stack.gateway
    assert upstream is not None and gateway is not None
    native = gw.native_oas_jwt_api(upstream.url, plugin_stack.jwks_url)
    migrated = migrate(native, _hook(id_extractor=True)).document
    token = plugin_stack.token(sub=f"mig-oas-{uuid.uuid4().hex[:8]}@clients")
    headers = {"Authorization": "Bearer " + token}
    try:
        _put_oas(gateway, migrated, create=True)
        calls = auth_calls(plugin_stack)
        statuses = [plugin_stack.get(f"/{gw.NATIVE_OAS_API_ID}/get", headers=headers).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert auth_calls(plugin_stack) - calls == 1
    finally:
        gateway.admin("DELETE", f"/tyk/apis/oas/{gw.NATIVE_OAS_API_ID}")
        assert gateway.admin("GET", "/tyk/reload?block=true").status == 200


@pytest.mark.parametrize("places", [TOKEN_PLACES, PARAM_ONLY], ids=["several places", "query parameter only"])
def test_a_migrated_api_reads_tokens_where_native_read_them(plugin_stack: Stack, places: dict) -> None:
    """auth_configs.jwt moves to config_data, and the ID extractor is keyed on the token's one place
    (a query parameter: repeats are served by the gateway) or left out (several places)."""
    from plugin.devstack import gateway as gw

    gateway = plugin_stack.gateway
    assert gateway is not None
    original = copy.deepcopy(gateway.apis[gw.NATIVE_API_ID])
    native = {**copy.deepcopy(original), "auth_configs": {"jwt": dict(places)}}
    path = f"/{gw.NATIVE_API_ID}/get"
    try:
        gateway.put_api(native)
        gateway.reload()
        before = place_answers(plugin_stack, [path])
        gateway.put_api(migrate(native, _hook(id_extractor=True)).document)
        gateway.reload()
        after = place_answers(plugin_stack, [path])
        token = plugin_stack.token(sub=f"mig-places-{uuid.uuid4().hex[:8]}@clients")
        calls = auth_calls(plugin_stack)
        repeats = [plugin_stack.get(f"{path}?access_token={token}").status for _ in range(3)]
        plugin_calls = auth_calls(plugin_stack) - calls
    finally:
        gateway.put_api(original)
        gateway.reload()
    differences = [(case, b, a) for (case, _, _), b, a in zip(PLACES, before, after, strict=True) if b != a]
    assert not differences, differences
    assert repeats == [200, 200, 200]
    assert plugin_calls == (1 if places is PARAM_ONLY else 3)


def _put_oas(gateway: Any, document: dict[str, Any], create: bool = False) -> None:
    api_id = document["x-tyk-api-gateway"]["info"]["id"]
    if create:
        result = gateway.admin("POST", "/tyk/apis/oas", body=document)
    else:
        result = gateway.admin("PUT", f"/tyk/apis/oas/{api_id}", body=json.loads(json.dumps(document)))
    assert result.status == 200, result.text
    assert gateway.admin("GET", "/tyk/reload?block=true").status == 200


def test_a_classic_api_migrated_onto_the_bundle_is_served_by_the_plugin(plugin_stack: Stack) -> None:
    from plugin.devstack import gateway as gw

    gateway = plugin_stack.gateway
    assert gateway is not None and plugin_stack.bundle_path is not None
    original = copy.deepcopy(gateway.apis[gw.NATIVE_API_ID])
    hook = PluginHook(bundle=plugin_stack.bundle_path.name, custom_middleware=gw.load_manifest()["custom_middleware"])
    path = f"/{gw.NATIVE_API_ID}/get"
    token = plugin_stack.token(sub=f"mig-bundle-{uuid.uuid4().hex[:8]}@clients")
    try:
        gateway.put_api(migrate(original, hook).document)
        gateway.reload()
        calls = auth_calls(plugin_stack)
        granted = [send(plugin_stack, path, "Bearer " + token)[0] for _ in range(3)]
        wrong_alg = send(plugin_stack, path, "Bearer " + plugin_stack.token(alg="HS256"))
        plugin_calls = auth_calls(plugin_stack) - calls
    finally:
        gateway.put_api(original)
        gateway.reload()
    assert granted == [200, 200, 200]
    assert plugin_calls == 1  # the bundle's ID extractor serves the repeats
    assert wrong_alg[0] == 403 and b"Unexpected signing method" in wrong_alg[1]
