"""DPoP (RFC 9449) on an API that turns it on: every proof check, the binding, the replay cache, and
the default that ignores DPoP entirely, as native JWT does."""

from __future__ import annotations

import time

import pytest

from plugin import dpop as dpoplib
from plugin.config import parse_config_data
from plugin.devstack.idp import DPoPKey, encode_jwt
from plugin.errors import ConfigurationError
from tests.support import tokens as t
from tests.support.objects import auth_object, config_data

# The request auth_object builds: the gateway's scheme, Host header and request_uri (query dropped).
URL = "http://127.0.0.1:8080/auth0-plugin/get"
CHALLENGE = 'DPoP error="invalid_dpop_proof", algs="ES256 EdDSA PS256 RS256"'


@pytest.fixture(scope="module")
def client_key() -> DPoPKey:
    return DPoPKey.generate("ES256")


@pytest.fixture()
def bound(signing_key, client_key) -> str:
    """An access token bound to the client's key, as Auth0 issues it to a DPoP client."""
    return t.sign(signing_key, t.claims(cnf={"jkt": client_key.thumbprint}))


def dpop_request(token: str, proof: str | None = None, *, mode: str = "required", scheme: str = "DPoP",
                 method: str = "GET", **config):
    obj = auth_object(f"{scheme} {token}" if scheme else token, config=config_data(dpop=mode, **config))
    obj.request.method = method
    if proof is not None:
        obj.request.headers["Dpop"] = proof
    return obj


def answer(reply) -> tuple[int, str]:
    overrides = reply.request.return_overrides
    return overrides.response_code, overrides.response_error


def refusal(text: str) -> tuple[int, str]:
    return 401, f"Key not authorized: {text}"


# -- accepted -----------------------------------------------------------------------------------------

def test_a_bound_token_with_a_valid_proof_gets_its_session(plugin, bound, client_key):
    reply = plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound)))
    assert answer(reply) == (-1, "")
    assert list(reply.session.apply_policies) == ["auth0-policy"]


def test_a_bound_token_session_is_never_reused_by_the_gateway_id_extractor(plugin, bound, client_key):
    reply = plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound)))
    assert reply.session.id_extractor_deadline == 0  # the gateway reuses a session only while it is in the future


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_each_default_proof_algorithm_is_accepted(plugin, signing_key, alg):
    key = DPoPKey.generate(alg)
    token = t.sign(signing_key, t.claims(cnf={"jkt": key.thumbprint}))
    assert answer(plugin.dispatch(dpop_request(token, key.proof("GET", URL, token)))) == (-1, "")


def test_the_dpop_scheme_is_read_in_any_letter_case(plugin, bound, client_key):
    assert answer(plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound), scheme="dpop"))) == (-1, "")


def test_a_proof_htu_with_a_query_and_fragment_matches_the_url_without_them(plugin, bound, client_key):
    proof = client_key.proof("GET", URL + "?other=2#part", bound)
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == (-1, "")


def test_a_proof_htu_matches_after_rfc_3986_normalization(plugin, bound, client_key):
    proof = client_key.proof("GET", "HTTP://127.0.0.1:8080/auth0-plugin/./%67et", bound)
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == (-1, "")


def test_a_proof_iat_within_the_leeway_ahead_is_accepted(plugin, bound, client_key):
    proof = client_key.proof("GET", URL, bound, claims={"iat": int(time.time()) + 20})
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == (-1, "")


def test_behind_a_proxy_the_proof_names_the_public_base_url(plugin, bound, client_key):
    proof = client_key.proof("GET", "https://api.example.com/gw/auth0-plugin/get", bound)
    request = dpop_request(bound, proof, dpop_base_url="https://api.example.com/gw/")
    assert answer(plugin.dispatch(request)) == (-1, "")


def test_the_token_verification_is_cached_while_each_proof_is_checked(plugin, bound, client_key):
    plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound)))
    hits = plugin.authenticator.hits
    reply = plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound)))
    assert answer(reply) == (-1, "") and plugin.authenticator.hits == hits + 1


# -- allowed and required -----------------------------------------------------------------------------

def test_allowed_admits_a_bearer_token_without_cnf_with_the_usual_cache_deadline(plugin, signing_key):
    exp = int(time.time()) + 120
    reply = plugin.dispatch(dpop_request(t.sign(signing_key, t.claims(exp=exp)), mode="allowed", scheme="Bearer"))
    assert answer(reply) == (-1, "")
    assert reply.session.id_extractor_deadline == exp


