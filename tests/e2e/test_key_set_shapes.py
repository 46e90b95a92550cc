"""Differential on key sets: each shape of JWKS document is served at a URL of its own to a native JWT
API and to a plugin API of the same gateway, and one valid token goes to each.

Every case gets identical status and body, except those with ``differs`` (also the README's key-set
rows), where both answers are asserted.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from plugin.devstack import gateway as gw
from plugin.devstack.idp import SigningKey, b64url
from plugin.devstack.procs import QuietHandler
from plugin.devstack.stack import Stack
from tests.support.http_servers import serving

pytestmark = pytest.mark.e2e

GRANTED = (200, b"granted")
REFUSED = (403, b'{\n    "error": "Key not authorized"\n}')
POLICY = "key-set-shapes"


@dataclass(frozen=True)
class Keys:
    a: SigningKey
    b: SigningKey
    c: SigningKey
    ec: dict[str, Any]  # a P-256 public JWK
    short_rsa: dict[str, Any]  # a 768-bit RSA public JWK

    @classmethod
    def generate(cls) -> Keys:
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
        short = rsa.RSAPublicNumbers(65537, (1 << 767) | 0x12345)
        return cls(a=SigningKey.generate(), b=SigningKey.generate(), c=SigningKey.generate(),
                   ec={"kty": "EC", "crv": "P-256", "use": "sig", "kid": "ec-1",
                       "x": b64url(point.x.to_bytes(32, "big")), "y": b64url(point.y.to_bytes(32, "big"))},
                   short_rsa={"kty": "RSA", "use": "sig", "e": "AQAB", "n": b64url(short.n.to_bytes(96, "big"))})


def edited(jwk: dict[str, Any], **members: Any) -> dict[str, Any]:
    """A copy of ``jwk`` with members replaced; a member given as ... is removed."""
    out = copy.deepcopy(jwk)
    for name, value in members.items():
        if value is ...:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def key_set(*entries: Any) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


def pem_in_x5c(key: SigningKey) -> list[str]:
    """Tyk's legacy x5c form: base64 of a PEM certificate's text rather than of its DER bytes."""
    return [base64.b64encode(key.certificate.public_bytes(serialization.Encoding.PEM)).decode()]


def certificate_der(key: SigningKey) -> bytes:
    return key.certificate.public_bytes(serialization.Encoding.DER)


def hex_x5t(key: SigningKey) -> str:
    """The SHA-1 thumbprint written in hex, then base64url: a form go-jose reads."""
    return b64url(hashlib.sha1(certificate_der(key)).hexdigest().encode())


def x5t_s256(key: SigningKey) -> str:
    return b64url(hashlib.sha256(certificate_der(key)).digest())


def chain(*certificates: str) -> list[str]:
    return list(certificates)


def raw_key_set(*entries: str) -> bytes:
    """A key set of entries given as JSON text (for text no encoder writes)."""
    return ('{"keys": [' + ", ".join(entries) + "]}").encode()


def use_twice(jwk: dict[str, Any]) -> str:
    """The entry's JSON text naming its ``use`` member a second time, with the same value."""
    return json.dumps(jwk)[:-1] + ', "use": "sig"}'


def n_with_line_break(key: SigningKey) -> str:
    n = key.jwk()["n"]
    return n[:40] + "\n" + n[40:]


def n_in_standard_base64(key: SigningKey) -> str:
    n = key.private_key.public_key().public_numbers().n
    return base64.b64encode(n.to_bytes(256, "big")).decode().rstrip("=")


@dataclass(frozen=True)
class KeySetCase:
    name: str
    document: Callable[[Keys], bytes]  # the body the key-set URL serves
    signer: Callable[[Keys], SigningKey] = lambda k: k.a
    kid: Callable[[Keys], str | None] | None = None  # the token's kid (None in the result: no kid); default the signer's
    status: int = 200  # the key-set URL's HTTP status
    differs: tuple[tuple[int, bytes], tuple[int, bytes]] | None = None  # (native, plugin), on purpose


