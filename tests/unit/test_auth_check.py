"""The auth_check hook answers every token the way Tyk's native JWT middleware would."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from plugin.coprocess import HookType
from plugin.errors import ConfigurationError
from tests.support import tokens as t
from tests.support.objects import auth_object, config_data


def reply_error(reply) -> tuple[int, str]:
    overrides = reply.request.return_overrides
    return overrides.response_code, overrides.response_error


def bearer(token: str) -> str:
    return f"Bearer {token}"


# -- accepted tokens ---------------------------------------------------------------------------------

def test_valid_rs256_token_gets_a_session_from_its_pol_claim(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key))))
    assert reply.request.return_overrides.response_code == -1
    assert reply.request.return_overrides.response_error == ""
    assert list(reply.session.apply_policies) == ["auth0-policy"]


def test_session_key_is_org_id_plus_md5_of_the_identity_like_native_jwt(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key))))
    expected = "default" + hashlib.md5(b"client-abc@clients").hexdigest()
    assert reply.metadata["token"] == expected
    assert reply.session.metadata["TykJWTSessionID"] == expected
    assert reply.session.alias == "client-abc@clients"


def test_session_expiry_and_cache_deadline_never_pass_the_token_exp(plugin, signing_key):
    exp = int(time.time()) + 42
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key, t.claims(exp=exp)))))
    assert reply.session.expires == exp
    assert reply.session.id_extractor_deadline == exp


def test_session_last_updated_is_left_empty_as_native_jwt_leaves_it(plugin, signing_key):
    """The gateway's rate limiter keys its bucket by last_updated: a per-request value would reset it."""
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key))))
    assert reply.session.last_updated == ""


def test_cache_deadline_is_id_extractor_ttl_from_now_when_exp_is_later(make_plugin, signing_key):
    now = int(time.time())
    plugin = make_plugin(clock=lambda: now + 0.5)
    token = t.sign(signing_key, t.claims(iat=now, exp=now + 3600))
    reply = plugin.dispatch(auth_object(bearer(token), config=config_data(id_extractor_ttl=30)))
    assert reply.session.id_extractor_deadline == now + 30


def test_a_session_and_token_the_gateway_sent_are_replaced_not_merged(plugin, signing_key):
    sent = auth_object(bearer(t.sign(signing_key)))
    sent.session.apply_policies.append("stale-policy")
    sent.session.metadata["stale"] = "yes"
    sent.session.quota_max = 7
    sent.metadata["token"] = "stale-key"
    reply = plugin.dispatch(sent)
    assert list(reply.session.apply_policies) == ["auth0-policy"]
    assert "stale" not in reply.session.metadata
    assert reply.session.quota_max == 0
    assert reply.metadata["token"] == "default" + hashlib.md5(b"client-abc@clients").hexdigest()


def test_a_cached_token_gets_the_cache_deadline_of_each_request_and_no_last_updated(make_plugin, signing_key):
    now = [time.time()]
    plugin = make_plugin(clock=lambda: now[0])
    token = bearer(t.sign(signing_key))
    first = plugin.dispatch(auth_object(token))
    now[0] += 7
    second = plugin.dispatch(auth_object(token))
    assert plugin.authenticator.hits == 1
    assert first.session.last_updated == second.session.last_updated == ""
    assert second.session.id_extractor_deadline == first.session.id_extractor_deadline + 7
    assert list(second.session.apply_policies) == list(first.session.apply_policies)
    assert second.session.alias == first.session.alias


def test_reply_echoes_what_the_gateway_reads_back_url_method_and_body(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key))))
    assert reply.request.url == "/auth0-plugin/get?x=1"
    assert reply.request.method == "GET"
    assert reply.request.raw_body == b"hello body"
    assert reply.request.return_overrides.response_code == -1


def test_reply_drops_what_the_gateway_never_reads_back(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key))))
    assert len(reply.request.headers) == 0 and len(reply.request.params) == 0
    assert reply.request.body == "" and len(reply.spec) == 0


def test_chosen_claims_are_copied_to_session_metadata_but_never_the_token(plugin, signing_key):
    token = t.sign(signing_key)
    reply = plugin.dispatch(auth_object(bearer(token)))
    assert reply.session.metadata["azp"] == "client-abc"
    assert reply.session.metadata["scope"] == "read:things write:things"
    assert token.split(".")[2].encode() not in reply.SerializeToString()


def test_token_signed_by_the_next_key_of_a_rotated_jwks_passes(plugin, next_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(next_key))))
    assert reply_error(reply) == (-1, "")


@pytest.mark.parametrize("audiences", [
    [t.AUDIENCE, "https://tenant.example.auth0.com/userinfo"],
    ["https://other", t.AUDIENCE, "https://tenant.example.auth0.com/userinfo"],
    ["https://tenant.example.auth0.com/userinfo", t.AUDIENCE],
])
def test_audience_array_passes_when_any_entry_matches(plugin, signing_key, audiences):
    token = t.sign(signing_key, t.claims(aud=audiences))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER ", ""])
def test_bearer_prefix_is_optional_and_case_insensitive(plugin, signing_key, prefix):
    reply = plugin.dispatch(auth_object(prefix + t.sign(signing_key)))
    assert reply_error(reply) == (-1, "")


