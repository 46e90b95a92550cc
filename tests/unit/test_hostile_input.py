"""Property-based: whatever the gateway or a client sends, the auth hook answers 4xx or passes, never crashes."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.auth import Authenticator, ConfigStore
from plugin.coprocess import HookType, Object
from plugin.errors import InvalidToken
from plugin.hooks import HookRouter
from plugin.jwks import JwksCache, JwksSettings
from plugin.verify import Verifier
from tests.support import tokens as t
from tests.support.objects import AUTH_HOOK, auth_object, config_data

KEY = t.rsa_key("hk")
VALID = t.sign(KEY)


def make_router() -> HookRouter:
    jwks = JwksCache(JwksSettings(min_refetch_interval=3600), fetcher=t.FakeJwks(keys=[KEY]))
    authenticator = Authenticator(Verifier(jwks), ConfigStore(defaults={}))
    return HookRouter(AUTH_HOOK, authenticator.authenticate)


ROUTER = make_router()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
claim_sets = st.dictionaries(
    st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "pol", "scope", "permissions", "azp", "x"]),
    json_values, max_size=8)
# Claims past the signature, issuer, audience and time checks: what identity, policy and session code reads.
TRUSTED_CLAIMS = ["sub", "pol", "scope", "permissions", "azp", "clientId", "cid", "client_id", "x",
                  "https://example.com/pol", "https://example.com/roles"]
trusted_claim_overrides = st.dictionaries(st.sampled_from(TRUSTED_CLAIMS), json_values | st.just(t.DROP),
                                          min_size=1, max_size=6)  # DROP: the claim is absent
# API settings that send those claims through every path: defaults, scope mapping, metadata, headers.
CONFIGS = [
    config_data(jwt_default_policies=["auth0-policy"]),
    config_data(jwt_policy_field_name="https://example.com/pol", jwt_scope_claim_name="https://example.com/roles",
                jwt_scope_to_policy_mapping={"admin": "admin-policy", "read:x": "reader"},
                session_metadata_claims=["sub", "x", "scope"], claims_to_headers={"x": "X-Claim"}),
    config_data(jwt_identity_base_field="x", jwt_scope_claim_name="permissions",
                jwt_scope_to_policy_mapping={"read:x": "reader"}, hash_key_function="murmur64"),
]
headers = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "crit", "jku", "x5u", "jwk", "cty", "zip"]),
    json_values | st.sampled_from(["RS256", "PS256", "HS256", "ES256", "none", "EdDSA", "hk", "JWT", "at+jwt"]),
    max_size=6)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def tokens(draw) -> str:
    kind = draw(st.sampled_from(["structured", "signed", "trusted", "mutated", "text", "segments"]))
    if kind == "structured":
        return ".".join([b64(json.dumps(draw(headers)).encode()), b64(json.dumps(draw(claim_sets)).encode()),
                         b64(draw(st.binary(max_size=300)))])
    if kind == "signed":
        head = {k: v for k, v in draw(headers).items() if k != "alg"}
        return t.sign_any_header(KEY, {"alg": "RS256", "kid": "hk", **head}, draw(claim_sets))
    if kind == "trusted":  # valid issuer, audience and signature: the claims reach every later step
        head = {k: v for k, v in draw(headers).items() if k not in ("alg", "kid", "crit", "typ")}
        return t.sign_any_header(KEY, {"alg": "RS256", "kid": "hk", **head}, t.claims(**draw(trusted_claim_overrides)))
    if kind == "mutated":
        position = draw(st.integers(0, len(VALID) - 1))
        # only what a protobuf string can carry: the gateway cannot send a lone surrogate
        return VALID[:position] + draw(st.characters(codec="utf-8")) + VALID[position + 1:]
    if kind == "segments":
        return ".".join(draw(st.lists(st.text(alphabet="AZaz09-_=+/.", max_size=40), max_size=7)))
    return draw(st.text(max_size=200))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=tokens(), prefix=st.sampled_from(["Bearer ", "bearer ", "", "Basic ", "Bearer  "]),
       config=st.sampled_from(CONFIGS))
def test_any_token_gets_a_4xx_or_passes_never_a_crash(token, prefix, config):
    crashes_before = ROUTER.crashes
    reply = ROUTER.dispatch(auth_object(prefix + token, config=config))
    code = reply.request.return_overrides.response_code
    assert ROUTER.crashes == crashes_before  # a crash is answered 403 too: counted, never passed off as a 4xx
    assert code == -1 or 400 <= code < 500


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=trusted_claim_overrides, config=st.sampled_from(CONFIGS))
def test_any_claims_of_a_verified_token_are_answered_never_a_crash(overrides, config):
    token = t.sign_any_header(KEY, {"alg": "RS256", "kid": "hk"}, t.claims(**overrides))
    crashes_before = ROUTER.crashes
    reply = ROUTER.dispatch(auth_object("Bearer " + token, config=config))
    code = reply.request.return_overrides.response_code
    assert ROUTER.crashes == crashes_before
    assert code == -1 or 400 <= code < 500


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(st.text(max_size=300), st.builds(lambda d: json.dumps(d), json_values)))
def test_any_config_data_is_a_named_500_or_works_never_a_crash(raw):
    reply = ROUTER.dispatch(auth_object("Bearer " + VALID, config=raw))
    code = reply.request.return_overrides.response_code
    assert code in (-1, 500) or 400 <= code < 500
    if code == 500:
        assert reply.request.return_overrides.response_error.startswith("Auth plugin misconfigured: ")
    assert ROUTER.crashes == 0


@settings(max_examples=200, deadline=None)
@given(hook_type=st.integers(0, 7), hook_name=st.text(max_size=30),
       header_map=st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=10),
       spec=st.dictionaries(st.sampled_from(["OrgID", "APIID", "config_data", "x"]), st.text(max_size=60)))
def test_any_object_from_the_gateway_is_answered(hook_type, hook_name, header_map, spec):
    obj = Object(hook_type=hook_type, hook_name=hook_name)
    obj.request.headers.update(header_map)
    obj.spec.update(spec)
    reply = ROUTER.dispatch(obj)
    assert reply is obj
    if hook_type == HookType.CustomKeyCheck:
        code = reply.request.return_overrides.response_code
        assert code >= 400 or reply.HasField("session")
    assert ROUTER.crashes == 0


def _verify_refusal(token: str) -> str:
    """What the verifier says of ``token`` (the detail behind the client's 403)."""
    verifier = Verifier(JwksCache(fetcher=t.FakeJwks(keys=[KEY])))
    config = ConfigStore(defaults={}).get({"config_data": config_data()})[1]
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token, config)
    return info.value.detail


