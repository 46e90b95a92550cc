"""Keys and tokens for tests. Every key is generated when the tests run; none is ever written to disk."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://tenant.example.auth0.com/"
AUDIENCE = "https://api.example.com"
ORG_ID = "default"


@dataclass
class SigningKey:
    kid: str
    private: Any
    alg: str = "RS256"

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        if isinstance(self.private, rsa.RSAPrivateKey):
            data = json.loads(RSAAlgorithm.to_jwk(self.public))
        else:
            data = json.loads(ECAlgorithm.to_jwk(self.public))
            # RFC 7518 coordinates are curve-sized; PyJWT before 2.10 wrote them without leading zeros.
            size = (self.public.curve.key_size + 7) // 8
            numbers = self.public.public_numbers()
            data.update(x=b64url(numbers.x.to_bytes(size, "big")), y=b64url(numbers.y.to_bytes(size, "big")))
        data.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return data

    def public_pem(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)




def rsa_key(kid: str | None = None, alg: str = "RS256") -> SigningKey:
    return SigningKey(kid=kid or uuid.uuid4().hex[:16], private=rsa.generate_private_key(65537, 2048), alg=alg)


def ec_key(kid: str | None = None) -> SigningKey:
    return SigningKey(kid=kid or uuid.uuid4().hex[:16], private=ec.generate_private_key(ec.SECP256R1()), alg="ES256")


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "client-abc@clients",
        "aud": AUDIENCE,
        "iat": now - 10,
        "exp": now + 3600,
        "azp": "client-abc",
        "scope": "read:things write:things",
        "gty": "client-credentials",
        "pol": "auth0-policy",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


class _Drop:
    pass


_DROP = _Drop()
DROP: Any = _DROP


def sign(key: SigningKey, payload: dict[str, Any] | None = None, alg: str | None = None,
         headers: dict[str, Any] | None = None) -> str:
    """Sign like an IdP would, but without PyJWT's refusals of odd claims (tests need those tokens)."""
    alg = alg or key.alg
    header = {"alg": alg, "typ": "JWT", "kid": key.kid}
    header.update(headers or {})
    header = {k: v for k, v in header.items() if v is not _DROP}
    body = payload if payload is not None else claims()
    signing_input = ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(body).encode())])
    algorithm = jwt.algorithms.get_default_algorithms()[alg]
    return signing_input + "." + b64url(algorithm.sign(signing_input.encode(), key.private))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any] | bytes, signature: bytes = b"sig") -> str:
    """A token assembled by hand (for alg none, odd headers, forged structures)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ".".join([b64url(json.dumps(header).encode()), b64url(body), b64url(signature)])


def hs256_with_public_pem(key: SigningKey, payload: dict[str, Any] | None = None) -> str:
    """The classic alg-confusion forgery: HS256 keyed with the RSA public key's PEM."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    import hashlib
    import hmac

    signing_input = ".".join([b64url(json.dumps(header).encode()),
                              b64url(json.dumps(payload or claims()).encode())])
    sig = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


@dataclass
class FakeJwks:
    """An in-memory JWKS endpoint for JwksCache(fetcher=...): counts fetches, can fail."""

    keys: list[SigningKey] = field(default_factory=list)
    fetches: int = 0
    failing: bool = False
    body: bytes | None = None

    def __call__(self, url: str, timeout: float, max_bytes: int) -> bytes:
        from plugin.jwks import FetchError

        self.fetches += 1
        if self.failing:
            raise FetchError("HTTP 503")
        if self.body is not None:
            return self.body
        return json.dumps(jwks(*self.keys)).encode()


def sign_any_header(key: SigningKey, header: dict[str, Any], payload: dict[str, Any] | None = None) -> str:
    """Sign with RS256 under any header at all (PyJWT refuses some we must test, e.g. a numeric kid)."""
    return sign_segments(key, b64url(json.dumps(header).encode()), b64url(json.dumps(payload or claims()).encode()))


def sign_segments(key: SigningKey, header_b64: str, payload_b64: str) -> str:
    """Sign already-encoded segments with RS256, whatever they hold (e.g. a payload of JSON null)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = f"{header_b64}.{payload_b64}"
    signature = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)