def test_a_policy_listed_twice_in_the_claim_is_applied_once(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=["gold", "silver", "gold"]))
    assert list(plugin.dispatch(auth_object(bearer(token))).session.apply_policies) == ["gold", "silver"]


def test_two_scopes_mapped_to_one_policy_apply_it_once_after_the_claimed_one(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol="gold", scope="read:a read:b write:c"))
    config = config_data(jwt_scope_to_policy_mapping={"read:a": "reader", "read:b": "reader", "write:c": "gold"})
    reply = plugin.dispatch(auth_object(bearer(token), config=config))
    assert list(reply.session.apply_policies) == ["gold", "reader"]


def test_ps256_passes_under_the_default_rsa_family(plugin, signing_key):
    token = t.sign(signing_key, alg="PS256")
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


def test_a_pss_signature_shorter_than_the_key_is_refused_as_the_gateway_does(signing_key):
    # OpenSSL accepts a PSS signature with its leading zero byte dropped; Go's VerifyPSS does not.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from plugin.keys import verify_signature

    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
    message = b"header.payload"
    signature = b"\x01"
    while signature[0] != 0:  # PSS is randomized: about 1 signature in 256 starts with a zero byte
        signature = signing_key.private.sign(message, pss, hashes.SHA256())
    public = signing_key.private.public_key()
    assert verify_signature("PS256", public, message, signature)
    assert not verify_signature("PS256", public, message, signature[1:])


def test_policy_claim_may_be_a_list_of_policy_ids(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=["gold", "analytics"]))
    reply = plugin.dispatch(auth_object(bearer(token)))
    assert list(reply.session.apply_policies) == ["gold", "analytics"]


def test_namespaced_auth0_policy_claim_is_looked_up_literally(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP, **{"https://example.com/pol": "gold"}))
    reply = plugin.dispatch(auth_object(bearer(token), config=config_data(jwt_policy_field_name="https://example.com/pol")))
    assert list(reply.session.apply_policies) == ["gold"]


def test_default_policies_apply_when_the_token_names_none(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP))
    reply = plugin.dispatch(auth_object(bearer(token), config=config_data(jwt_default_policies=["auth0-policy", "extra"])))
    assert list(reply.session.apply_policies) == ["auth0-policy", "extra"]


def test_a_default_policy_listed_twice_is_applied_once(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP))
    config = config_data(jwt_default_policies=["auth0-policy", "extra", "auth0-policy"])
    reply = plugin.dispatch(auth_object(bearer(token), config=config))
    assert list(reply.session.apply_policies) == ["auth0-policy", "extra"]


def test_scopes_map_to_policies_and_replace_the_defaults(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="read:things admin"))
    config = config_data(jwt_default_policies=["basic"], jwt_scope_to_policy_mapping={"admin": "admin-pol"})
    reply = plugin.dispatch(auth_object(bearer(token), config=config))
    assert list(reply.session.apply_policies) == ["admin-pol"]


def test_auth0_permissions_are_scopes_when_the_scope_claim_names_them(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope=t.DROP, permissions=["read:reports"]))
    config = config_data(jwt_scope_claim_name="permissions", jwt_scope_to_policy_mapping={"read:reports": "reports"})
    reply = plugin.dispatch(auth_object(bearer(token), config=config))
    assert list(reply.session.apply_policies) == ["reports"]


def test_permissions_are_not_scopes_under_the_default_scope_claim(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope=t.DROP, permissions=["write:y"]))
    config = config_data(jwt_default_policies=["d1"], jwt_scope_to_policy_mapping={"read:x": "p-read"})
    reply = plugin.dispatch(auth_object(bearer(token), config=config))
    assert list(reply.session.apply_policies) == ["d1"]


def test_identity_comes_from_the_configured_base_field(plugin, signing_key):
    token = t.sign(signing_key, t.claims(email="a@b.c"))
    reply = plugin.dispatch(auth_object(bearer(token), config=config_data(jwt_identity_base_field="email")))
    assert reply.session.alias == "a@b.c"


# -- refusals, with the gateway's exact status and text ----------------------------------------------

UNEXPECTED = (403, "Key not authorized: Unexpected signing method")
NOT_AUTHORIZED = (403, "Key not authorized")


def test_missing_authorization_header_is_400_authorization_field_missing(plugin):
    assert reply_error(plugin.dispatch(auth_object(None))) == (400, "Authorization field missing")


def test_refusal_carries_no_session_even_when_the_gateway_sent_one(plugin):
    sent = auth_object(None)
    sent.session.apply_policies.append("leftover-policy")
    reply = plugin.dispatch(sent)
    assert reply_error(reply) == (400, "Authorization field missing")
    assert not reply.HasField("session")


def test_an_auth_check_that_crashes_halfway_refuses_with_no_session():
    from plugin.hooks import HookRouter
    from tests.support.objects import AUTH_HOOK

    def crash_after_filling_the_session(obj) -> None:
        obj.session.apply_policies.append("half-built-policy")
        raise RuntimeError("unexpected")

    router = HookRouter(AUTH_HOOK, crash_after_filling_the_session)
    reply = router.dispatch(auth_object(bearer("x.y.z")))
    assert reply_error(reply) == (403, "Key not authorised")
    assert not reply.HasField("session")
    assert router.crashes == 1