def test_allowed_checks_the_proof_of_a_bound_token(plugin, bound, client_key):
    reply = plugin.dispatch(dpop_request(bound, client_key.proof("POST", URL, bound), mode="allowed"))
    assert answer(reply) == refusal("DPoP proof htm does not match the request method")


def test_required_refuses_a_bearer_token_without_cnf(plugin, signing_key):
    reply = plugin.dispatch(dpop_request(t.sign(signing_key), scheme="Bearer"))
    assert answer(reply) == refusal("DPoP-bound token required")
    assert reply.request.return_overrides.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


@pytest.mark.parametrize("scheme", ["Bearer", ""])
def test_a_bound_token_sent_as_a_bearer_token_is_refused(plugin, bound, client_key, scheme):
    reply = plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound), mode="allowed", scheme=scheme))
    assert answer(reply) == refusal("DPoP-bound token must be sent with the DPoP scheme")


def test_an_unbound_token_sent_with_the_dpop_scheme_is_refused(plugin, signing_key, client_key):
    token = t.sign(signing_key)
    reply = plugin.dispatch(dpop_request(token, client_key.proof("GET", URL, token), mode="allowed"))
    assert answer(reply) == refusal("token sent with the DPoP scheme is not DPoP-bound")


def test_a_bad_access_token_gets_its_own_refusal_before_any_proof_check(plugin, signing_key, client_key):
    expired = t.sign(signing_key, t.claims(exp=1, cnf={"jkt": client_key.thumbprint}))
    assert answer(plugin.dispatch(dpop_request(expired))) == (401, "Key not authorized: token has expired")


# -- off by default -----------------------------------------------------------------------------------

def test_dpop_is_off_unless_config_data_turns_it_on():
    assert parse_config_data(config_data()).dpop is None


def test_off_a_bound_token_passes_as_a_bearer_token_as_native_jwt_takes_it(plugin, bound):
    assert answer(plugin.dispatch(auth_object(f"Bearer {bound}"))) == (-1, "")


def test_off_a_bound_token_s_session_is_never_left_for_the_gateway_to_reuse(plugin, bound):
    """The gateway shares an ID-extractor session among an org's APIs: one kept here would be served
    for the same Bearer header on an API of the org that requires a proof, without asking the plugin."""
    for _ in range(2):  # verified, then from the verified-token cache
        assert plugin.dispatch(auth_object(f"Bearer {bound}")).session.id_extractor_deadline == 0


def test_off_an_unbound_token_keeps_the_usual_cache_deadline(plugin, signing_key):
    exp = int(time.time()) + 120
    assert plugin.dispatch(auth_object(f"Bearer {t.sign(signing_key, t.claims(exp=exp))}")).session.id_extractor_deadline == exp


def test_off_the_dpop_scheme_is_not_read_as_native_jwt_does_not_read_it(plugin, bound, client_key):
    obj = auth_object(f"DPoP {bound}")
    obj.request.headers["Dpop"] = client_key.proof("GET", URL, bound)
    assert answer(plugin.dispatch(obj)) == (403, "Key not authorized")


def test_off_a_dpop_header_changes_nothing(plugin, signing_key):
    obj = auth_object(f"Bearer {t.sign(signing_key)}")
    obj.request.headers["Dpop"] = "not a proof"
    assert answer(plugin.dispatch(obj)) == (-1, "")


def test_disabled_by_name_is_the_same_as_absent():
    assert parse_config_data(config_data(dpop="disabled")).dpop is None


# -- each check of the proof --------------------------------------------------------------------------

def test_a_bound_token_without_a_proof_is_refused(plugin, bound):
    reply = plugin.dispatch(dpop_request(bound))
    assert answer(reply) == refusal("DPoP proof missing")


def test_a_refusal_carries_the_dpop_challenge_naming_the_algorithms(plugin, bound):
    reply = plugin.dispatch(dpop_request(bound))
    assert dict(reply.request.return_overrides.headers) == {"WWW-Authenticate": CHALLENGE}


