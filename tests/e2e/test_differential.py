"""Differential: every token goes to Tyk's native JWT API and to the plugin API of the same gateway.

Native JWT, configured as the Auth0 walkthrough configures it, is the reference: status and body
must be identical, except the cases listed in DELIBERATE (also listed in the README), where the
plugin is stricter on purpose and its own answer is asserted instead.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import http.client
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from plugin.devstack.procs import http_request
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e

NATIVE, PLUGIN = "/auth0-native/get", "/auth0-plugin/get"


def body(message: str) -> bytes:
    return ('{\n    "error": "' + message + '"\n}').encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def reassemble(token: str, *, header: dict | None = None, payload: dict | None = None, sig: str | None = None) -> str:
    h, p, s = token.split(".")
    if header is not None:
        h = b64(json.dumps(header).encode())
    if payload is not None:
        p = b64(json.dumps(payload).encode())
    return ".".join([h, p, sig if sig is not None else s])


def decode(token: str) -> tuple[dict, dict]:
    h, p, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p)))


@dataclass(frozen=True)
class Case:
    name: str
    authorization: Callable[[Stack, str], str | None]  # (stack, fresh subject) -> header value
    plugin_expected: tuple[int, bytes | None] | None = None  # set only for deliberate differences


def bearer(make: Callable[[Stack, str], str]) -> Callable[[Stack, str], str]:
    return lambda stack, sub: "Bearer " + make(stack, sub)


def hs256_with_jwks_public_key(stack: Stack, sub: str) -> str:
    assert stack.idp is not None
    token = stack.token(sub=sub)
    header, payload = decode(token)
    header["alg"] = "HS256"
    pem = stack.idp.current_key.public_pem()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return signing_input + "." + b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())


def five_part(stack: Stack, sub: str) -> str:
    return ".".join(b64(x) for x in [b'{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k"}', b"key", b"iv", b"ct", b"tag"])


NOW = lambda: int(time.time())  # noqa: E731


def signed_text(stack: Stack, header: str | bytes, claims: str | bytes, *, pad: bool = False) -> str:
    """A token signed by the current key over exactly this header and claims text: for JSON no encoder
    writes (duplicate keys, trailing data, a BOM) and for padded segments, where Go's and Python's
    readers could part ways."""
    assert stack.idp is not None
    segments = [b64(part.encode() if isinstance(part, str) else part) for part in (header, claims)]
    if pad:
        segments = [segment + "=" * (-len(segment) % 4) for segment in segments]
    signing_input = ".".join(segments)
    signature = stack.idp.current_key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64(signature)


def raw_claims(edit: Callable[[str], str], *, header: Callable[[str], str] = lambda h: h,
               pad: bool = False) -> Callable[[Stack, str], str]:
    """A valid token for the subject whose header and claims JSON text are then edited as text."""
    def make(stack: Stack, sub: str) -> str:
        head, payload = decode(stack.token(sub=sub))
        return signed_text(stack, header(json.dumps(head)), edit(json.dumps(payload)), pad=pad)
    return make


def with_raw_claim(name: str, raw_json: str) -> Callable[[str], str]:
    """Set one claim to raw JSON text (numbers no encoder writes, such as 1e400)."""
    return lambda text: json.dumps({**json.loads(text), name: "__raw__"}).replace('"__raw__"', raw_json)


def nested_claim(stack: Stack, sub: str, levels: int) -> str:
    """A valid token whose claims nest ``levels`` deep (the claims object, then arrays; Go's decoder
    takes 10,000 levels, the plugin 512), signed here: the stand-in's JSON encoder cannot nest so deep."""
    header, payload = decode(stack.token(sub=sub))
    arrays = levels - 1
    claims = json.dumps(payload)[:-1] + ', "https://example.com/x": ' + "[" * arrays + "]" * arrays + "}"
    return signed_text(stack, json.dumps(header), claims)