def test_alg_none_is_unexpected_signing_method(plugin, signing_key):
    token = t.raw_token({"alg": "none", "typ": "JWT", "kid": signing_key.kid}, t.claims(), b"")
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == UNEXPECTED


def test_hs256_signed_with_the_rsa_public_key_is_unexpected_signing_method(plugin, signing_key):
    token = t.hs256_with_public_pem(signing_key)
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == UNEXPECTED


def test_es256_on_an_rsa_api_is_unexpected_signing_method(plugin):
    token = t.sign(t.ec_key())
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == UNEXPECTED


def test_ps256_under_an_rs256_allow_list_is_unexpected_signing_method(plugin, signing_key):
    token = t.sign(signing_key, alg="PS256")
    config = config_data(jwt_allowed_algorithms=["RS256"])
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == UNEXPECTED


def test_eddsa_is_unexpected_signing_method(plugin, signing_key):
    token = t.raw_token({"alg": "EdDSA", "kid": signing_key.kid}, t.claims())
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == UNEXPECTED


def test_tampered_payload_is_key_not_authorized(plugin, signing_key):
    header, _, sig = t.sign(signing_key).split(".")
    forged = t.b64url(json.dumps(t.claims(pol="admin")).encode())
    assert reply_error(plugin.dispatch(auth_object(bearer(f"{header}.{forged}.{sig}")))) == NOT_AUTHORIZED


def forged(token: str) -> str:
    """The token with another payload under its header and signature."""
    header, _, signature = token.split(".")
    return f"{header}.{t.b64url(json.dumps(t.claims(pol='admin')).encode())}.{signature}"


def test_a_tampered_token_is_refused_as_a_bad_signature(idp, signing_key):
    from plugin.config import parse_config_data
    from plugin.errors import BadSignature
    from plugin.jwks import JwksCache
    from plugin.verify import Verifier

    verifier = Verifier(JwksCache(fetcher=idp))
    with pytest.raises(BadSignature):
        verifier.verify(forged(t.sign(signing_key)), parse_config_data(config_data(), environ={}))


def test_a_tampered_ps256_token_is_key_not_authorized(plugin, signing_key):
    token = forged(t.sign(signing_key, alg="PS256"))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_a_ps256_token_naming_a_published_ec_key_is_key_not_authorized(plugin, idp):
    ec_key = t.ec_key("ec-key")
    idp.keys.append(ec_key)
    # Signatures as long as the EC key's size and as long as an RSA-2048 one: neither is checked with it.
    for signature in (b"\x01" * 32, b"\x01" * 256):
        token = t.raw_token({"alg": "PS256", "typ": "JWT", "kid": ec_key.kid}, t.claims(), signature)
        assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_an_hs256_token_naming_a_published_rsa_key_is_key_not_authorized(plugin, signing_key):
    token = t.raw_token({"alg": "HS256", "typ": "JWT", "kid": signing_key.kid}, t.claims(), b"\x01" * 32)
    config = config_data(jwt_signing_method="hmac")  # and keys from the JWKS
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == NOT_AUTHORIZED


EC_CURVES: dict[str, ec.EllipticCurve] = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
ECDSA = config_data(jwt_signing_method="ecdsa")


def ec_signing_key(alg: str, kid: str = "ec-key") -> t.SigningKey:
    return t.SigningKey(kid=kid, private=ec.generate_private_key(EC_CURVES[alg]), alg=alg)


@pytest.mark.parametrize("alg", sorted(EC_CURVES))
def test_an_ecdsa_token_signed_by_a_published_key_of_its_curve_passes(plugin, idp, alg):
    key = ec_signing_key(alg)
    idp.keys.append(key)
    assert reply_error(plugin.dispatch(auth_object(bearer(t.sign(key)), config=ECDSA))) == (-1, "")


@pytest.mark.parametrize("alg", sorted(EC_CURVES))
def test_a_tampered_ecdsa_token_is_key_not_authorized(plugin, idp, alg):
    key = ec_signing_key(alg)
    idp.keys.append(key)
    assert reply_error(plugin.dispatch(auth_object(bearer(forged(t.sign(key))), config=ECDSA))) == NOT_AUTHORIZED


def test_an_ecdsa_signature_in_der_form_rather_than_r_and_s_is_key_not_authorized(plugin, idp):
    key = ec_signing_key("ES256")
    idp.keys.append(key)
    signing_input = t.sign(key).rsplit(".", 1)[0]
    der = key.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    token = f"{signing_input}.{t.b64url(der)}"
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=ECDSA))) == NOT_AUTHORIZED


def test_an_es256_token_naming_a_published_p384_key_is_key_not_authorized(plugin, idp):
    key = ec_signing_key("ES384")
    idp.keys.append(key)
    token = t.sign(key, alg="ES256")  # a valid ECDSA signature over SHA-256, but ES256 means P-256
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=ECDSA))) == NOT_AUTHORIZED


HMAC_SECRET = b"a-shared-secret-of-the-api-0123456789"
HMAC = config_data(jwt_signing_method="hmac", jwt_source=base64.b64encode(HMAC_SECRET).decode())


def hs256(secret: bytes) -> str:
    return t.sign(t.SigningKey(kid="", private=secret, alg="HS256"), headers={"kid": t.DROP})