@pytest.mark.parametrize("proof", ["two.segments", "a.b.c.d", "!!.!!.!!", "x" * (dpoplib.MAX_PROOF_BYTES + 1)])
def test_a_proof_that_is_not_a_compact_jws_is_refused(plugin, bound, proof):
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof is not a well-formed JWT")


def test_a_proof_with_a_crit_header_is_refused(plugin, bound, client_key):
    proof = client_key.proof("GET", URL, bound, headers={"crit": ["exp"]})
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof is not a well-formed JWT")


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt"])
def test_a_proof_whose_typ_is_not_dpop_jwt_is_refused(plugin, bound, client_key, typ):
    headers = {"typ": typ} if typ else {"typ": None}
    proof = client_key.proof("GET", URL, bound, headers=headers)
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof typ is not dpop+jwt")


def test_a_proof_signed_with_an_algorithm_the_api_does_not_allow_is_refused(plugin, signing_key):
    key = DPoPKey.generate("RS256")
    token = t.sign(signing_key, t.claims(cnf={"jkt": key.thumbprint}))
    request = dpop_request(token, key.proof("GET", URL, token), dpop_allowed_algorithms=["ES256"])
    reply = plugin.dispatch(request)
    assert answer(reply) == refusal("DPoP proof algorithm is not allowed")
    assert reply.request.return_overrides.headers["WWW-Authenticate"].endswith('algs="ES256"')


def test_a_proof_header_one_api_accepted_is_still_held_to_another_api_algorithms(plugin, signing_key):
    key = DPoPKey.generate("RS256")
    token = t.sign(signing_key, t.claims(cnf={"jkt": key.thumbprint}))
    assert answer(plugin.dispatch(dpop_request(token, key.proof("GET", URL, token)))) == (-1, "")
    narrow = dpop_request(token, key.proof("GET", URL, token), dpop_allowed_algorithms=["ES256"])
    assert answer(plugin.dispatch(narrow)) == refusal("DPoP proof algorithm is not allowed")


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_a_symmetric_or_unsigned_proof_is_refused(plugin, bound, client_key, alg):
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": client_key.public_jwk()}
    claims = {"jti": "j1", "htm": "GET", "htu": URL, "iat": int(time.time()), "ath": dpoplib.token_hash(bound)}
    proof = encode_jwt(header, claims, b"secret" if alg == "HS256" else None)
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof algorithm is not allowed")


@pytest.mark.parametrize("member", ["d", "p", "k"])
def test_a_proof_whose_jwk_holds_a_private_member_is_refused(plugin, bound, client_key, member):
    jwk = {**client_key.public_jwk(), member: "AQAB"}
    proof = client_key.proof("GET", URL, bound, headers={"jwk": jwk})
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof jwk holds a private key")


@pytest.mark.parametrize("jwk", [
    None,
    "a string",
    {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    {"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
    {"kty": "EC", "crv": "P-256", "x": t.b64url(b"\x01" * 32), "y": t.b64url(b"\x02" * 32)},
], ids=["absent", "not-an-object", "kty-of-another-alg", "curve-of-another-alg", "point-off-the-curve"])
def test_a_proof_whose_jwk_is_no_usable_public_key_for_its_alg_is_refused(plugin, bound, client_key, jwk):
    proof = client_key.proof("GET", URL, bound, headers={"jwk": jwk})  # None removes it
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal(
        "DPoP proof jwk is not a usable public key for its alg")


def test_a_proof_with_an_rsa_key_under_2048_bits_is_refused(plugin, bound):
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = DPoPKey(rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256")
    proof = small.proof("GET", URL, bound)
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal(
        "DPoP proof jwk is not a usable public key for its alg")


def test_a_proof_whose_signature_does_not_verify_under_its_jwk_is_refused(plugin, bound, client_key):
    header, _, signature = client_key.proof("GET", URL, bound).split(".")
    other_claims = client_key.proof("GET", URL, bound).split(".")[1]
    proof = f"{header}.{other_claims}.{signature}"
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof signature is invalid")


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat", "ath"])
def test_a_proof_without_a_required_claim_is_refused(plugin, bound, client_key, claim):
    proof = client_key.proof("GET", URL, bound, drop=[claim])
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal(
        "DPoP proof lacks one of the claims jti, htm, htu, iat, ath")


def test_a_proof_whose_iat_is_not_a_number_is_refused(plugin, bound, client_key):
    proof = client_key.proof("GET", URL, bound, claims={"iat": str(int(time.time()))})
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal(
        "DPoP proof lacks one of the claims jti, htm, htu, iat, ath")


def test_a_proof_for_another_method_is_refused(plugin, bound, client_key):
    reply = plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound), method="DELETE"))
    assert answer(reply) == refusal("DPoP proof htm does not match the request method")