CASES = [
    Case("valid RS256", bearer(lambda s, sub: s.token(sub=sub))),
    Case("valid, pol claim names the policy", bearer(lambda s, sub: s.token(sub=sub, pol="auth0-policy"))),
    Case("valid, lowercase bearer", lambda s, sub: "bearer " + s.token(sub=sub)),
    Case("valid, no Bearer prefix", lambda s, sub: s.token(sub=sub)),
    Case("signed by the next key (rotated JWKS)", bearer(lambda s, sub: s.token(sub=sub, key="next"))),
    Case("aud array with userinfo", bearer(lambda s, sub: s.token(sub=sub, aud=[s.audience, s.issuer + "userinfo"]))),
    Case("Auth0's RFC 9068 profile (typ at+jwt, client_id and jti, no azp or gty)", bearer(lambda s, sub: s.token(
        sub=sub, headers={"typ": "at+jwt"}, claims={"client_id": s.client_id}, jti=uuid.uuid4().hex, drop=["azp", "gty"]))),
    Case("PS256", bearer(lambda s, sub: s.token(sub=sub, alg="PS256"))),
    Case("RS512", bearer(lambda s, sub: s.token(sub=sub, alg="RS512"))),
    Case("expired", bearer(lambda s, sub: s.token(sub=sub, exp=NOW() - 60))),
    Case("nbf in the future", bearer(lambda s, sub: s.token(sub=sub, nbf=NOW() + 3600))),
    Case("iat in the future", bearer(lambda s, sub: s.token(sub=sub, iat=NOW() + 3600))),
    # Go's time.Unix wraps Unix seconds this large to the far past (an int64 of seconds since year 1).
    Case("exp so large that Go wraps it", bearer(lambda s, sub: s.token(sub=sub, exp=9223372000000000000))),
    Case("nbf so large that Go wraps it", bearer(lambda s, sub: s.token(sub=sub, nbf=9223372000000000000))),
    Case("iat so large that Go wraps it", bearer(lambda s, sub: s.token(sub=sub, iat=9223372000000000000))),
    Case("expired and not yet valid", bearer(lambda s, sub: s.token(sub=sub, exp=NOW() - 60, nbf=NOW() + 3600))),
    Case("exp is a string", bearer(lambda s, sub: s.token(sub=sub, exp="tomorrow"))),
    # JSON as Go's decoder reads it, where Python's could read it otherwise.
    Case("exp is null", bearer(lambda s, sub: s.token(sub=sub, exp=None))),
    Case("exp half a second after 1970 (only an exact 0 means unset)", bearer(lambda s, sub: s.token(sub=sub, exp=0.5))),
    Case("exp beyond float64 (1e400)", bearer(raw_claims(with_raw_claim("exp", "1e400")))),
    Case("a claim NaN (Python's json reads it, Go's does not)", bearer(raw_claims(with_raw_claim("n", "NaN")))),
    Case("a header member Infinity", bearer(raw_claims(lambda text: text, header=lambda h: h[:-1] + ', "x": Infinity}'))),
    Case("iat is a numeric string", bearer(lambda s, sub: s.token(sub=sub, iat=str(NOW())))),
    Case("exp twice, the expired one last", bearer(raw_claims(
        lambda text: text[:-1] + f', "exp": {NOW() + 3600}, "exp": {NOW() - 60}}}'))),
    Case("claims followed by trailing data", bearer(raw_claims(lambda text: text + "garbage"))),
    Case("header followed by trailing data", bearer(raw_claims(lambda text: text, header=lambda h: h + "{}"))),
    Case("claims with a UTF-8 byte order mark", bearer(raw_claims(lambda text: "\ufeff" + text))),
    Case("padded base64url segments", bearer(raw_claims(lambda text: text, pad=True))),
    Case("alg in lower case", bearer(raw_claims(lambda text: text, header=lambda h: h.replace("RS256", "rs256")))),
    Case("sub is a number", bearer(lambda s, sub: s.token(sub=5))),
    Case("pol is a number", bearer(lambda s, sub: s.token(sub=sub, pol=5))),
    Case("alg none", bearer(lambda s, sub: s.token(sub=sub, alg="none"))),
    Case("HS256 signed with the RSA public key", bearer(hs256_with_jwks_public_key)),
    Case("HS256 with a shared secret", bearer(lambda s, sub: s.token(sub=sub, alg="HS256"))),
    Case("ES256", bearer(lambda s, sub: s.token(sub=sub, alg="ES256"))),
    Case("tampered payload", bearer(lambda s, sub: reassemble(
        s.token(sub=sub), payload={**decode(s.token(sub=sub))[1], "pol": "admin"}))),
    Case("tampered signature", bearer(lambda s, sub: reassemble(s.token(sub=sub), sig=b64(b"\x00" * 256)))),
    Case("truncated", bearer(lambda s, sub: s.token(sub=sub)[:-40])),
    Case("garbage", lambda s, sub: "Bearer this-is-not-a-jwt"),
    Case("two segments", bearer(lambda s, sub: ".".join(s.token(sub=sub).split(".")[:2]))),
    Case("encrypted 5-part JWE", bearer(five_part)),
    Case("huge garbage (60 KB)", lambda s, sub: "Bearer " + "A" * 60_000),
    Case("missing Authorization header", lambda s, sub: None),
    Case("Bearer with no token", lambda s, sub: "Bearer "),
    Case("unknown kid", bearer(lambda s, sub: s.token(sub=sub, key="unknown"))),
    Case("no kid", bearer(lambda s, sub: s.token(sub=sub, headers={"kid": None}))),
    Case("numeric kid", bearer(lambda s, sub: reassemble(
        s.token(sub=sub), header={**decode(s.token(sub=sub))[0], "kid": 42})) ),
    Case("empty sub", bearer(lambda s, sub: s.token(sub=""))),
    Case("no sub", bearer(lambda s, sub: s.token(drop=["sub"]))),
    Case("policy without access to this API", bearer(lambda s, sub: s.token(sub=sub, pol="no-access"))),
    Case("policy that grants no API at all", bearer(lambda s, sub: s.token(sub=sub, pol="no-rights"))),
    # Deliberate differences: the plugin checks what classic native JWT does not.
    Case("wrong issuer (no trailing slash)", bearer(lambda s, sub: s.token(sub=sub, iss=s.issuer.rstrip("/"))),
         plugin_expected=(401, None)),
    Case("wrong audience", bearer(lambda s, sub: s.token(sub=sub, aud="https://someone-else.example.com")),
         plugin_expected=(401, body("Key not authorized: no matching audience found in token: [https://someone-else.example.com]"))),
    Case("missing issuer", bearer(lambda s, sub: s.token(sub=sub, drop=["iss"])),
         plugin_expected=(401, body("Key not authorized: issuer claim is required but not present in token"))),
    Case("ID token typ", bearer(lambda s, sub: s.token(sub=sub, headers={"typ": "id_token+jwt"})),
         plugin_expected=(403, body("Key not authorized"))),
    Case("crit header", bearer(lambda s, sub: s.token(sub=sub, headers={"crit": ["exp"]})),
         plugin_expected=(403, body("Key not authorized"))),
    Case("huge valid token (70 KB of claims)", bearer(lambda s, sub: s.token(sub=sub, blob="x" * 70_000)),
         plugin_expected=(403, body("Key not authorized"))),
    Case("claims nested 513 levels deep", bearer(lambda s, sub: nested_claim(s, sub, 513)),
         plugin_expected=(403, body("Key not authorized"))),
    Case("claims nested 512 levels deep", bearer(lambda s, sub: nested_claim(s, sub, 512))),
    Case("client id claim that is not a string", bearer(lambda s, sub: s.token(sub=sub, cid=5)),
         plugin_expected=(200, None)),  # native JWT's handler panics and drops the connection
    Case("pol names a policy that does not exist", bearer(lambda s, sub: s.token(sub=sub, pol="no-such-policy"))),
    Case("pol is a list of policies", bearer(lambda s, sub: s.token(sub=sub, pol=["auth0-policy", "limited"]))),
]