KEY_SET_CASES = [
    KeySetCase("one signing key", lambda k: key_set(k.a.jwk())),
    KeySetCase("a signing key, then an enc key under its kid",
               lambda k: key_set(k.a.jwk(), edited(k.b.jwk(), kid=k.a.kid, use="enc"))),
    KeySetCase("two signing keys under one kid, token by the second",
               lambda k: key_set(k.a.jwk(), edited(k.b.jwk(), kid=k.a.kid)), signer=lambda k: k.b,
               kid=lambda k: k.a.kid),
    KeySetCase("an EC key beside the RSA key", lambda k: key_set(k.ec, k.a.jwk())),
    KeySetCase("a symmetric key beside the RSA key",
               lambda k: key_set(k.a.jwk(), {"kty": "oct", "k": b64url(b"s" * 32), "kid": "sym"})),
    KeySetCase("an EC key first under the token's kid", lambda k: key_set(edited(k.ec, kid=k.a.kid), k.a.jwk())),
    KeySetCase("a key without kid, token kid empty", lambda k: key_set(edited(k.a.jwk(), kid=...)),
               kid=lambda k: ""),
    KeySetCase("a key without kid, token with a kid", lambda k: key_set(edited(k.a.jwk(), kid=...))),
    KeySetCase("a key with kid null, token kid empty", lambda k: key_set(edited(k.a.jwk(), kid=None)),
               kid=lambda k: ""),
    KeySetCase("two keys, token without kid", lambda k: key_set(k.a.jwk(), k.b.jwk()), kid=lambda k: None),
    KeySetCase("key alg RS384, token RS256", lambda k: key_set(edited(k.a.jwk(), alg="RS384"))),
    KeySetCase("key_ops without verify", lambda k: key_set(edited(k.a.jwk(), key_ops=["encrypt"]))),
    KeySetCase("unknown members", lambda k: key_set(edited(k.a.jwk(), ext=True, extra={"a": [1, 2]}))),
    KeySetCase("n and e of one key, x5c of another", lambda k: key_set(edited(k.a.jwk(), x5c=k.b.jwk()["x5c"]))),
    KeySetCase("x5c that is not base64", lambda k: key_set(edited(k.a.jwk(), x5c=["@@@"]))),
    KeySetCase("x5c only, no n or e", lambda k: key_set(edited(k.a.jwk(), n=..., e=...))),
    KeySetCase("x5c of PEM text, with n and e", lambda k: key_set(edited(k.a.jwk(), x5c=pem_in_x5c(k.a)))),
    KeySetCase("n with a line break", lambda k: key_set(edited(k.a.jwk(), n=n_with_line_break(k.a)))),
    KeySetCase("n in the standard base64 alphabet", lambda k: key_set(edited(k.a.jwk(), n=n_in_standard_base64(k.a)))),
    KeySetCase("x5t without x5c", lambda k: key_set(edited(k.a.jwk(), x5c=...))),
    KeySetCase("x5t in hex", lambda k: key_set(edited(k.a.jwk(), x5t=hex_x5t(k.a)))),
    KeySetCase("x5t#S256 of its certificate", lambda k: key_set(edited(k.a.jwk(), **{"x5t#S256": x5t_s256(k.a)}))),
    KeySetCase("x5t of another certificate", lambda k: key_set(edited(k.a.jwk(), x5t=k.b.x5t))),
    KeySetCase("x5t#S256 of another certificate", lambda k: key_set(edited(k.a.jwk(), **{"x5t#S256": x5t_s256(k.b)}))),
    KeySetCase("x5t of another certificate, no x5c", lambda k: key_set(edited(k.a.jwk(), x5c=..., x5t=k.b.x5t))),
    KeySetCase("x5t of the wrong size, no x5c", lambda k: key_set(edited(k.a.jwk(), x5c=..., x5t=b64url(b"t" * 19)))),
    KeySetCase("x5t not base64url", lambda k: key_set(edited(k.a.jwk(), x5t="@@@"))),
    KeySetCase("x5c chain of two certificates",
               lambda k: key_set(edited(k.a.jwk(), x5c=chain(k.a.jwk()["x5c"][0], k.b.jwk()["x5c"][0])))),
    KeySetCase("x5c chain whose second entry is not a certificate",
               lambda k: key_set(edited(k.a.jwk(), x5c=chain(k.a.jwk()["x5c"][0], base64.b64encode(b"junk").decode())))),
    KeySetCase("x5c of PEM text then junk, x5t of another certificate",
               lambda k: key_set(edited(k.a.jwk(), x5c=pem_in_x5c(k.a) + ["@@@"], x5t=k.b.x5t))),
    KeySetCase("alg a number", lambda k: key_set(edited(k.a.jwk(), alg=256))),
    KeySetCase("x of an RSA key not base64url", lambda k: key_set(edited(k.a.jwk(), x="!!!"))),
    KeySetCase("a member named twice", lambda k: raw_key_set(use_twice(k.a.jwk()))),
    KeySetCase("keys empty", lambda k: key_set()),
    KeySetCase("keys not a list", lambda k: json.dumps({"keys": {"a": k.a.jwk()}}).encode()),
    KeySetCase("a single JWK, no keys member", lambda k: json.dumps(k.a.jwk()).encode()),
    KeySetCase("member Keys capitalised", lambda k: json.dumps({"Keys": [k.a.jwk()]}).encode()),
    KeySetCase("a byte order mark", lambda k: b"\xef\xbb\xbf" + key_set(k.a.jwk())),
    KeySetCase("trailing garbage", lambda k: key_set(k.a.jwk()) + b"garbage"),
    KeySetCase("a NaN literal in the key set", lambda k: key_set(edited(k.a.jwk(), ext=0.5)).replace(b"0.5", b"NaN")),
    KeySetCase("an Infinity literal beside keys", lambda k: key_set(k.a.jwk())[:-1] + b', "max": Infinity}'),
    # Deliberate differences (README, "Key sets").
    KeySetCase("an enc key first under the kid, token by the signing key",
               lambda k: key_set(edited(k.b.jwk(), kid=k.a.kid, use="enc"), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("token signed by an enc key", lambda k: key_set(edited(k.a.jwk(), use="enc")),
               differs=(GRANTED, REFUSED)),
    KeySetCase("a key whose use is neither sig nor enc", lambda k: key_set(edited(k.a.jwk(), use="other")),
               differs=(GRANTED, REFUSED)),
    KeySetCase("an RSA key under 1024 bits first under the kid",
               lambda k: key_set(edited(k.short_rsa, kid=k.a.kid), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("a key whose n is not base64url beside the signing key",
               lambda k: key_set(edited(k.b.jwk(), n="!!!"), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("a key without e after the signing key",
               lambda k: key_set(k.a.jwk(), edited(k.b.jwk(), e=...)), differs=(REFUSED, GRANTED)),
    KeySetCase("a key of an unknown kty beside the signing key",
               lambda k: key_set(edited(k.b.jwk(), kty="XYZ"), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("a key whose kid is a number beside the signing key",
               lambda k: key_set(edited(k.b.jwk(), kid=7), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("a key whose x5c names another key beside the signing key",
               lambda k: key_set(edited(k.b.jwk(), x5c=k.c.jwk()["x5c"]), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("an x5t of another certificate beside the signing key",
               lambda k: key_set(edited(k.b.jwk(), x5t=k.c.x5t), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("an x5c chain with a non-certificate beside the signing key",
               lambda k: key_set(k.a.jwk(), edited(k.b.jwk(), x5c=chain(k.b.jwk()["x5c"][0], "@@@"))),
               differs=(REFUSED, GRANTED)),
    KeySetCase("a key whose alg is a number beside the signing key",
               lambda k: key_set(edited(k.b.jwk(), alg=256), k.a.jwk()), differs=(REFUSED, GRANTED)),
    KeySetCase("a key naming a member twice beside the signing key",
               lambda k: raw_key_set(use_twice(k.b.jwk()), json.dumps(k.a.jwk())), differs=(REFUSED, GRANTED)),
    KeySetCase("51 keys", lambda k: key_set(*[edited(k.b.jwk(), kid=f"k{i}") for i in range(50)], k.a.jwk()),
               differs=(GRANTED, REFUSED)),
    KeySetCase("a key set served with HTTP 500", lambda k: key_set(k.a.jwk()), status=500,
               differs=(GRANTED, REFUSED)),
    KeySetCase("x5c of PEM text, no n or e", lambda k: key_set(edited(k.a.jwk(), n=..., e=..., x5c=pem_in_x5c(k.a))),
               differs=(GRANTED, REFUSED)),
]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


@pytest.fixture(scope="module")
def shape_paths(plugin_stack: Stack, keys: Keys) -> Iterator[list[tuple[str, str]]]:
    """For each case, in order: the native JWT API's path and the plugin API's, both reading the key
    set that case serves from a URL of its own (so no cache carries one shape into another)."""
    documents = {f"/{n}/jwks.json": (case.status, case.document(keys)) for n, case in enumerate(KEY_SET_CASES)}

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_bytes(*documents.get(self.path, (404, b"{}")))

    gateway, upstream = plugin_stack.gateway, plugin_stack.upstream
    assert gateway is not None and upstream is not None
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as base:
        api_ids, paths = [], []
        for n in range(len(KEY_SET_CASES)):
            url = f"{base}/{n}/jwks.json"
            native = gw.native_jwt_api(upstream.url, url, api_id=f"ks{n}-native", listen_path=f"/ks{n}-native/",
                                       default_policies=[POLICY])
            config = dict(plugin_stack.config_data(), jwt_source=url, jwt_default_policies=[POLICY])
            plugin = gw.plugin_api(upstream.url, config, bundle=None, manifest=gw.manifest_without_id_extractor(),
                                   api_id=f"ks{n}-plugin", listen_path=f"/ks{n}-plugin/")
            for api in (native, plugin):
                gateway.put_api(api)
                api_ids.append(api["api_id"])
            paths.append((f"/ks{n}-native/get", f"/ks{n}-plugin/get"))
        gateway.put_policy(gw.policy(POLICY, api_ids))
        gateway.reload()
        try:
            yield paths
        finally:
            for api_id in api_ids:
                gateway.remove_api(api_id)
            gateway.reload()


def answer(stack: Stack, path: str, case: KeySetCase, keys: Keys) -> tuple[int, bytes]:
    signer = case.signer(keys)
    kid = case.kid(keys) if case.kid is not None else signer.kid
    token = stack.token(key=signer, headers={"kid": kid}, sub=f"ks-{uuid.uuid4().hex[:10]}@clients")
    result = stack.get(path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    return (200, b"granted") if result.status == 200 else (result.status, result.body)


def test_key_set_shapes_get_the_same_answers_from_native_jwt_and_the_plugin(
        plugin_stack: Stack, keys: Keys, shape_paths: list[tuple[str, str]], capsys) -> None:
    # The plugin learns the new policy when a refusal makes it read the policy list again.
    first = KEY_SET_CASES[0]
    deadline = time.monotonic() + 10
    while answer(plugin_stack, shape_paths[0][1], first, keys) != GRANTED and time.monotonic() < deadline:
        time.sleep(0.2)
    rows = [(case, answer(plugin_stack, native_path, case, keys), answer(plugin_stack, plugin_path, case, keys))
            for case, (native_path, plugin_path) in zip(KEY_SET_CASES, shape_paths, strict=True)]
    with capsys.disabled():
        print(f"\nkey-set shapes: {len(rows)}")
        for case, native, plugin in rows:
            mark = "=" if native == plugin else ("~" if case.differs else "!")
            print(f"  {mark} {case.name:62s} native {native[0]} plugin {plugin[0]}")
    unexpected = [(case.name, native, plugin) for case, native, plugin in rows
                  if (native, plugin) != (case.differs or (native, native))]
    assert not unexpected, unexpected
    assert rows[0][1:] == (GRANTED, GRANTED)

