"""The Auth0 stand-in behaves like an Auth0 tenant where the plugin and Tyk can tell."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from plugin.config import parse_config_data
from plugin.devstack.idp import RFC9068_PROFILE, AuthZeroStandIn, Client, DPoPKey, SigningKey, b64url
from plugin.devstack.procs import http_request
from plugin.jwks import FetchError, JwksCache, http_fetch, parse_jwks
from plugin.verify import Verifier

AUDIENCE = "https://api.example.test/"
OTHER_AUDIENCE = "https://other.example.test/"
RFC9068_AUDIENCE = "https://rfc9068.example.test/"  # an API set to Auth0's RFC 9068 token profile


@pytest.fixture(scope="module")
def idp() -> Iterator[AuthZeroStandIn]:
    clients = {
        "m2m": Client("s3cret", claims={"pol": "auth0-policy"}, scope="read:echo write:echo"),
        "narrow": Client("narrow-secret", audiences=(AUDIENCE,)),
    }
    with AuthZeroStandIn(audience=[AUDIENCE, OTHER_AUDIENCE, RFC9068_AUDIENCE], clients=clients,
                         profiles={RFC9068_AUDIENCE: RFC9068_PROFILE}) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_hooks(idp: AuthZeroStandIn) -> Iterator[None]:
    yield
    idp.fail_jwks(None)
    idp.break_jwks(None)
    idp.jwks_delay(0)


def fetch_jwks(idp: AuthZeroStandIn) -> dict:
    result = http_request("GET", idp.jwks_url)
    assert result.status == 200, result.text
    return result.json()


def verify(token: str, jwks: dict, audience: str = AUDIENCE, issuer: str | None = None) -> dict:
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk).key
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer)


def token_request(idp: AuthZeroStandIn, **body: str) -> tuple[int, dict]:
    result = http_request("POST", idp.token_url, body=body)
    return result.status, result.json()


# -- discovery and JWKS ------------------------------------------------------------


def test_discovery_document_points_at_the_tenant(idp: AuthZeroStandIn) -> None:
    doc = http_request("GET", idp.discovery_url).json()
    assert doc["issuer"] == idp.issuer
    assert idp.issuer.endswith("/") and idp.issuer.startswith("http://127.0.0.1:")
    assert doc["jwks_uri"] == idp.jwks_url == idp.issuer + ".well-known/jwks.json"
    assert doc["token_endpoint"] == idp.issuer + "oauth/token"
    assert "client_credentials" in doc["grant_types_supported"]


def test_jwks_publishes_current_and_next_key_like_auth0(idp: AuthZeroStandIn) -> None:
    keys = fetch_jwks(idp)["keys"]
    assert [k["kid"] for k in keys[:2]] == [idp.current_key.kid, idp.next_key.kid]
    for jwk in keys:
        assert {"kty", "use", "alg", "n", "e", "kid", "x5t", "x5c"} <= set(jwk)
        assert (jwk["kty"], jwk["use"], jwk["alg"], jwk["e"]) == ("RSA", "sig", "RS256", "AQAB")
        der = base64.b64decode(jwk["x5c"][0])
        assert jwk["x5t"] == b64url(hashlib.sha1(der).digest())
        cert_key = x509.load_der_x509_certificate(der).public_key()
        # The certificate carries the same public key as n/e.
        n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=="), "big")
        assert isinstance(cert_key, rsa.RSAPublicKey)
        assert cert_key.public_numbers().n == n
        assert n.bit_length() == 2048


def test_jwks_fetches_are_counted(idp: AuthZeroStandIn) -> None:
    before = idp.jwks_fetches
    fetch_jwks(idp)
    fetch_jwks(idp)
    assert idp.jwks_fetches == before + 2


# -- the token endpoint ------------------------------------------------------------


def test_walkthrough_token_request_returns_an_auth0_shaped_token(idp: AuthZeroStandIn) -> None:
    status, body = token_request(
        idp, client_id="m2m", client_secret="s3cret", audience=AUDIENCE, grant_type="client_credentials"
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "read:echo write:echo"

    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": idp.current_key.kid}

    claims = verify(token, fetch_jwks(idp), issuer=idp.issuer)
    assert claims["iss"] == idp.issuer
    assert claims["sub"] == "m2m@clients"
    assert claims["aud"] == AUDIENCE
    assert claims["azp"] == "m2m"
    assert claims["gty"] == "client-credentials"
    assert claims["scope"] == "read:echo write:echo"
    assert claims["pol"] == "auth0-policy"
    assert claims["exp"] - claims["iat"] == 86400
    assert abs(claims["iat"] - time.time()) < 5


M2M_REQUEST = {"client_id": "m2m", "client_secret": "s3cret", "audience": AUDIENCE, "grant_type": "client_credentials"}


def test_a_token_request_with_a_dpop_proof_gets_a_token_bound_to_its_key(idp: AuthZeroStandIn) -> None:
    key = DPoPKey.generate()
    result = http_request("POST", idp.token_url, body=M2M_REQUEST, headers={"DPoP": key.proof("POST", idp.token_url)})
    assert result.status == 200, result.text
    body = result.json()
    assert body["token_type"] == "DPoP"
    claims = verify(body["access_token"], fetch_jwks(idp), issuer=idp.issuer)
    assert claims["cnf"] == {"jkt": key.thumbprint}


def test_a_token_request_with_a_proof_for_another_url_is_refused_as_auth0_refuses_it(idp: AuthZeroStandIn) -> None:
    proof = DPoPKey.generate().proof("POST", idp.url + "authorize")
    result = http_request("POST", idp.token_url, body=M2M_REQUEST, headers={"DPoP": proof})
    assert (result.status, result.json()["error"]) == (400, "invalid_dpop_proof")


def test_a_token_request_proof_is_accepted_once(idp: AuthZeroStandIn) -> None:
    proof = DPoPKey.generate().proof("POST", idp.token_url)
    first = http_request("POST", idp.token_url, body=M2M_REQUEST, headers={"DPoP": proof})
    again = http_request("POST", idp.token_url, body=M2M_REQUEST, headers={"DPoP": proof})
    assert (first.status, again.status) == (200, 400)


def test_a_token_request_without_a_proof_gets_a_bearer_token_without_cnf(idp: AuthZeroStandIn) -> None:
    status, body = token_request(idp, **M2M_REQUEST)
    assert (status, body["token_type"]) == (200, "Bearer")
    assert "cnf" not in verify(body["access_token"], fetch_jwks(idp))


def test_discovery_names_the_dpop_proof_algorithms(idp: AuthZeroStandIn) -> None:
    doc = http_request("GET", idp.discovery_url).json()
    assert "ES256" in doc["dpop_signing_alg_values_supported"]


def test_form_encoded_and_basic_auth_token_requests_work_too(idp: AuthZeroStandIn) -> None:
    form = f"grant_type=client_credentials&client_id=m2m&client_secret=s3cret&audience={AUDIENCE}"
    result = http_request(
        "POST", idp.token_url, body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert result.status == 200, result.text
    basic = base64.b64encode(b"m2m:s3cret").decode()
    result = http_request(
        "POST",
        idp.token_url,
        body={"grant_type": "client_credentials", "audience": AUDIENCE},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert result.status == 200, result.text


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"client_id": "m2m", "client_secret": "wrong"}, 401, "access_denied"),
        ({"client_id": "nobody", "client_secret": "s3cret"}, 401, "access_denied"),
        ({"client_id": "m2m"}, 401, "access_denied"),
        ({"client_id": "m2m", "client_secret": "s3cret", "audience": "https://unknown/"}, 403, "access_denied"),
        ({"client_id": "m2m", "client_secret": "s3cret", "audience": ""}, 403, "access_denied"),
        ({"client_id": "narrow", "client_secret": "narrow-secret", "audience": OTHER_AUDIENCE}, 403, "access_denied"),
        ({"client_id": "m2m", "client_secret": "s3cret", "grant_type": "password"}, 403, "unauthorized_client"),
        ({"client_id": "m2m", "client_secret": "s3cret", "grant_type": ""}, 400, "invalid_request"),
    ],
)
def test_token_errors_look_like_auth0(idp: AuthZeroStandIn, body: dict, status: int, error: str) -> None:
    request = {"audience": AUDIENCE, "grant_type": "client_credentials", **body}
    got_status, got = token_request(idp, **request)
    assert (got_status, got["error"]) == (status, error)
    assert got["error_description"]
    if status == 401:
        assert got == {"error": "access_denied", "error_description": "Unauthorized"}


def test_unknown_audience_names_the_service(idp: AuthZeroStandIn) -> None:
    _, body = token_request(
        idp, client_id="m2m", client_secret="s3cret", audience="https://unknown/", grant_type="client_credentials"
    )
    assert body["error_description"] == "Service not found: https://unknown/"


def test_second_audience_is_granted(idp: AuthZeroStandIn) -> None:
    status, body = token_request(
        idp, client_id="m2m", client_secret="s3cret", audience=OTHER_AUDIENCE, grant_type="client_credentials"
    )
    assert status == 200
    assert verify(body["access_token"], fetch_jwks(idp), audience=OTHER_AUDIENCE)["aud"] == OTHER_AUDIENCE


def test_an_api_on_the_rfc9068_profile_gets_at_jwt_tokens_with_client_id_and_jti(idp: AuthZeroStandIn) -> None:
    status, body = token_request(
        idp, client_id="m2m", client_secret="s3cret", audience=RFC9068_AUDIENCE, grant_type="client_credentials"
    )
    assert status == 200, body
    token = body["access_token"]
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "at+jwt", "kid": idp.current_key.kid}
    claims = verify(token, fetch_jwks(idp), audience=RFC9068_AUDIENCE, issuer=idp.issuer)
    assert claims["client_id"] == "m2m"
    assert claims["sub"] == "m2m@clients"
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert "azp" not in claims and "gty" not in claims


def test_each_api_keeps_its_own_token_profile(idp: AuthZeroStandIn) -> None:
    default = jwt.decode(idp.issue_token("m2m", audience=OTHER_AUDIENCE), options={"verify_signature": False})
    rfc9068 = jwt.decode(idp.issue_token("m2m", audience=RFC9068_AUDIENCE), options={"verify_signature": False})
    assert (default["azp"], default["gty"]) == ("m2m", "client-credentials")
    assert "client_id" not in default and "jti" not in default
    assert rfc9068["client_id"] == "m2m" and "azp" not in rfc9068


def test_every_rfc9068_token_has_its_own_jti(idp: AuthZeroStandIn) -> None:
    first, second = (jwt.decode(idp.issue_token("m2m", audience=RFC9068_AUDIENCE),
                                options={"verify_signature": False}) for _ in range(2))
    assert first["jti"] != second["jti"]


def test_an_unknown_token_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="token profile 'jwt' is not one of"):
        AuthZeroStandIn(audience=AUDIENCE, profiles={AUDIENCE: "jwt"})


def test_the_plugin_verifies_tokens_of_both_profiles(idp: AuthZeroStandIn) -> None:
    verifier = Verifier(JwksCache())
    for audience in (AUDIENCE, RFC9068_AUDIENCE):
        config = parse_config_data(json.dumps({"jwt_source": idp.jwks_url, "issuer": idp.issuer, "audience": audience}))
        verified = verifier.verify(idp.issue_token("m2m", audience=audience), config)
        assert verified.claims["sub"] == "m2m@clients"


def test_malformed_body_is_a_400(idp: AuthZeroStandIn) -> None:
    result = http_request("POST", idp.token_url, body=b"{not json", headers={"Content-Type": "application/json"})
    assert result.status == 400
    assert result.json()["error"] == "invalid_request"


# -- issue_token for tests ---------------------------------------------------------


def test_issue_token_overrides_claims_and_headers(idp: AuthZeroStandIn) -> None:
    token = idp.issue_token(
        "m2m",
        pol="limited",
        sub="someone@clients",
        claims={"https://example.com/roles": ["a"]},
        drop=["scope"],
        headers={"typ": "at+jwt", "x-extra": 1},
        lifetime=60,
    )
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["x-extra"] == 1 and header["kid"] == idp.current_key.kid
    claims = verify(token, fetch_jwks(idp))
    assert claims["pol"] == "limited"
    assert claims["sub"] == "someone@clients"
    assert claims["https://example.com/roles"] == ["a"]
    assert "scope" not in claims
    assert claims["exp"] - claims["iat"] == 60


def test_issue_token_can_drop_header_fields(idp: AuthZeroStandIn) -> None:
    token = idp.issue_token("m2m", headers={"kid": None, "typ": None})
    assert jwt.get_unverified_header(token) == {"alg": "RS256"}


def test_issue_token_for_an_unregistered_client_still_has_auth0_claims(idp: AuthZeroStandIn) -> None:
    claims = verify(idp.issue_token("made-up"), fetch_jwks(idp))
    assert claims["sub"] == "made-up@clients" and claims["azp"] == "made-up"


def test_unknown_key_is_not_in_the_jwks(idp: AuthZeroStandIn) -> None:
    token = idp.issue_token("m2m", key="unknown")
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid == idp.unknown_key.kid
    assert kid not in {k["kid"] for k in fetch_jwks(idp)["keys"]}
    public = idp.unknown_key.private_key.public_key()
    assert jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE)["sub"] == "m2m@clients"


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "PS384", "PS512"])
def test_other_rsa_algorithms_verify_with_the_published_key(idp: AuthZeroStandIn, alg: str) -> None:
    token = idp.issue_token("m2m", alg=alg)
    assert jwt.get_unverified_header(token)["alg"] == alg
    public = idp.current_key.private_key.public_key()
    assert jwt.decode(token, public, algorithms=[alg], audience=AUDIENCE)["azp"] == "m2m"


def test_hs256_token_uses_the_api_signing_secret(idp: AuthZeroStandIn) -> None:
    token = idp.issue_token("m2m", alg="HS256")
    assert "kid" not in jwt.get_unverified_header(token)
    assert jwt.decode(token, idp.hs256_secret, algorithms=["HS256"], audience=AUDIENCE)["azp"] == "m2m"


def test_es256_and_none_tokens_can_be_minted(idp: AuthZeroStandIn) -> None:
    es = idp.issue_token("m2m", alg="ES256")
    assert jwt.get_unverified_header(es)["alg"] == "ES256"
    unsigned = idp.issue_token("m2m", alg="none")
    assert unsigned.endswith(".") and unsigned.count(".") == 2
    assert jwt.get_unverified_header(unsigned)["alg"] == "none"


def test_bad_key_choice_is_rejected(idp: AuthZeroStandIn) -> None:
    with pytest.raises(ValueError):
        idp.issue_token("m2m", key="sideways")
    with pytest.raises(ValueError):
        idp.issue_token("m2m", alg="XX999")


# -- rotation ----------------------------------------------------------------------


def test_rotation_follows_auth0() -> None:
    with AuthZeroStandIn(audience=AUDIENCE, clients={"c": Client("s")}) as idp:
        with pytest.raises(ValueError):
            idp.issue_token("c", key="previous")
        first, upcoming = idp.current_key, idp.next_key
        old_token = idp.issue_token("c")
        early_next = idp.issue_token("c", key="next")

        new_current = idp.rotate()
        assert new_current is upcoming is idp.current_key
        assert idp.next_key not in (first, upcoming)
        kids = [k["kid"] for k in fetch_jwks(idp)["keys"]]
        assert kids == [upcoming.kid, idp.next_key.kid, first.kid]

        # Tokens signed before the rotation still verify; new ones use the old "next" key.
        jwks = fetch_jwks(idp)
        verify(old_token, jwks)
        verify(early_next, jwks)
        assert jwt.get_unverified_header(idp.issue_token("c"))["kid"] == upcoming.kid
        assert jwt.get_unverified_header(idp.issue_token("c", key="previous"))["kid"] == first.kid

        assert idp.revoke_previous() == [first.kid]
        kids = [k["kid"] for k in fetch_jwks(idp)["keys"]]
        assert first.kid not in kids and len(kids) == 2
        # A token signed with the revoked key can still be minted for negative tests.
        assert jwt.get_unverified_header(idp.issue_token("c", key="previous"))["kid"] == first.kid
        assert idp.stats()["revoked_kids"] == [first.kid]


def test_two_rotations_keep_both_previous_keys_until_revoked() -> None:
    with AuthZeroStandIn(audience=AUDIENCE) as idp:
        a = idp.current_key
        idp.rotate()
        b = idp.current_key
        idp.rotate()
        assert [k.kid for k in idp.previous_keys] == [b.kid, a.kid]
        assert len(fetch_jwks(idp)["keys"]) == 4
        idp.revoke_previous()
        assert len(fetch_jwks(idp)["keys"]) == 2


# -- failure hooks -----------------------------------------------------------------


def test_jwks_failure_hook(idp: AuthZeroStandIn) -> None:
    idp.fail_jwks(503)
    before = idp.jwks_fetches
    result = http_request("GET", idp.jwks_url)
    assert result.status == 503
    assert idp.jwks_fetches == before + 1
    idp.fail_jwks(None)
    assert http_request("GET", idp.jwks_url).status == 200


def test_a_rate_limited_jwks_answer_carries_auth0s_rate_limit_headers(idp: AuthZeroStandIn) -> None:
    idp.fail_jwks(429, reset_after=30)
    result = http_request("GET", idp.jwks_url)
    assert result.status == 429
    headers = {k.lower(): v for k, v in result.headers.items()}
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("20", "0")
    assert 29 <= int(headers["x-ratelimit-reset"]) - time.time() <= 31
    assert "retry-after" not in headers


def test_the_plugin_waits_out_auth0s_rate_limit_before_fetching_again(idp: AuthZeroStandIn) -> None:
    idp.fail_jwks(429, reset_after=30)
    with pytest.raises(FetchError, match="HTTP 429") as refused:
        http_fetch(idp.jwks_url, 3.0, 1 << 20)
    assert refused.value.retry_after is not None and 28 <= refused.value.retry_after <= 31


def test_an_html_jwks_fault_answers_200_with_a_page_the_plugin_refuses_as_a_key_set(idp: AuthZeroStandIn) -> None:
    idp.break_jwks("html")
    result = http_request("GET", idp.jwks_url)
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/html")
    with pytest.raises(FetchError, match="not JSON"):
        parse_jwks(http_fetch(idp.jwks_url, 3.0, 1 << 20), 50)


def test_an_empty_jwks_fault_answers_200_with_no_keys(idp: AuthZeroStandIn) -> None:
    idp.break_jwks("empty")
    assert fetch_jwks(idp) == {"keys": []}
    with pytest.raises(FetchError, match="no usable"):
        parse_jwks(http_fetch(idp.jwks_url, 3.0, 1 << 20), 50)


def test_a_hung_jwks_endpoint_drips_until_the_fetch_deadline_cuts_it(idp: AuthZeroStandIn) -> None:
    idp.break_jwks("hang", drip_every=0.1)  # each byte well inside the socket timeout: only the deadline ends it
    before = idp.jwks_fetches
    start = time.monotonic()
    with pytest.raises(FetchError, match="not complete within 1.6 s"):
        http_fetch(idp.jwks_url, 0.3, 1 << 20)
    assert 1.5 <= time.monotonic() - start <= 3.0
    assert idp.jwks_fetches == before + 1


def test_a_hung_jwks_answer_ends_without_keys_when_the_fault_ends(idp: AuthZeroStandIn) -> None:
    idp.break_jwks("hang", drip_every=0.1)
    threading.Timer(0.5, idp.break_jwks, args=(None,)).start()
    with pytest.raises(FetchError):
        http_fetch(idp.jwks_url, 3.0, 1 << 20)
    assert http_request("GET", idp.jwks_url).status == 200


def test_an_idle_keep_alive_connection_is_closed(idp: AuthZeroStandIn) -> None:
    connection = socket.create_connection((idp.host, int(idp.url.rsplit(":", 1)[1].rstrip("/"))), timeout=10)
    with connection:
        connection.sendall(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: idp\r\n\r\n")
        start = time.monotonic()
        while connection.recv(65536):  # the answer, then the end of the connection
            pass
        assert time.monotonic() - start < 5.0


def test_an_unknown_jwks_fault_is_refused(idp: AuthZeroStandIn) -> None:
    with pytest.raises(ValueError, match="'sideways'"):
        idp.break_jwks("sideways")


def test_jwks_delay_hook(idp: AuthZeroStandIn) -> None:
    idp.jwks_delay(0.4)
    start = time.monotonic()
    assert http_request("GET", idp.jwks_url).status == 200
    assert time.monotonic() - start >= 0.35


def test_hooks_are_reachable_over_http() -> None:
    with AuthZeroStandIn(audience=AUDIENCE, clients={"c": Client("s", claims={"pol": "p"})}) as idp:
        base = idp.url + "__test__/"
        old_current = idp.current_key.kid
        assert http_request("POST", base + "rotate").status == 200
        assert idp.current_key.kid != old_current
        assert idp.previous_keys[0].kid == old_current

        stats = http_request("GET", base + "stats").json()
        assert stats["current_kid"] == idp.current_key.kid
        assert stats["previous_kids"] == [old_current]

        assert http_request("POST", base + "revoke-previous").status == 200
        assert idp.previous_keys == ()

        assert http_request("POST", base + "jwks-fail", body={"status": 500}).status == 200
        assert http_request("GET", idp.jwks_url).status == 500
        assert http_request("POST", base + "jwks-fail", body={"status": None}).status == 200
        assert http_request("GET", idp.jwks_url).status == 200

        assert http_request("POST", base + "jwks-delay", body={"seconds": 0.2}).status == 200
        assert idp.stats()["jwks_delay"] == 0.2
        idp.break_jwks("empty")
        assert idp.stats()["jwks_fault"] == "empty"
        assert http_request("POST", base + "reset").status == 200
        assert idp.stats()["jwks_delay"] == 0 and idp.jwks_fetches == 0
        assert idp.stats()["jwks_fault"] is None

        minted = http_request(
            "POST", base + "token", body={"client_id": "c", "claims": {"pol": "limited"}, "key": "next"}
        ).json()["access_token"]
        assert jwt.get_unverified_header(minted)["kid"] == idp.next_key.kid
        assert verify(minted, fetch_jwks(idp))["pol"] == "limited"

        assert http_request("POST", base + "nope").status == 404
        assert http_request("POST", base + "token", body={"key": "sideways"}).status == 400


def test_jwks_publishes_public_material_only(idp: AuthZeroStandIn) -> None:
    for jwk in fetch_jwks(idp)["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    public = serialization.load_pem_public_key(idp.current_key.public_pem())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == idp.current_key.private_key.public_key().public_numbers()


def test_signing_key_kid_is_the_thumbprint() -> None:
    key = SigningKey.generate()
    assert key.kid == key.x5t
    assert json.loads(json.dumps(key.jwk()))["kid"] == key.kid


def test_url_needs_a_started_server() -> None:
    idp = AuthZeroStandIn()
    with pytest.raises(RuntimeError):
        _ = idp.url