def send(stack: Stack, path: str, authorization: str | None) -> tuple[int, bytes]:
    headers = {"Accept": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    try:
        result = stack.get(path, headers=headers)
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return 0, b"connection closed without a response"
    payload = result.body
    if result.status == 200:  # the echo: compare what reached the upstream, not gateway-specific headers
        echo = result.json()
        payload = json.dumps({"method": echo["method"], "path": echo["path"]}).encode()
    return result.status, payload


def test_differential_corpus_native_jwt_vs_plugin(plugin_stack: Stack, capsys) -> None:
    rows = []
    for case in CASES:
        sub = f"diff-{uuid.uuid4().hex[:10]}@clients"
        authorization = case.authorization(plugin_stack, sub)
        native = send(plugin_stack, NATIVE, authorization)
        plugin = send(plugin_stack, PLUGIN, authorization)
        rows.append((case, native, plugin))

    identical = [c.name for c, n, p in rows if c.plugin_expected is None and n == p]
    mismatched = [(c.name, n, p) for c, n, p in rows if c.plugin_expected is None and n != p]
    deliberate_ok = []
    deliberate_bad = []
    for case, native, plugin in rows:
        if case.plugin_expected is None:
            continue
        status, expected_body = case.plugin_expected
        if plugin[0] == status and (expected_body is None or plugin[1] == expected_body) and native != plugin:
            deliberate_ok.append(case.name)
        else:
            deliberate_bad.append((case.name, native, plugin))
    with capsys.disabled():
        print(f"\ndifferential corpus: {len(rows)} cases, {len(identical)} identical, "
              f"{len(deliberate_ok)} deliberate differences, {len(mismatched) + len(deliberate_bad)} unexpected")
        for case, native, plugin in rows:
            mark = "=" if native == plugin else ("~" if case.plugin_expected else "!")
            print(f"  {mark} {case.name:45s} native {native[0]} plugin {plugin[0]}")
    assert len(rows) >= 25
    assert not mismatched, mismatched
    assert not deliberate_bad, deliberate_bad


@pytest.mark.parametrize(("name", "settings", "claims", "expected"), [
    ("lone-default", {"jwt_default_policies": ["missing-policy"]}, {},
     (500, body('failed to create key: policy not found: \\"missing-policy\\"'))),
    ("lone-scope", {"jwt_default_policies": [], "jwt_scope_to_policy_mapping": {"read:things": "missing-policy"}},
     {"scope": "read:things"}, (403, body("key not authorized: could not apply several policies"))),
    ("empty-default", {"jwt_default_policies": ["no-rights"]}, {},
     (500, body("failed to create key: key has no valid policies to be applied"))),
    ("empty-default-then-scope", {"jwt_default_policies": ["no-rights"],
                                  "jwt_scope_to_policy_mapping": {"read:things": "auth0-policy"}},
     {"scope": "read:things"}, (500, body("failed to create key: key has no valid policies to be applied"))),
    ("empty-scope", {"jwt_default_policies": ["auth0-policy"], "jwt_scope_to_policy_mapping": {"read:things": "no-rights"}},
     {"scope": "read:things"}, (403, body("key not authorized: could not apply several policies"))),
])
def test_a_policy_the_gateway_lacks_gets_the_same_answer_from_both(plugin_stack: Stack, name: str, settings: dict,
                                                                   claims: dict, expected: tuple[int, bytes]) -> None:
    """Tokens without a policy claim, on APIs whose only policy (a lone default, or the one the scope
    mapping picks) the gateway lacks or grants no API: native's answer, and the plugin's given the
    policy list."""
    from plugin.devstack import gateway as gw

    upstream, gateway = plugin_stack.upstream, plugin_stack.gateway
    assert upstream is not None and gateway is not None
    native = gw.native_jwt_api(upstream.url, plugin_stack.jwks_url, api_id=f"{name}-native",
                               listen_path=f"/{name}-native/", default_policies=settings["jwt_default_policies"])
    native.update({k: v for k, v in settings.items() if k != "jwt_default_policies"})
    plugin = gw.plugin_api(upstream.url, dict(plugin_stack.config_data(), **settings), bundle=None,
                           manifest=gw.manifest_without_id_extractor(), api_id=f"{name}-plugin",
                           listen_path=f"/{name}-plugin/")
    for api in (native, plugin):
        assert gateway.admin("POST", "/tyk/apis", body=api).status == 200
    assert gateway.admin("GET", "/tyk/reload?block=true").status == 200
    for path in (f"/{name}-native/get", f"/{name}-plugin/get"):
        token = plugin_stack.token(sub=f"{name}-{uuid.uuid4().hex[:8]}@clients", drop=["pol"], **claims)
        assert send(plugin_stack, path, "Bearer " + token) == expected, path


@pytest.mark.parametrize(("where", "suffix", "extra"), [
    ("a header", "", {"X-Note": "\xff"}),
    ("the query", "?q=%ff", {}),
])
def test_bytes_that_are_not_utf8_outside_the_token_stop_the_plugin_api_at_the_gateway(
        plugin_stack: Stack, subject: str, where: str, suffix: str, extra: dict) -> None:
    """The gateway's coprocess layer sends every header and query value to the plugin as a protobuf
    string, which must be UTF-8: it refuses such a request before calling the plugin. Native JWT reads
    only the Authorization header. (README, differences.)"""
    headers = {"Authorization": "Bearer " + plugin_stack.token(sub=subject), **extra}
    native = plugin_stack.get(NATIVE + suffix, headers=headers)
    plugin = plugin_stack.get(PLUGIN + suffix, headers=headers)
    assert native.status == 200, where
    assert (plugin.status, plugin.body) == (403, body("Key not authorised")), where


def test_a_raw_byte_that_is_not_utf8_in_the_path_stops_the_plugin_api_at_the_gateway(plugin_stack: Stack,
                                                                                     subject: str) -> None:
    """As for headers and the query: the path goes to the plugin as a protobuf string too."""
    import socket

    assert plugin_stack.gateway is not None
    token = plugin_stack.token(sub=subject)
    with socket.create_connection(("127.0.0.1", plugin_stack.gateway.port), timeout=10) as conn:
        conn.sendall(b"GET " + PLUGIN.encode() + b"\xff HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer "
                     + token.encode() + b"\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 403 Forbidden"
    assert payload == body("Key not authorised")


TOKEN_PLACES = {"auth_header_name": "X-Auth0-Token", "use_param": True, "param_name": "access_token",
                "use_cookie": True, "cookie_name": "at"}


@contextlib.contextmanager
def _token_places(stack: Stack, plugin_api_id: str, manifest: dict | None = None,
                  places: dict | None = None) -> Iterator[tuple[str, str]]:
    """For the test's duration: the native JWT API reads tokens from ``places`` (default TOKEN_PLACES,
    as auth_configs.jwt) and the plugin API ``plugin_api_id`` has the same keys in config_data."""
    places = TOKEN_PLACES if places is None else places
    from plugin.devstack import gateway as gw

    gateway = stack.gateway
    assert gateway is not None
    saved = {api_id: copy.deepcopy(gateway.apis[api_id]) for api_id in (gw.NATIVE_API_ID, plugin_api_id)}
    native = copy.deepcopy(saved[gw.NATIVE_API_ID])
    native["auth_configs"] = {"jwt": dict(places)}
    plugin = copy.deepcopy(saved[plugin_api_id])
    plugin["config_data"] = {**plugin["config_data"], **places}
    if manifest is not None:
        plugin.pop("custom_middleware_bundle", None)
        plugin["custom_middleware"] = copy.deepcopy(manifest["custom_middleware"])
    try:
        gateway.put_api(native)
        gateway.put_api(plugin)
        gateway.reload()
        yield NATIVE, f"/{plugin_api_id}/get"
    finally:
        for api in saved.values():
            gateway.put_api(api)
        gateway.reload()


PLACES = [  # (case, query, headers); "T" is a valid token, "F" a forged one
    ("no token anywhere", "", {}),
    ("only in Authorization, which this API does not read", "", {"Authorization": "Bearer T"}),
    ("in the configured header", "", {"X-Auth0-Token": "Bearer T"}),
    ("in the configured header without Bearer", "", {"X-Auth0-Token": "T"}),
    ("in the configured header, lower case", "", {"x-auth0-token": "T"}),
    ("in the query parameter", "?access_token=T", {}),
    ("in the query parameter with Bearer", "?access_token=Bearer%20T", {}),
    ("in the query parameter, twice: the first wins", "?access_token=T&access_token=F", {}),
    ("in the query parameter with a line break (Go's base64 skips CR and LF)", "?access_token=T%0D%0A", {}),
    ("in a cookie", "", {"Cookie": "theme=dark; at=T"}),
    ("in a quoted cookie", "", {"Cookie": 'at="T"'}),
    ("in a cookie with Bearer", "", {"Cookie": "at=Bearer T"}),
    ("forged parameter over a valid header", "?access_token=F", {"X-Auth0-Token": "T"}),
    ("empty parameter leaves the forged header", "?access_token=", {"X-Auth0-Token": "F"}),
    ("forged cookie over a valid parameter", "?access_token=T", {"Cookie": "at=F"}),
    ("an invalid cookie value is skipped", "", {"Cookie": 'at=a"b; at=T'}),
    ("an invalid cookie value alone leaves the header", "", {"Cookie": 'at=a\\b', "X-Auth0-Token": "T"}),
]


def test_token_locations_from_auth_configs_get_the_same_answers_from_both(plugin_stack: Stack) -> None:
    """Native JWT's auth_configs.jwt (header name, query parameter, cookie) and the same keys in the
    plugin's config_data: every placement gets the same status and body from both."""
    from plugin.devstack import gateway as gw

    with _token_places(plugin_stack, gw.PLUGIN_SUBJECT_API_ID) as (native_path, plugin_path):
        differences = _compare_places(plugin_stack, native_path, plugin_path)
    assert not differences, differences


def _compare_places(plugin_stack: Stack, native_path: str, plugin_path: str) -> list:
    differences = []
    for (case, _, _), answers in zip(PLACES, place_answers(plugin_stack, (native_path, plugin_path)), strict=True):
        if answers[0] != answers[1]:
            differences.append((case, answers))
        assert answers[0][0] in (200, 400, 401, 403), (case, answers)
    return differences


def place_answers(stack: Stack, paths: Sequence[str]) -> list[list[tuple[int, bytes]]]:
    """For each of PLACES, the answer of each path, all given the same valid and forged tokens."""
    forged = stack.token(sub=f"forged-{uuid.uuid4().hex[:8]}@clients")
    forged = forged[:-4] + ("AAAA" if not forged.endswith("AAAA") else "BBBB")
    rows = []
    for _, query, headers in PLACES:
        valid = stack.token(sub=f"places-{uuid.uuid4().hex[:8]}@clients")
        sent = {k: _fill(v, valid, forged) for k, v in headers.items()}
        answers = []
        for path in paths:
            result = stack.get(path + _fill(query, valid, forged), headers={"Accept": "application/json", **sent})
            answers.append((result.status, result.body if result.status != 200 else b"granted"))
        rows.append(answers)
    return rows


def _fill(template: str, valid: str, forged: str) -> str:
    """The case's placeholders T (valid token) and F (forged token), as whole words only."""
    return re.sub(r"(?<![A-Za-z])([TF])(?![A-Za-z])", lambda m: valid if m.group(1) == "T" else forged, template)


def auth_calls(stack: Stack, outcome: str = "ok") -> float:
    """The plugin's count of auth checks with this outcome, from its /metrics."""
    text = http_request("GET", stack.metrics_url + "/metrics").text
    pattern = rf'^tyk_auth0_requests_total\{{[^}}]*hook="auth_check"[^}}]*outcome="{outcome}"[^}}]*\}} (\S+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


PARAM_ONLY = {"disable_header": True, "use_param": True, "param_name": "access_token"}


def test_a_form_id_extractor_keyed_on_the_only_token_parameter_serves_repeats_from_the_gateway(
        plugin_stack: Stack) -> None:
    """The README's manifest for query-parameter tokens: the gateway's extractor reads the API's one
    token source, so repeat requests are answered from its session cache without a plugin call."""
    from plugin.devstack import gateway as gw

    manifest = gw.load_manifest()
    manifest["custom_middleware"]["id_extractor"] = {
        "extract_from": "form", "extract_with": "value", "extractor_config": {"param_name": "access_token"}}
    token = plugin_stack.token(sub=f"form-{uuid.uuid4().hex[:8]}@clients")
    with _token_places(plugin_stack, gw.PLUGIN_API_ID, manifest=manifest, places=PARAM_ONLY) as (_, plugin_path):
        before = auth_calls(plugin_stack)
        answers = [plugin_stack.get(f"{plugin_path}?access_token={token}").status for _ in range(3)]
        calls = auth_calls(plugin_stack) - before
        missing = plugin_stack.get(plugin_path, headers={"Authorization": "Bearer " + token})
    assert answers == [200, 200, 200]
    assert calls == 1
    assert (missing.status, missing.body) == (400, body("Authorization field missing"))


def test_with_several_token_sources_the_gateway_never_reuses_a_session(plugin_stack: Stack) -> None:
    """An extractor reads one place; with several token sources the plugin sets the deadline to now,
    so a session cached under a value that is not the token (here the header's junk) is never served."""
    from plugin.devstack import gateway as gw

    token = plugin_stack.token(sub=f"several-{uuid.uuid4().hex[:8]}@clients")
    manifest = gw.load_manifest()
    manifest["custom_middleware"]["id_extractor"]["extractor_config"] = {"header_name": "X-Auth0-Token"}
    with _token_places(plugin_stack, gw.PLUGIN_API_ID, manifest=manifest) as (_, plugin_path):
        granted = plugin_stack.get(f"{plugin_path}?access_token={token}", headers={"X-Auth0-Token": "Bearer null"})
        replayed = plugin_stack.get(plugin_path, headers={"X-Auth0-Token": "Bearer null"})
    assert granted.status == 200
    assert replayed.status == 403


@contextlib.contextmanager
def _oas_native_and_plugin(stack: Stack, scheme: dict, settings: dict) -> Iterator[tuple[str, str]]:
    """For the test's duration: a Tyk OAS API with native JWT (``scheme`` in its security scheme),
    and the subject-keyed plugin API with ``settings`` added to its config_data."""
    from plugin.devstack import gateway as gw

    upstream, gateway = stack.upstream, stack.gateway
    assert upstream is not None and gateway is not None
    saved = copy.deepcopy(gateway.apis[gw.PLUGIN_SUBJECT_API_ID])
    plugin = copy.deepcopy(saved)
    plugin["config_data"] = {**plugin["config_data"], **settings}
    try:
        gateway.put_api(plugin)
        gateway.reload()  # rewrites the API files: the OAS API is added after it
        created = gateway.admin("POST", "/tyk/apis/oas",
                                body=gw.native_oas_jwt_api(upstream.url, stack.jwks_url, scheme=scheme))
        assert created.status == 200, created.text
        assert gateway.admin("GET", "/tyk/reload?block=true").status == 200
        yield f"/{gw.NATIVE_OAS_API_ID}/get", f"/{gw.PLUGIN_SUBJECT_API_ID}/get"
    finally:
        gateway.admin("DELETE", f"/tyk/apis/oas/{gw.NATIVE_OAS_API_ID}")
        gateway.put_api(saved)
        gateway.reload()


OAS_CLAIM_CASES: list[tuple[str, dict[str, Any]]] = [  # (case, claim overrides); "AUD" is the stack's audience
    ("valid", {}),
    ("another issuer", {"iss": "https://evil.example/"}),
    ("no issuer", {"drop": ["iss"]}),
    ("issuer that is a number", {"iss": 5}),
    ("another audience", {"aud": "https://other.example/"}),
    ("audiences none of which match", {"aud": ["https://x.example/", "https://y.example/"]}),
    ("one of two audiences matches", {"aud": ["https://x.example/", "AUD"]}),
    ("audience that is a number", {"aud": 7}),
    ("no audience", {"drop": ["aud"]}),
    ("no jti", {"drop": ["jti"]}),
    ("jti null", {"jti": None}),
    ("jti empty", {"jti": ""}),
]


def test_oas_native_jwt_claim_checks_and_the_plugin_give_the_same_answers(plugin_stack: Stack) -> None:
    """OAS native JWT's allowedIssuers, allowedAudiences and jtiValidation against the plugin's
    issuer, audience and require_jti: same status and text for every case."""
    scheme = {"allowedIssuers": [plugin_stack.issuer], "allowedAudiences": [plugin_stack.audience],
              "jtiValidation": {"enabled": True}}
    differences = []
    with _oas_native_and_plugin(plugin_stack, scheme, {"require_jti": True}) as (native_path, plugin_path):
        for case, claims in OAS_CLAIM_CASES:
            claims = {k: ([plugin_stack.audience if a == "AUD" else a for a in v] if k == "aud" and isinstance(v, list)
                          else v) for k, v in claims.items()}
            if "jti" not in claims and "jti" not in claims.get("drop", []):
                claims["jti"] = uuid.uuid4().hex
            token = plugin_stack.token(sub=f"oas-{uuid.uuid4().hex[:8]}@clients", **claims)
            answers = [send(plugin_stack, path, "Bearer " + token) for path in (native_path, plugin_path)]
            answers = [(status, b"granted" if status == 200 else payload) for status, payload in answers]
            if answers[0] != answers[1]:
                differences.append((case, answers))
            if case == "valid":
                assert answers[0][0] == 200, answers
    assert not differences, differences


CUSTOM_CLAIM_CASES: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [  # (rules, the claims of each token)
    ({"azp": {"type": "exact_match", "allowedValues": ["client-a", "client-b"]}},
     [{"azp": "client-a"}, {"azp": "client-c"}, {"azp": ["client-a"]}, {"azp": None}, {"drop": ["azp"]}]),
    ({"org_id": {"type": "required"}},
     [{"org_id": "org_9ybsU1dN2dKfDkBi"}, {"org_id": ""}, {"org_id": None}, {}]),
    ({"permissions": {"type": "contains", "allowedValues": ["read:x"]}},
     [{"permissions": ["read:x", "write:y"]}, {"permissions": ["write:y"]}, {"permissions": "read:xyz"},
      {"permissions": "read"}, {"permissions": 3}, {"permissions": {"read:x": 1}}, {}]),
    ({"n": {"type": "contains", "allowedValues": [3, None]}},  # a scalar claim: only the last value counts
     [{"n": 3}, {"n": None}, {"n": [3]}, {"n": 4}]),
    ({"a.b": {"type": "exact_match", "allowedValues": [1, True, "x", None, [1, 2], {"k": "v"}]}},
     [{"a": {"b": 1}}, {"a": {"b": 1.0}}, {"a": {"b": True}}, {"a": {"b": "x"}}, {"a": {"b": None}},
      {"a": {"b": [1, 2]}}, {"a": {"b": [2, 1]}}, {"a": {"b": {"k": "v"}}}, {"a": {"b": 2}}, {"a.b": 1}, {}]),
    ({"arr.1": {"type": "exact_match", "allowedValues": ["y"]}, "nb": {"type": "required", "nonBlocking": True}},
     [{"arr": ["x", "y"]}, {"arr": {"1": "y"}}, {"arr": ["x"]}, {"arr": "xy"}]),
    ({f"list.{2**64 + 1}": {"type": "exact_match", "allowedValues": ["y"]}},  # gjson's index wraps at 2**64
     [{"list": ["x", "y"]}, {"list": ["y", "x"]}]),
]


@pytest.mark.parametrize(("rules", "tokens"), CUSTOM_CLAIM_CASES, ids=[next(iter(r)) for r, _ in CUSTOM_CLAIM_CASES])
def test_oas_custom_claim_validation_and_the_plugin_give_the_same_answers(plugin_stack: Stack, rules: dict,
                                                                          tokens: list) -> None:
    """OAS native JWT's customClaimValidation against the same rules in the plugin's config_data."""
    differences, statuses = [], set()
    with _oas_native_and_plugin(plugin_stack, {"customClaimValidation": rules},
                                {"custom_claim_validation": rules}) as (native_path, plugin_path):
        for claims in tokens:
            extra = dict(claims)
            drop = extra.pop("drop", [])
            token = plugin_stack.token(sub=f"rules-{uuid.uuid4().hex[:8]}@clients", claims=extra, drop=drop)
            answers = [send(plugin_stack, path, "Bearer " + token) for path in (native_path, plugin_path)]
            answers = [(status, b"granted" if status == 200 else payload) for status, payload in answers]
            statuses.add(answers[0][0])
            if answers[0] != answers[1]:
                differences.append((claims, answers))
    assert not differences, differences
    assert statuses == {200, 401}, statuses  # every rule set both grants and refuses


LIMITED = [{"scope": "read:limited", "policyId": "limited"}]
# (case, OAS native JWT scheme fields, the plugin's config_data, token claims). "U" in a claim value
# is replaced by a value of each side's own, so that the two sides' sessions never share a key.
OAS_CLAIM_LIST_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = [
    ("claim lists",
     {"subjectClaims": ["email", "user_id"], "policyFieldName": "tier",
      "basePolicyClaims": ["tier", "https://example.com/pol"],
      "scopes": {"claims": ["permissions", "scp"], "scopeToPolicyMapping": LIMITED}},
     {"jwt_identity_base_field": ["email", "user_id"], "jwt_policy_field_name": ["tier", "https://example.com/pol"],
      "jwt_scope_claim_name": ["permissions", "scp"], "jwt_scope_to_policy_mapping": {"read:limited": "limited"}},
     [{"email": "e-U", "tier": "quota3"}, {"user_id": "u-U", "tier": "quota3"},
      {"email": 5, "user_id": "u-U", "tier": "quota3"}, {"email": "", "user_id": "u-U", "tier": "quota3"},
      {"sub": "", "tier": "quota3"}, {"drop": ["sub"], "tier": "quota3"},
      {"https://example.com/pol": "quota3"}, {"tier": "", "https://example.com/pol": "quota3"}, {"tier": "nope"},
      {"tier": "quota3", "permissions": ["read:limited"]}, {"permissions": ["read:limited"]},
      {"permissions": [], "scope": "read:limited"}, {"permissions": None, "scope": "read:limited"},
      {"scope": "read:limited"}, {"scp": "read:limited other"}, {"permissions": ["other"]}, {}]),
    ("single names, OAS rules",
     {"identityBaseField": "email", "scopes": {"claimName": "permissions", "scopeToPolicyMapping": LIMITED}},
     {"jwt_identity_base_field": ["email"], "jwt_scope_claim_name": ["permissions"],
      "jwt_scope_to_policy_mapping": {"read:limited": "limited"}},
     [{"email": "e-U", "pol": "quota3"}, {"pol": "quota3"}, {"sub": "", "pol": "quota3"},
      {"pol": "quota3", "scope": "read:limited"}, {"permissions": ["read:limited"]}]),
]


def _claim_list_answer(stack: Stack, path: str, claims: dict[str, Any]) -> tuple:
    """Status and error text, or for a grant: which claim gave the identity and the session's policies."""
    from plugin.devstack import gateway as gw
    from plugin.session import key_id

    unique = uuid.uuid4().hex[:10]
    claims = json.loads(json.dumps(claims).replace('-U"', f'-{unique}"'))
    drop = claims.pop("drop", [])
    sub = claims.pop("sub", f"sub-{unique}")
    token = stack.token(sub=sub, claims=claims, drop=drop)
    status, payload = send(stack, path, "Bearer " + token)
    if status != 200:
        return status, json.loads(payload).get("error")
    assert stack.gateway is not None
    for name, value in [("sub", sub), *claims.items()]:
        session = stack.gateway.session(key_id(gw.ORG_ID, value)) if isinstance(value, str) and value else None
        if session is not None:
            return status, name, sorted(session["apply_policies"])
    return status, "no session under any claim"


@pytest.mark.parametrize(("scheme", "settings", "tokens"), [c[1:] for c in OAS_CLAIM_LIST_CASES],
                         ids=[c[0] for c in OAS_CLAIM_LIST_CASES])
def test_oas_subject_policy_and_scope_claim_lists_and_the_plugin_give_the_same_sessions(
        plugin_stack: Stack, scheme: dict, settings: dict, tokens: list) -> None:
    """OAS native JWT's subjectClaims, basePolicyClaims and scopes.claims (and its rules for single
    names) against the same lists in config_data: same refusal, or the same identity claim and
    the same policies in the stored session."""
    differences, outcomes = [], set()
    with _oas_native_and_plugin(plugin_stack, scheme, settings) as (native_path, plugin_path):
        for claims in tokens:
            answers = [_claim_list_answer(plugin_stack, path, claims) for path in (native_path, plugin_path)]
            outcomes.add(answers[0][0])
            if answers[0] != answers[1]:
                differences.append((claims, answers))
    assert not differences, differences
    assert outcomes == {200, 403}, outcomes


def test_oas_native_jwt_reads_base_policy_claims_only_with_a_policy_field_name(plugin_stack: Stack) -> None:
    """The difference docs/migration.md states and `check` notes: without policyFieldName, native
    JWT takes no policy from the token; the plugin reads the list it is given."""
    scheme = {"policyFieldName": "", "basePolicyClaims": ["tier"]}
    with _oas_native_and_plugin(plugin_stack, scheme, {"jwt_policy_field_name": ["tier"]}) as (native_path, plugin_path):
        answers = [_claim_list_answer(plugin_stack, path, {"tier": "quota3"}) for path in (native_path, plugin_path)]
    assert answers == [(200, "sub", ["auth0-policy"]), (200, "sub", ["quota3"])]


def test_oas_jwks_uris_and_a_list_of_jwks_urls_give_the_same_answers(plugin_stack: Stack) -> None:
    """Two key sets (the stand-in tenant's and a second one): OAS native JWT's jwksURIs against the
    same URLs as a list in jwt_source."""
    from tests.support.jwks_server import JwksServer
    from tests.support.tokens import rsa_key

    second_tenant = rsa_key("second-tenant")
    with JwksServer(second_tenant) as second:
        scheme = {"jwksURIs": [{"url": plugin_stack.jwks_url}, {"url": second.url}]}
        settings = {"jwt_source": [plugin_stack.jwks_url, second.url]}
        with _oas_native_and_plugin(plugin_stack, scheme, settings) as (native_path, plugin_path):
            answers = {}
            for case, make in [
                ("first tenant", lambda sub: plugin_stack.token(sub=sub)),
                ("second tenant", lambda sub: plugin_stack.token(sub=sub, key=second_tenant.private,
                                                                 headers={"kid": second_tenant.kid})),
                ("second tenant's kid, another key", lambda sub: plugin_stack.token(
                    sub=sub, key=rsa_key().private, headers={"kid": second_tenant.kid})),
                ("unknown kid", lambda sub: plugin_stack.token(sub=sub, key="unknown")),
            ]:
                answers[case] = [send(plugin_stack, path, "Bearer " + make(f"jwks-{uuid.uuid4().hex[:8]}@clients"))
                                 for path in (native_path, plugin_path)]
    differences = {case: pair for case, pair in answers.items() if pair[0] != pair[1]}
    assert not differences, differences
    assert [pair[0][0] for pair in answers.values()] == [200, 200, 403, 403]
