"""Nothing the plugin writes shows a token, a signature or a secret: reprs of the objects that hold
them, and every log line of the request path for hostile and failing requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
from collections.abc import Iterator

import pytest

from plugin.auth import Authenticator, ConfigStore
from plugin.check import ApiSource
from plugin.config import parse_config_data
from plugin.coprocess import Object
from plugin.devstack.idp import DPoPKey
from plugin.hooks import HookRouter
from plugin.jwks import FetchError, JwksCache, JwksSettings
from plugin.logs import JsonFormatter, TextFormatter
from plugin.server import ServerSettings
from plugin.verify import Verifier
from tests.support import tokens as t
from tests.support.objects import AUTH_HOOK, auth_object, config_data

HMAC_SECRET = b"HmacS3cretNeverShown-0123456789"
HMAC_B64 = base64.b64encode(HMAC_SECRET).decode()
GATEWAY_SECRET = "GwS3cretNeverShown"
KEY = t.rsa_key("hygiene")


def hs256(payload: dict, secret: bytes = HMAC_SECRET) -> str:
    header = t.b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = t.b64url(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{t.b64url(signature)}"


def test_a_parsed_config_never_shows_its_hmac_secret():
    config = parse_config_data(config_data(jwt_source=HMAC_B64, jwt_signing_method="hmac"))
    assert config.key_source.static_key == HMAC_SECRET
    for shown in (repr(config), str(config), repr(config.key_source)):
        assert HMAC_SECRET.decode() not in shown and HMAC_B64 not in shown


def test_server_settings_never_show_the_gateway_secret():
    settings = ServerSettings(gateway_url="http://127.0.0.1:8080", gateway_secret=GATEWAY_SECRET)
    assert GATEWAY_SECRET not in repr(settings) and GATEWAY_SECRET not in str(settings)


def test_an_api_read_by_check_never_shows_its_config_data():
    data = {"jwt_source": HMAC_B64, "jwt_signing_method": "hmac"}
    source = ApiSource(kind="config_data", origin="-", data=data, raw_config=json.dumps(data))
    assert HMAC_B64 not in repr(source)


@pytest.fixture()
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Everything the plugin logs, down to DEBUG, in the text and the JSON format at once."""
    text, as_json = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(text), logging.StreamHandler(as_json)]
    handlers[0].setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    handlers[1].setFormatter(JsonFormatter())
    plugin_log = logging.getLogger("plugin")
    previous = plugin_log.level
    plugin_log.setLevel(logging.DEBUG)
    for handler in handlers:
        plugin_log.addHandler(handler)
    try:
        yield text, as_json
    finally:
        for handler in handlers:
            plugin_log.removeHandler(handler)
        plugin_log.setLevel(previous)


def failing_fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    raise FetchError("HTTP 503")


def hostile_requests(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list[tuple[Object, list[str]]]:
    """Requests that are refused, crash-proofed or accepted, each with the strings it must not leak."""
    monkeypatch.setenv("HYGIENE_HMAC", HMAC_B64)
    secret_file = tmp_path / "hmac"
    secret_file.write_text(HMAC_B64 + "\n")
    hmac_configs = [config_data(jwt_source=HMAC_B64, jwt_signing_method="hmac"),
                    config_data(jwt_source=None, jwt_source_env="HYGIENE_HMAC", jwt_signing_method="hmac"),
                    config_data(jwt_source=None, jwt_source_file=str(secret_file), jwt_signing_method="hmac")]
    secrets = [HMAC_SECRET.decode(), HMAC_B64]
    good = hs256(t.claims())
    tokens = {
        "valid": good,
        "bad signature": hs256(t.claims(), b"another secret"),
        "expired": hs256(t.claims(exp=1)),
        "wrong issuer": hs256(t.claims(iss="https://evil.example/")),
        "no identity": hs256(t.claims(sub=t.DROP)),
        "garbage": "not-a-token-" + "x" * 40,
        "rsa signed": t.sign(KEY),
    }
    requests: list[tuple[Object, list[str]]] = []
    for config in hmac_configs:
        for token in tokens.values():
            obj = auth_object(f"Bearer {token}", config=config)
            obj.request.headers["X-Request-Id"] = "rid-1"
            requests.append((obj, [token, token.rsplit(".", 1)[-1], *secrets]))
    # DPoP: a bound token with its proof, the same proof replayed, a proof for another URL, the token as Bearer.
    client = DPoPKey.generate()
    bound = hs256(t.claims(cnf={"jkt": client.thumbprint}))
    dpop_config = config_data(jwt_source=HMAC_B64, jwt_signing_method="hmac", dpop="required")
    proof = client.proof("GET", "http://127.0.0.1:8080/auth0-plugin/get", bound, claims={"jti": "JtiNeverShown"})
    for authorization, sent in ((f"DPoP {bound}", proof), (f"DPoP {bound}", proof),
                                (f"DPoP {bound}", client.proof("GET", "http://elsewhere/", bound)),
                                (f"Bearer {bound}", proof)):
        obj = auth_object(authorization, config=dpop_config)
        obj.request.headers["Dpop"] = sent
        requests.append((obj, [bound, bound.rsplit(".", 1)[-1], sent, sent.rsplit(".", 1)[-1], "JtiNeverShown",
                               *secrets]))
    # An API whose HMAC secret is refused as a setting (not base64): the problem is logged once.
    raw_secret = "RawHmacSecretNotBase64!"
    refused = auth_object(f"Bearer {good}", config=config_data(jwt_source=raw_secret, jwt_signing_method="hmac"))
    requests.append((refused, [good, raw_secret]))
    # An RSA API whose JWKS cannot be had, on a URL whose query carries a key.
    jwks_url = "https://idp.example.com/jwks.json?api_key=QueryKeyNeverShown"
    rsa_token = t.sign(KEY)
    down = auth_object(f"Bearer {rsa_token}", config=config_data(jwt_source=jwks_url))
    requests.append((down, [rsa_token, rsa_token.rsplit(".", 1)[-1], "QueryKeyNeverShown"]))
    return requests


def test_no_log_line_shows_a_token_a_signature_or_a_secret(monkeypatch, tmp_path, captured):
    jwks = JwksCache(JwksSettings(min_refetch_interval=3600), fetcher=failing_fetch)
    authenticator = Authenticator(Verifier(jwks), ConfigStore(defaults={}))
    router = HookRouter(AUTH_HOOK, authenticator.authenticate)
    requests = hostile_requests(monkeypatch, tmp_path)
    answers = {router.dispatch(obj).request.return_overrides.response_code for obj, _ in requests}
    jwks.settle()
    assert {-1, 400, 401, 403, 500} >= answers and -1 in answers and 500 in answers  # accepted, refused, misconfigured
    text, as_json = (stream.getvalue() for stream in captured)
    assert "auth denied" in text and "bad plugin configuration" in text and "jwks fetch failed" in text
    assert "reason=dpop_replay" in text and "reason=dpop_binding" in text
    for _, never in requests:
        for secret in never:
            assert secret not in text and secret not in as_json
