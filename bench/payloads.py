"""Realistic requests: the gateway's CustomKeyCheck Object and Auth0-shaped tokens.

The Object mirrors what Tyk's BuildObject sends for an auth hook (15 request headers,
spec with config_data, return_overrides.response_code = -1); tokens mirror an Auth0
client-credentials access token (~900 bytes, RS256, kid + typ in the header).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from plugin.coprocess import Object
from tests.support.objects import AUTH_HOOK, auth_object, config_data
from tests.support.tokens import SigningKey

ISSUER = "https://tenant.example.auth0.com/"
AUDIENCE = "https://api.example.com"
POLICY_CLAIM = "https://api.example.com/pol"
GRPC_PATH = "/coprocess.Dispatcher/Dispatch"

# Request headers beside Authorization and the four auth_object() sets: 15 in all, as a
# browser-ish client behind a load balancer sends them (Go-canonical names, as Tyk sends them).
EXTRA_HEADERS: dict[str, str] = {
    "Accept-Encoding": "gzip, deflate, br",
    "Accept-Language": "en-GB,en;q=0.9",
    "Cache-Control": "no-cache",
    "Content-Type": "application/json",
    "Origin": "https://app.example.com",
    "Referer": "https://app.example.com/dashboard",
    "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "X-Forwarded-Proto": "https",
    "X-Request-Id": "9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "X-Real-Ip": "10.1.2.3",
}


def auth0_claims(sub: str = "Xq3bLr7tPz9wKd2mVn5cHy8s@clients", jti: str | None = None) -> dict[str, Any]:
    """An Auth0 M2M access token's payload, with a namespaced policy claim an Action adds."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": sub,
        "aud": [AUDIENCE, "https://tenant.example.auth0.com/userinfo"],
        "iat": now - 10,
        "exp": now + 86400,
        "azp": "Xq3bLr7tPz9wKd2mVn5cHy8s",
        "scope": "read:orders write:orders",
        "gty": "client-credentials",
        "permissions": ["read:orders", "write:orders"],
        POLICY_CLAIM: "auth0-policy",
    }
    if jti is not None:
        claims["jti"] = jti
    return claims


def rsa_token(key: SigningKey, *, signer: SigningKey | None = None, **claim_overrides: Any) -> str:
    """Compact-JSON RS256 token with ``key``'s kid, signed by ``signer`` (default: the same key)."""
    claims = auth0_claims()
    claims.update(claim_overrides)
    header = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    private = (signer or key).private
    signature = private.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def forged_token(key: SigningKey, stranger: SigningKey) -> str:
    """A token under ``key``'s kid signed by ``stranger``, whose signature is a number below ``key``'s
    modulus, so that the verify does the full RSA operation: OpenSSL refuses a larger one before any
    arithmetic, and with two random keys that happens about half the time."""
    modulus = key.private.public_key().public_numbers().n
    for attempt in range(64):
        token = rsa_token(key, signer=stranger, jti=f"forged-{attempt}")
        signature = base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")
        if int.from_bytes(signature, "big") < modulus:
            return token
    raise RuntimeError("no forged signature below the key's modulus in 64 tries")


def api_config(jwks_url: str) -> str:
    """config_data as the gateway sends it (compact, sorted keys), for an RS256 Auth0 API."""
    return config_data(jwt_source=jwks_url, issuer=ISSUER, audience=AUDIENCE,
                       jwt_policy_field_name=POLICY_CLAIM, jwt_allowed_algorithms=["RS256"])


def request_object(token: str, config: str) -> Object:
    obj = auth_object(f"Bearer {token}", config=config)
    obj.request.headers.update(EXTRA_HEADERS)
    return obj


def grpc_frame(message: Object) -> bytes:
    """One gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, body."""
    body = message.SerializeToString()
    return struct.pack(">BI", 0, len(body)) + body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Hs256Minter:
    """Distinct HS256 tokens at a few µs each (an RSA signature costs ~1 ms), for memory runs.

    Only ``sub`` and ``jti`` change from one token to the next, so the payload's JSON is split
    once around them and the HMAC state over the fixed header is copied per token.
    """

    secret: bytes

    def __post_init__(self) -> None:
        self._header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = auth0_claims(sub=f"client-{_SUB_MARK}@clients", jti=_JTI_MARK)
        text = json.dumps(claims, separators=(",", ":")).encode()
        self._head, rest = text.split(_SUB_MARK.encode())
        self._middle, self._tail = rest.split(_JTI_MARK.encode())
        self._mac = hmac.new(self.secret, (self._header + ".").encode("ascii"), hashlib.sha256)

    def token(self, n: int) -> str:
        payload = b64url(self._head + b"%09d" % n + self._middle + b"%016x" % n + self._tail)
        mac = self._mac.copy()
        mac.update(payload.encode("ascii"))
        return self._header + "." + payload + "." + b64url(mac.digest())

    def config(self) -> str:
        return config_data(jwt_source=base64.b64encode(self.secret).decode(), jwt_signing_method="hmac",
                           issuer=ISSUER, audience=AUDIENCE, jwt_policy_field_name=POLICY_CLAIM)


_SUB_MARK = "<sub>"  # replaced by the counter as 9 digits ("client-000000042@clients")
_JTI_MARK = "<jti>"  # and as 16 hex digits

__all__ = ["AUTH_HOOK", "GRPC_PATH", "Hs256Minter", "api_config", "auth0_claims", "grpc_frame",
           "request_object", "rsa_token"]