def test_an_hs256_token_signed_with_the_api_secret_passes(plugin):
    assert reply_error(plugin.dispatch(auth_object(bearer(hs256(HMAC_SECRET)), config=HMAC))) == (-1, "")


def test_an_hs256_token_signed_with_another_secret_is_key_not_authorized(plugin):
    token = hs256(b"another-secret-of-the-same-length-0123")
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=HMAC))) == NOT_AUTHORIZED


def test_a_header_already_seen_on_a_valid_token_vouches_for_nothing(plugin, signing_key):
    valid = t.sign(signing_key)
    assert plugin.dispatch(auth_object(bearer(valid))).request.return_overrides.response_code == -1
    header, _, sig = valid.split(".")
    forged = t.b64url(json.dumps(t.claims(pol="admin")).encode())
    assert reply_error(plugin.dispatch(auth_object(bearer(f"{header}.{forged}.{sig}")))) == NOT_AUTHORIZED


def test_a_crit_header_is_refused_every_time_it_is_sent(plugin, signing_key):
    token = t.sign(signing_key, headers={"crit": ["exp"]})
    for _ in range(2):
        assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_token_signed_by_an_unknown_key_is_key_not_authorized(plugin):
    token = t.sign(t.rsa_key("key-current"))  # same kid, other key
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_unknown_kid_is_key_not_authorized(plugin):
    token = t.sign(t.rsa_key("never-published"))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


@pytest.mark.parametrize("kid", [7, ["key-current"], {"kid": "key-current"}])
def test_non_string_kid_is_key_not_authorized(plugin, signing_key, kid):
    token = t.sign_any_header(signing_key, {"alg": "RS256", "kid": kid})
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_a_published_key_of_another_family_than_the_alg_is_key_not_authorized(plugin, signing_key):
    # An ES256 API, and a token naming the kid of the RSA key the JWKS publishes: the key cannot check ES256.
    token = t.sign(t.ec_key(), headers={"kid": signing_key.kid})
    config = config_data(jwt_signing_method="ecdsa")
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == NOT_AUTHORIZED


def static_key_config(key: t.SigningKey) -> str:
    return config_data(jwt_source=base64.b64encode(key.public_pem()).decode())


def test_a_token_signed_by_the_static_public_key_of_the_api_passes(plugin, signing_key):
    token = t.sign(signing_key, headers={"kid": t.DROP})
    reply = plugin.dispatch(auth_object(bearer(token), config=static_key_config(signing_key)))
    assert reply_error(reply) == (-1, "")


def test_the_static_public_key_verifies_every_token_not_only_the_first(plugin, signing_key):
    config = static_key_config(signing_key)
    for sub in ("first-client", "second-client"):
        token = t.sign(signing_key, t.claims(sub=sub), headers={"kid": t.DROP})
        assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == (-1, "")


def test_a_token_signed_by_another_key_than_the_static_one_is_key_not_authorized(plugin, signing_key, next_key):
    token = t.sign(next_key, headers={"kid": t.DROP})
    reply = plugin.dispatch(auth_object(bearer(token), config=static_key_config(signing_key)))
    assert reply_error(reply) == NOT_AUTHORIZED