@pytest.mark.parametrize("htu", [
    "http://127.0.0.1:8080/auth0-plugin/post",
    "https://127.0.0.1:8080/auth0-plugin/get",
    "http://127.0.0.2:8080/auth0-plugin/get",
    "http://127.0.0.1:8081/auth0-plugin/get",
    "http://user@127.0.0.1:8080/auth0-plugin/get",
    "/auth0-plugin/get",
], ids=["path", "scheme", "host", "port", "userinfo", "relative"])
def test_a_proof_for_another_url_is_refused(plugin, bound, client_key, htu):
    proof = client_key.proof("GET", htu, bound)
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof htu does not match the request URL")


def test_behind_a_proxy_a_proof_naming_the_gateway_own_address_is_refused(plugin, bound, client_key):
    request = dpop_request(bound, client_key.proof("GET", URL, bound), dpop_base_url="https://api.example.com")
    assert answer(plugin.dispatch(request)) == refusal("DPoP proof htu does not match the request URL")


@pytest.mark.parametrize("age", [301, -31], ids=["older-than-iat-offset", "further-ahead-than-iat-leeway"])
def test_a_proof_iat_outside_the_window_is_refused(plugin, bound, client_key, age):
    proof = client_key.proof("GET", URL, bound, claims={"iat": int(time.time()) - age})
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof iat is outside the accepted window")


def test_the_iat_window_follows_the_api_settings(plugin, bound, client_key):
    proof = client_key.proof("GET", URL, bound, claims={"iat": int(time.time()) - 90})
    reply = plugin.dispatch(dpop_request(bound, proof, dpop_iat_offset=60))
    assert answer(reply) == refusal("DPoP proof iat is outside the accepted window")


def test_a_proof_made_for_another_access_token_is_refused(plugin, bound, client_key):
    proof = client_key.proof("GET", URL, "another.access.token")
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof ath does not match the access token")


def test_a_proof_signed_by_another_key_than_the_token_is_bound_to_is_refused(plugin, bound):
    stranger = DPoPKey.generate("ES256")
    reply = plugin.dispatch(dpop_request(bound, stranger.proof("GET", URL, bound)))
    assert answer(reply) == refusal("DPoP proof key does not match the token's cnf.jkt")


def test_a_binding_that_is_not_a_string_matches_no_proof(plugin, signing_key, client_key):
    token = t.sign(signing_key, t.claims(cnf={"jkt": 7}))
    reply = plugin.dispatch(dpop_request(token, client_key.proof("GET", URL, token)))
    assert answer(reply) == refusal("DPoP proof key does not match the token's cnf.jkt")


# -- replay -------------------------------------------------------------------------------------------

def test_a_replayed_proof_is_refused(plugin, bound, client_key):
    proof = client_key.proof("GET", URL, bound)
    plugin.dispatch(dpop_request(bound, proof))
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == refusal("DPoP proof has already been used")


def test_a_fresh_proof_after_one_is_accepted(plugin, bound, client_key):
    plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound)))
    assert answer(plugin.dispatch(dpop_request(bound, client_key.proof("GET", URL, bound)))) == (-1, "")


def test_a_refused_proof_is_not_remembered(plugin, bound, client_key):
    proof = client_key.proof("GET", URL, bound)
    assert answer(plugin.dispatch(dpop_request(bound, proof, method="POST")))[0] == 401
    assert answer(plugin.dispatch(dpop_request(bound, proof))) == (-1, "")


def test_a_new_configuration_has_its_own_replay_cache():
    first = parse_config_data(config_data(dpop="required"))
    second = parse_config_data(config_data(dpop="required"))
    assert first.dpop is not None and second.dpop is not None
    assert first.dpop.replay is not second.dpop.replay


def test_the_replay_cache_forgets_a_jti_once_its_window_has_passed():
    cache = dpoplib.ReplayCache()
    assert cache.admit("j1", until=100.0, now=50.0)
    assert not cache.admit("j1", until=110.0, now=99.0)
    assert cache.admit("j1", until=200.0, now=101.0)