def test_a_deeply_nested_payload_is_refused_before_decoding_without_a_crash():
    header = t.sign(KEY).split(".")[0]
    token = t.sign_segments(KEY, header, b64(("[" * 20000 + "]" * 20000).encode()))
    assert _verify_refusal(token) == "segment nests JSON too deep"
    reply = ROUTER.dispatch(auth_object("Bearer " + token, config=config_data()))
    assert reply.request.return_overrides.response_code == 403
    assert ROUTER.crashes == 0


def _dispatch(token: str, config: str | None = None):
    reply = ROUTER.dispatch(auth_object("Bearer " + token, config=config or config_data()))
    return reply.request.return_overrides.response_code, reply.request.return_overrides.response_error


def test_duplicate_claims_take_the_last_value_as_the_gateway_does():
    header = t.sign(KEY).split(".")[0]
    payload = b64(json.dumps(t.claims()).encode()[:-1] + b',"pol":"gold","pol":"auth0-policy"}')
    reply = ROUTER.dispatch(auth_object("Bearer " + t.sign_segments(KEY, header, payload), config=config_data()))
    assert reply.request.return_overrides.response_code == -1
    assert list(reply.session.apply_policies) == ["auth0-policy"]


def test_a_nested_jwt_is_refused_as_not_a_claim_set():
    header = b64(json.dumps({"alg": "RS256", "kid": "hk", "cty": "JWT"}).encode())
    nested = t.sign_segments(KEY, header, b64(VALID.encode()))
    assert _verify_refusal(nested) == "segment is not JSON"
    assert _dispatch(nested)[0] == 403


@pytest.mark.parametrize("authorization", [
    "Bearer\u00a0" + VALID,            # no-break space instead of a space
    "Bearer " + VALID.replace("e", "\u0435", 1),  # Cyrillic e inside the token
    "\uff22earer " + VALID,            # fullwidth B
    "Bearer " + VALID + "\u200b",      # zero-width space appended
    "Bearer " + VALID + "\x00",
])
def test_unicode_tricks_in_the_header_are_refused(authorization):
    reply = ROUTER.dispatch(auth_object(authorization))
    assert reply.request.return_overrides.response_code == 403
    assert ROUTER.crashes == 0


def test_oversized_token_is_refused_before_any_parsing():
    assert _verify_refusal("a" * 70_000 + "." + "b" * 10 + "." + "c") == "token larger than the limit"
    assert _dispatch("a" * 70_000 + "." + "b" * 10 + "." + "c")[0] == 403