def token_of_length(key: t.SigningKey, length: int) -> str:
    """A valid token exactly ``length`` characters long (a claim pads it)."""
    short = len(t.sign(key, t.claims(blob="")))
    for extra in range((length - short) * 3 // 4 - 4, (length - short) * 3 // 4 + 4):
        token = t.sign(key, t.claims(blob="x" * extra))
        if len(token) == length:
            return token
    raise AssertionError(f"no padding gives a token of {length} characters")


def test_a_token_of_exactly_64_kib_is_verified(plugin, signing_key):
    token = token_of_length(signing_key, 64 * 1024)
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


def test_a_token_one_byte_over_64_kib_is_key_not_authorized(plugin, signing_key):
    token = token_of_length(signing_key, 64 * 1024 + 1)
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


@pytest.mark.parametrize("token", [
    "garbage",
    "a.b",
    "a.b.c.d.e",
    "eyJhbGciOiJSUzI1NiJ9.%%%.abc",
    "....",
    "Bearer",
    "\u00e9\u00e8.\u00e0.x",
])
def test_malformed_tokens_are_key_not_authorized(plugin, token):
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_truncated_token_is_key_not_authorized(plugin, signing_key):
    token = t.sign(signing_key)
    assert reply_error(plugin.dispatch(auth_object(bearer(token[:-20])))) == NOT_AUTHORIZED


def test_encrypted_five_part_token_is_key_not_authorized(plugin):
    jwe = ".".join(t.b64url(p) for p in [b'{"alg":"RSA-OAEP-256","enc":"A256GCM"}', b"k", b"iv", b"ct", b"tag"])
    assert reply_error(plugin.dispatch(auth_object(bearer(jwe)))) == NOT_AUTHORIZED


def test_100kb_token_is_key_not_authorized(plugin, signing_key):
    token = t.sign(signing_key, t.claims(blob="x" * 100_000))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_expired_token_is_401_token_has_expired(plugin, signing_key):
    token = t.sign(signing_key, t.claims(exp=int(time.time()) - 5))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (401, "Key not authorized: token has expired")


def test_iat_in_the_future_is_401_token_used_before_issued(plugin, signing_key):
    token = t.sign(signing_key, t.claims(iat=int(time.time()) + 600))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (401, "Key not authorized: token used before issued")


def test_nbf_in_the_future_is_401_token_is_not_valid_yet(plugin, signing_key):
    token = t.sign(signing_key, t.claims(nbf=int(time.time()) + 600))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (401, "Key not authorized: token is not valid yet")


def test_when_several_time_checks_fail_the_last_one_names_the_error(plugin, signing_key):
    now = int(time.time())
    token = t.sign(signing_key, t.claims(exp=now - 5, nbf=now + 600))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (401, "Key not authorized: token is not valid yet")


def test_exp_skew_tolerates_a_just_expired_token(plugin, signing_key):
    token = t.sign(signing_key, t.claims(exp=int(time.time()) - 5))
    config = config_data(jwt_expires_at_validation_skew=30)
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == (-1, "")


EXPIRED = (401, "Key not authorized: token has expired")
BEFORE_ISSUED = (401, "Key not authorized: token used before issued")
NOT_YET_VALID = (401, "Key not authorized: token is not valid yet")
PASSES = (-1, "")


@pytest.mark.parametrize(("claim", "offset", "skew", "expected"), [
    # exp passes while now - skew < exp (Go's VerifyExpiresAt): expired at exp itself
    ("exp", 1, 0, PASSES), ("exp", 0, 0, EXPIRED),
    ("exp", -29, 30, PASSES), ("exp", -30, 30, EXPIRED),
    # iat and nbf pass while now + skew >= the claim: valid from that second on
    ("iat", 0, 0, PASSES), ("iat", 1, 0, BEFORE_ISSUED),
    ("iat", 30, 30, PASSES), ("iat", 31, 30, BEFORE_ISSUED),
    ("nbf", 0, 0, PASSES), ("nbf", 1, 0, NOT_YET_VALID),
    ("nbf", 30, 30, PASSES), ("nbf", 31, 30, NOT_YET_VALID),
])
def test_time_claims_are_judged_to_the_second_with_their_own_skew(make_plugin, signing_key, claim, offset, skew,
                                                                  expected):
    now = int(time.time())
    plugin = make_plugin(clock=lambda: now + 0.5)  # within the second: Go compares whole seconds
    skews = {"exp": "jwt_expires_at_validation_skew", "iat": "jwt_issued_at_validation_skew",
             "nbf": "jwt_not_before_validation_skew"}
    times = {"iat": now - 10, "exp": now + 3600, claim: now + offset}
    token = t.sign(signing_key, t.claims(**times))
    config = config_data(**{skews[claim]: skew})
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == expected


def test_an_exp_of_zero_means_no_expiry_as_in_the_gateway(plugin, signing_key):
    token = t.sign(signing_key, t.claims(exp=0))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == PASSES


def test_a_token_with_an_exp_of_zero_is_cached_for_id_extractor_ttl_like_one_without_exp(make_plugin, signing_key):
    now = int(time.time())
    plugin = make_plugin(clock=lambda: now + 0.5)
    token = t.sign(signing_key, t.claims(iat=now, exp=0))
    reply = plugin.dispatch(auth_object(bearer(token), config=config_data(id_extractor_ttl=30)))
    assert (reply.session.expires, reply.session.id_extractor_deadline) == (0, now + 30)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_an_iat_or_nbf_of_zero_passes(plugin, signing_key, claim):
    token = t.sign(signing_key, t.claims(**{claim: 0}))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == PASSES


@pytest.mark.parametrize(("claim", "expected"), [("iat", BEFORE_ISSUED), ("nbf", NOT_YET_VALID)])
def test_a_boolean_iat_or_nbf_is_not_a_number_and_fails_like_the_gateway(plugin, signing_key, claim, expected):
    token = t.sign(signing_key, t.claims(**{claim: True}))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == expected


@pytest.mark.parametrize("exp", [0.5, -0.5, 1e30, 2**63, 2**63 - 1])
def test_an_exp_that_rounds_down_to_zero_or_leaves_int64_has_expired(plugin, signing_key, exp):
    token = t.sign(signing_key, t.claims(exp=exp))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (401, "Key not authorized: token has expired")


@pytest.mark.parametrize("value", [1e30, 2**63 - 1])
@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_an_iat_or_nbf_beyond_int64_passes_as_it_does_in_go(plugin, signing_key, claim, value):
    token = t.sign(signing_key, t.claims(**{claim: value}))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


# time.Unix keeps seconds since year 1 in an int64, so these Unix seconds wrap to the far past in Go:
# the first float64 above 2**63 - 1 - 62135596800, and the last one below 2**63.
WRAPPING = [9223371974719179776, 9223372036854774784]


@pytest.mark.parametrize("exp", WRAPPING)
def test_an_exp_so_large_that_go_wraps_it_to_the_past_has_expired(plugin, signing_key, exp):
    token = t.sign(signing_key, t.claims(exp=exp))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (401, "Key not authorized: token has expired")


@pytest.mark.parametrize("value", WRAPPING)
@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_an_iat_or_nbf_so_large_that_go_wraps_it_to_the_past_passes(plugin, signing_key, claim, value):
    token = t.sign(signing_key, t.claims(**{claim: value}))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_an_iat_or_nbf_just_below_go_s_wrap_is_still_in_the_future(plugin, signing_key, claim):
    token = t.sign(signing_key, t.claims(**{claim: 9223371974719178752}))  # the float64 just below the wrap
    expected = {"iat": BEFORE_ISSUED, "nbf": NOT_YET_VALID}[claim]
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == expected


def test_a_fractional_exp_in_the_future_is_accepted_and_rounded_down_in_the_session(plugin, signing_key):
    exp = int(time.time()) + 600.75
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key, t.claims(exp=exp)))))
    assert reply_error(reply) == (-1, "")
    assert reply.session.expires == int(exp)