def test_the_replay_cache_drops_expired_entries_as_it_goes():
    cache = dpoplib.ReplayCache()
    for i in range(5):
        cache.admit(f"j{i}", until=10.0, now=1.0)
    cache.admit("later", until=100.0, now=11.0)
    assert len(cache) == 1


def test_the_replay_cache_is_bounded_and_forgets_the_oldest_first(caplog):
    cache = dpoplib.ReplayCache(size=2)
    for jti in ("a", "b", "c"):
        assert cache.admit(jti, until=100.0, now=1.0)
    assert len(cache) == 2 and cache.forgotten == 1
    assert cache.admit("a", until=100.0, now=1.0)  # forgotten before its window ended
    assert not cache.admit("c", until=100.0, now=1.0)
    assert "dpop replay cache full" in caplog.text


# -- pieces -------------------------------------------------------------------------------------------

def test_the_thumbprint_is_rfc_7638_example():
    jwk = {"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
           "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
                "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQ"
                "MicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRw"
                "r3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
    assert dpoplib.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_the_stand_in_client_and_the_plugin_compute_one_thumbprint(alg):
    key = DPoPKey.generate(alg)
    assert dpoplib.thumbprint(key.public_jwk()) == key.thumbprint


@pytest.mark.parametrize(("url", "normalized"), [
    ("HTTPS://Api.Example.COM:443/a/b", "https://api.example.com/a/b"),
    ("http://api.example.com:80", "http://api.example.com/"),
    ("http://api.example.com:8080/a/../b/./c?q=1#f", "http://api.example.com:8080/b/c"),
    ("http://[::1]:8080/%7e%2f", "http://[::1]:8080/~%2F"),
    ("ftp://api.example.com/", None),
    ("http://u:p@api.example.com/", None),
    ("http://api.example.com:99999/", None),
])
def test_urls_are_compared_after_rfc_3986_normalization(url, normalized):
    assert dpoplib.normalize_url(url) == normalized


# -- configuration --------------------------------------------------------------------------------------

def test_required_and_allowed_parse_with_auth0_sdk_defaults():
    settings = parse_config_data(config_data(dpop="Required")).dpop
    assert settings is not None and settings.required
    assert (settings.iat_offset, settings.iat_leeway, settings.base_url) == (300, 30, "")
    assert settings.algorithms == {"ES256", "RS256", "PS256", "EdDSA"}
    allowed = parse_config_data(config_data(dpop="allowed")).dpop
    assert allowed is not None and not allowed.required


@pytest.mark.parametrize(("data", "key"), [
    ({"dpop": "on"}, "dpop"),
    ({"dpop": True}, "dpop"),
    ({"dpop": "required", "use_param": True}, "dpop"),
    ({"dpop": "required", "use_cookie": True}, "dpop"),
    ({"dpop": "required", "dpop_allowed_algorithms": ["HS256"]}, "dpop_allowed_algorithms"),
    ({"dpop": "required", "dpop_allowed_algorithms": []}, "dpop_allowed_algorithms"),
    ({"dpop": "required", "dpop_iat_offset": 0}, "dpop_iat_offset"),
    ({"dpop": "required", "dpop_iat_offset": 3601}, "dpop_iat_offset"),
    ({"dpop": "required", "dpop_iat_leeway": -1}, "dpop_iat_leeway"),
    ({"dpop": "required", "dpop_base_url": "api.example.com"}, "dpop_base_url"),
    ({"dpop": "required", "dpop_base_url": "https://api.example.com/?x=1"}, "dpop_base_url"),
    ({"dpop": "required", "dpop_jti_cache_size": 0}, "dpop_jti_cache_size"),
    ({"dpop_iat_offset": "soon"}, "dpop_iat_offset"),  # checked even while DPoP is off
])
def test_a_bad_dpop_setting_is_refused_naming_its_key(data, key):
    with pytest.raises(ConfigurationError) as refused:
        parse_config_data(config_data(**data))
    assert refused.value.key == key


def test_the_base_url_is_kept_normalized_without_a_trailing_slash():
    settings = parse_config_data(config_data(dpop="allowed", dpop_base_url="HTTPS://API.example.com:443/gw/")).dpop
    assert settings is not None and settings.base_url == "https://api.example.com/gw"