def test_a_lone_surrogate_in_the_identity_becomes_a_replacement_character(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key, t.claims(sub="user-\ud800")))))
    assert reply_error(reply) == (-1, "")
    assert reply.session.alias == "user-\ufffd"


def test_a_null_payload_is_an_empty_claim_set(plugin, signing_key):
    header = t.sign(signing_key).split(".")[0]
    signed = t.sign_segments(signing_key, header, t.b64url(b"null"))
    assert reply_error(plugin.dispatch(auth_object(bearer(signed)))) == (
        401, "Key not authorized: issuer claim is required but not present in token")


@pytest.mark.parametrize(("claim", "expected"), [
    ("exp", "Key not authorized: token has expired"),
    ("iat", "Key not authorized: token used before issued"),
    ("nbf", "Key not authorized: token is not valid yet"),
])
def test_non_numeric_time_claims_fail_like_the_gateway(plugin, signing_key, claim, expected):
    token = t.sign(signing_key, t.claims(**{claim: "soon"}))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (401, expected)


def test_wrong_issuer_is_401_with_the_gateway_text(plugin, signing_key):
    token = t.sign(signing_key, t.claims(iss="https://tenant.example.auth0.com"))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        401, "Key not authorized: invalid issuer claim: https://tenant.example.auth0.com")


def test_missing_issuer_is_401(plugin, signing_key):
    token = t.sign(signing_key, t.claims(iss=t.DROP))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        401, "Key not authorized: issuer claim is required but not present in token")


@pytest.mark.parametrize("iss", [5, None, ["https://tenant.example.auth0.com/"]])
def test_an_issuer_that_is_not_a_string_is_401_issuer_claim_must_be_a_string(plugin, signing_key, iss):
    token = t.sign(signing_key, t.claims(iss=iss))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        401, "Key not authorized: issuer claim must be a string")


def test_missing_audience_is_401_with_the_gateway_text(plugin, signing_key):
    token = t.sign(signing_key, t.claims(aud=t.DROP))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        401, "Key not authorized: audience claim is required but not present in token")


@pytest.mark.parametrize("aud", [5, None, {"aud": "https://api.example.com"}])
def test_an_audience_neither_string_nor_list_is_401_invalid_audience_claim_format(plugin, signing_key, aud):
    token = t.sign(signing_key, t.claims(aud=aud))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        401, "Key not authorized: invalid audience claim format")


def test_an_audience_list_ignores_entries_that_are_not_strings(plugin, signing_key):
    token = t.sign(signing_key, t.claims(aud=[7, t.AUDIENCE]))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == PASSES


def test_wrong_audience_is_401_listing_the_token_audiences(plugin, signing_key):
    token = t.sign(signing_key, t.claims(aud=["https://other", "https://x/userinfo"]))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        401, "Key not authorized: no matching audience found in token: [https://other https://x/userinfo]")


def test_require_jti_refuses_a_token_without_jti_with_the_oas_native_text(plugin, signing_key):
    token = t.sign(signing_key, t.claims(jti=t.DROP))
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config_data(require_jti=True)))) == (
        401, "Key not authorized: JWT ID (jti) claim is required but not present in token")


@pytest.mark.parametrize("jti", ["8b1f0c", "", None])
def test_require_jti_accepts_any_jti_value_even_null(plugin, signing_key, jti):
    token = t.sign(signing_key, t.claims(jti=jti))
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config_data(require_jti=True)))) == (-1, "")


def test_without_require_jti_a_token_needs_no_jti(plugin, signing_key):
    token = t.sign(signing_key, t.claims(jti=t.DROP))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


def test_require_jti_must_be_a_boolean(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), config=config_data(require_jti="yes")))
    assert reply_error(reply) == (500, "Auth plugin misconfigured: require_jti")


def test_no_policy_and_no_default_is_403_no_matching_policy_found(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        403, "key not authorized: no matching policy found")


def test_scopes_that_map_to_nothing_are_403_no_matching_policy_found_in_scope_claim(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="unmapped"))
    config = config_data(jwt_default_policies=["basic"], jwt_scope_to_policy_mapping={"admin": "admin-pol"})
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == (
        403, "key not authorized: no matching policy found in scope claim")


def test_empty_identity_claim_is_403_naming_the_base_claim(plugin, signing_key):
    token = t.sign(signing_key, t.claims(sub=""))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        403, "found an empty user ID in predefined base claim, claim: sub")


def test_empty_sub_without_a_base_field_is_403_found_an_empty_user_id_in_sub_claim(plugin, signing_key):
    token = t.sign(signing_key, t.claims(sub=""))
    config = config_data(jwt_identity_base_field="")
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == (
        403, "found an empty user ID in sub claim")


def test_missing_identity_is_403_no_suitable_claims(plugin, signing_key):
    token = t.sign(signing_key, t.claims(sub=t.DROP))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (
        403, "no suitable claims for user ID were found")


def test_id_token_typ_is_refused(plugin, signing_key):
    token = t.sign(signing_key, headers={"typ": "id_token+jwt"})
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_a_token_without_typ_passes(plugin, signing_key):
    token = t.sign(signing_key, headers={"typ": t.DROP})
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


@pytest.mark.parametrize("typ", [1, ["JWT"]])
def test_a_typ_that_is_not_a_string_is_refused(plugin, signing_key, typ):
    token = t.sign(signing_key, headers={"typ": typ})
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


def test_at_jwt_typ_of_the_rfc9068_profile_passes(plugin, signing_key):
    token = t.sign(signing_key, headers={"typ": "at+jwt"})
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


def rfc9068_claims(**overrides):
    """Claims as Auth0's RFC 9068 token profile writes them: client_id and jti, no azp or gty."""
    return t.claims(azp=t.DROP, gty=t.DROP, client_id="client-abc", jti="73WakrfVbNJBaAmhQtEeDv", **overrides)


def test_an_rfc9068_profile_token_gets_the_session_an_auth0_profile_token_gets(plugin, signing_key):
    auth0_profile = plugin.dispatch(auth_object(bearer(t.sign(signing_key))))
    rfc9068 = plugin.dispatch(auth_object(bearer(t.sign(signing_key, rfc9068_claims(), headers={"typ": "at+jwt"}))))
    assert reply_error(rfc9068) == (-1, "")
    assert list(rfc9068.session.apply_policies) == list(auth0_profile.session.apply_policies)
    assert rfc9068.metadata["token"] == auth0_profile.metadata["token"]


def test_an_rfc9068_profile_token_names_its_client_in_the_session(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key, rfc9068_claims(), headers={"typ": "at+jwt"}))))
    assert reply.session.oauth_client_id == "client-abc"
    assert reply.session.metadata["client_id"] == "client-abc"
    assert "azp" not in reply.session.metadata


def test_an_auth0_id_token_is_refused_by_the_audience_check_as_its_typ_is_jwt(plugin, signing_key):
    # Auth0 ID tokens carry typ JWT, like its access tokens: only their audience (the client id) tells them apart.
    id_token = t.claims(aud="client-abc", azp=t.DROP, gty=t.DROP, scope=t.DROP, pol=t.DROP,
                        sub="auth0|6553da60a54af58e29493993", nonce="n-0S6_WzA2Mj", at_hash="8515Yt3nDqWV_gguLTO7PQ")
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key, id_token, headers={"typ": "JWT"}))))
    assert reply_error(reply) == (401, "Key not authorized: no matching audience found in token: [client-abc]")


def test_jku_header_is_never_used_to_find_keys(plugin):
    attacker = t.rsa_key("attacker")
    token = t.sign(attacker, headers={"jku": "https://evil.example/jwks.json", "jwk": attacker.jwk()})
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == NOT_AUTHORIZED


# -- routing and configuration -----------------------------------------------------------------------

def test_unknown_hook_name_on_an_auth_call_fails_closed(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), hook_name="SomethingElse"))
    assert reply_error(reply) == (403, "Key not authorised")
    assert not reply.HasField("session")


@pytest.mark.parametrize("hook_type", [HookType.Pre, HookType.Post, HookType.PostKeyAuth, HookType.Response])
def test_unknown_hook_on_other_hook_types_passes_the_object_through(plugin, hook_type):
    obj = auth_object("Bearer x", hook_name="Unrelated", hook_type=hook_type)
    reply = plugin.dispatch(obj)
    assert reply == obj


def test_dispatch_event_is_answered_with_an_empty_event_reply(plugin):
    from plugin.coprocess import EventReply

    assert plugin.dispatch_event('{"message":{"Type":"AuthFailure"}}') == EventReply()


def test_bad_config_data_answers_500_naming_the_key(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), config=config_data(audience=7)))
    assert reply_error(reply) == (500, "Auth plugin misconfigured: audience")


def test_a_bad_config_answer_keeps_the_plugin_hosts_details_to_the_log(plugin, signing_key, monkeypatch):
    monkeypatch.delenv("SECRET_FOR_TESTS", raising=False)
    config = '{"jwt_signing_method": "hmac", "jwt_source_env": "SECRET_FOR_TESTS"}'
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), config=config))
    assert reply_error(reply) == (500, "Auth plugin misconfigured: jwt_source_env")


def test_each_refusal_of_a_misconfigured_api_is_a_fresh_error(plugin):
    spec = auth_object(config=config_data(audience=7)).spec
    raised = []
    for _ in range(3):
        with pytest.raises(ConfigurationError) as info:
            plugin.authenticator.configs.get(spec)
        raised.append(info.value)
    assert raised[0] is not raised[1] is not raised[2]
    assert all(error.key == "audience" for error in raised)


def test_bad_config_of_one_api_does_not_affect_another(plugin, signing_key):
    token = t.sign(signing_key)
    plugin.dispatch(auth_object(bearer(token), config='{"jwt_signing_method": "rsa", "audiance": "x"}', api_id="broken"))
    assert reply_error(plugin.dispatch(auth_object(bearer(token)))) == (-1, "")


def test_config_data_that_is_not_json_answers_500_naming_config_data(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), config="{not json"))
    assert reply_error(reply) == (500, "Auth plugin misconfigured: config_data")


def test_api_without_config_data_uses_the_server_wide_defaults(make_plugin, signing_key):
    plugin = make_plugin(defaults={"jwt_source": "https://tenant.example.auth0.com/.well-known/jwks.json",
                                   "audience": t.AUDIENCE})
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), with_config=False))
    assert reply_error(reply) == (-1, "")


def test_api_without_config_data_and_no_defaults_answers_500(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), with_config=False))
    code, message = reply_error(reply)
    assert code == 500 and "config_data" in message


# -- wrong types in claims never crash ---------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    {"sub": 12}, {"sub": None}, {"sub": ["a"]}, {"aud": 5}, {"aud": {"x": 1}}, {"iss": 5}, {"iss": None},
    {"pol": 3}, {"pol": {"a": 1}}, {"pol": [1, 2]}, {"scope": 9}, {"exp": None}, {"exp": True},
    {"exp": [1]}, {"iat": {}}, {"nbf": "1"}, {"azp": {"deep": [1, 2, {"x": None}]}},
])
def test_wrong_claim_types_get_a_4xx_never_a_crash(plugin, signing_key, overrides):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key, t.claims(**overrides)))))
    code, message = reply_error(reply)
    assert code == -1 or 400 <= code < 500, (code, message)
    assert message != "Key not authorised"  # the crash fallback


def test_refusals_are_summed_into_one_log_line_per_interval(caplog):
    import logging

    from plugin.hooks import RefusalLog

    now = [0.0]
    refusals = RefusalLog(interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="plugin.hooks"):
        for _ in range(500):
            refusals.record("api-a", 403, "signature")
            now[0] += 0.01
        now[0] += 10
        refusals.record("api-a", 401, "expired")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "count=499" in lines[1] and "reason=expired count=1" in lines[1]


def test_a_refusal_is_logged_under_the_api_that_refused_it(plugin, caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="plugin.hooks"):
        plugin.dispatch(auth_object(None, api_id="orders-api"))
    assert any("api=orders-api" in r.getMessage() and "reason=missing" in r.getMessage() for r in caplog.records)


def test_refusals_followed_by_silence_are_reported_once_the_interval_passes(caplog):
    import logging

    from plugin.hooks import RefusalLog

    now = [0.0]
    refusals = RefusalLog(interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="plugin.hooks"):
        for _ in range(6):
            refusals.record("api-a", 403, "signature")
        refusals.flush()
        now[0] += 10
        refusals.flush()
        refusals.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "count=5" in lines[1]


def test_pending_refusals_are_written_at_shutdown(caplog):
    import logging

    from plugin.hooks import RefusalLog

    refusals = RefusalLog(interval=10, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="plugin.hooks"):
        refusals.record("api-a", 403, "signature")
        refusals.record("api-a", 403, "signature")
        refusals.flush(force=True)
    assert "count=1" in caplog.records[-1].getMessage()
    assert len(caplog.records) == 2


def test_the_oauth_client_id_comes_from_the_client_id_claim_as_in_native_jwt(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key, t.claims(client_id="abc123")))))
    assert reply.session.oauth_client_id == "abc123"


def test_tokens_without_a_client_id_claim_leave_the_oauth_client_id_empty(plugin, signing_key):
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key))))
    assert reply.session.oauth_client_id == ""


def test_a_subject_claim_list_gives_the_identity_from_the_first_listed_claim_present(plugin, signing_key):
    token = t.sign(signing_key, t.claims(user_id="u-1"))
    config = config_data(jwt_identity_base_field=["email", "user_id"])
    assert plugin.dispatch(auth_object(bearer(token), config=config)).session.alias == "u-1"


def test_with_a_subject_claim_list_an_empty_sub_is_refused_as_a_base_claim(plugin, signing_key):
    token = t.sign(signing_key, t.claims(sub=""))
    config = config_data(jwt_identity_base_field=["email"])
    assert reply_error(plugin.dispatch(auth_object(bearer(token), config=config))) == (
        403, "found an empty user ID in predefined base claim, claim: sub")


def test_a_policy_claim_list_applies_the_first_listed_claim_naming_a_policy(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP, tier="gold"))
    config = config_data(jwt_policy_field_name=["https://example.com/pol", "tier"])
    assert list(plugin.dispatch(auth_object(bearer(token), config=config)).session.apply_policies) == ["gold"]


def test_a_scope_claim_list_falls_back_to_scope_as_oas_scopes_claims_do(plugin, signing_key):
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="admin"))
    config = config_data(jwt_scope_claim_name=["permissions"], jwt_default_policies=["basic"],
                         jwt_scope_to_policy_mapping={"admin": "admin-pol"})
    assert list(plugin.dispatch(auth_object(bearer(token), config=config)).session.apply_policies) == ["admin-pol"]
