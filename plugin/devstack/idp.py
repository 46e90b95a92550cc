"""An Auth0 stand-in: discovery, JWKS and the client-credentials token endpoint.

It exists so the walkthrough (token from Auth0, then call Tyk with it) and the tests
can run on one machine without an Auth0 tenant, and so tests can do what a real
tenant will not let them: rotate keys on demand, break the JWKS endpoint, and mint
tokens with arbitrary claims, headers, keys and algorithms.

Keys live only in memory; nothing here ever writes key material to disk.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import math
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from plugin import dpop as dpoplib
from plugin.devstack.procs import LOOPBACK, BackgroundHTTPServer, QuietHandler, serve_until_signal
from plugin.errors import DPoPRefused

DEFAULT_AUDIENCE = "https://tyk-auth0-demo/api"
DEFAULT_LIFETIME = 86_400  # Auth0's default access-token lifetime for a custom API
TEST_PREFIX = "/__test__/"

# Auth0's two access-token profiles, chosen per API: the default "Auth0" profile (typ JWT, azp,
# gty) and the "RFC 9068" profile (typ at+jwt, client_id instead of azp, a jti, no gty).
AUTH0_PROFILE = "auth0"
RFC9068_PROFILE = "rfc9068"
TOKEN_PROFILES = frozenset({AUTH0_PROFILE, RFC9068_PROFILE})

# JWKS answers that say all is well while they are not (see AuthZeroStandIn.break_jwks).
JWKS_FAULTS = frozenset({"html", "empty", "hang"})
ERROR_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>\n"
    "<body><h1>Checking your browser before accessing the site.</h1>\n"
    "<p>This process is automatic. Please allow up to 5 seconds.</p></body></html>\n"
)


b64url = dpoplib.b64url  # unpadded base64url, as JOSE writes every binary member


def _thumbprint(cert: x509.Certificate) -> str:
    return b64url(hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest())


def _uint_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    """One RSA signing key with the self-signed certificate Auth0 publishes in ``x5c``."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    kid: str

    @classmethod
    def generate(cls, tenant: str = "stand-in") -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, tenant)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        # Auth0's kid is opaque; in the tenant JWKS it usually equals the x5t thumbprint.
        return cls(private_key=key, certificate=cert, kid=_thumbprint(cert))

    @property
    def x5t(self) -> str:
        return _thumbprint(self.certificate)

    def jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "n": _uint_b64(numbers.n),
            "e": _uint_b64(numbers.e),
            "kid": self.kid,
            "x5t": self.x5t,
            "x5c": [base64.b64encode(der).decode()],
        }

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class DPoPKey:
    """A client's DPoP key pair (RFC 9449), kept in memory: it signs the proofs the client sends to
    the token endpoint and with every request that uses the token bound to it."""

    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    alg: str = "ES256"

    @classmethod
    def generate(cls, alg: str = "ES256") -> DPoPKey:
        if alg == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()), alg)
        if alg in ("RS256", "PS256"):
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)
        if alg == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.generate(), alg)
        raise ValueError(f"unsupported DPoP key algorithm {alg!r}")

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers = public.public_numbers()
            return {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
                    "y": b64url(numbers.y.to_bytes(32, "big"))}
        if isinstance(public, rsa.RSAPublicKey):
            rsa_numbers = public.public_numbers()
            return {"kty": "RSA", "n": _uint_b64(rsa_numbers.n), "e": _uint_b64(rsa_numbers.e)}
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}

    @property
    def thumbprint(self) -> str:
        """RFC 7638: what a token bound to this key carries as ``cnf.jkt``."""
        jwk = self.public_jwk()
        members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
        canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"))
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def proof(self, method: str, url: str, access_token: str | None = None, *, headers: Mapping[str, Any] | None = None,
              claims: Mapping[str, Any] | None = None, drop: Iterable[str] = ()) -> str:
        """A fresh proof for one request; ``headers``/``claims`` replace or add fields (None removes one)
        and ``drop`` removes claims, for tests that need a bad one."""
        body: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
        if access_token is not None:
            body["ath"] = dpoplib.token_hash(access_token)
        header: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk()}
        for target, changes in ((header, headers), (body, claims)):
            for name, value in (changes or {}).items():
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = value
        for name in drop:
            body.pop(name, None)
        return encode_jwt(header, body, self.private_key)


@dataclass
class Client:
    """A machine-to-machine application allowed to use the client-credentials grant."""

    secret: str
    claims: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    audiences: tuple[str, ...] | None = None  # None: granted on every API of the tenant


KeyChoice = str | SigningKey | rsa.RSAPrivateKey


class AuthZeroStandIn(BackgroundHTTPServer):
    """A local Auth0 tenant with one or more APIs (audiences) and M2M clients.

    Thread-safe: key state and hooks are guarded by one lock because the HTTP
    handlers run on server threads while tests drive rotation from the main thread.
    """

    def __init__(
        self,
        host: str = LOOPBACK,
        port: int = 0,
        audience: str | Iterable[str] = DEFAULT_AUDIENCE,
        clients: Mapping[str, Client] | None = None,
        *,
        token_lifetime: int = DEFAULT_LIFETIME,
        hs256_secret: str | None = None,
        profiles: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.audiences: tuple[str, ...] = (audience,) if isinstance(audience, str) else tuple(audience)
        if not self.audiences:
            raise ValueError("at least one audience is required")
        # The access-token profile of each API (audience); an API not named here uses Auth0's default.
        self.profiles: dict[str, str] = dict(profiles or {})
        for api, profile in self.profiles.items():
            if profile not in TOKEN_PROFILES:
                raise ValueError(f"API {api!r}: token profile {profile!r} is not one of {sorted(TOKEN_PROFILES)}")
        self.clients: dict[str, Client] = dict(clients or {})
        self.token_lifetime = token_lifetime
        # Auth0 signs HS256 tokens with the API's "signing secret", not a JWKS key.
        self.hs256_secret = hs256_secret or secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._current = SigningKey.generate()
        self._next = SigningKey.generate()
        self._previous: list[SigningKey] = []
        self._revoked: list[SigningKey] = []
        self._unknown: SigningKey | None = None
        self._jwks_status: int | None = None
        self._jwks_reset_after = 1.0
        self._jwks_delay = 0.0
        self._jwks_fault: str | None = None
        self._jwks_drip_every = 2.0
        self._jwks_fetches = 0
        self._jwks_fetches_by_agent: dict[str, int] = {}
        self._token_requests = 0
        # Proofs sent to /oauth/token, checked as Auth0 checks them (each jti once, within 5 minutes).
        self.dpop = dpoplib.DPoPSettings(required=True)

    # -- addresses ---------------------------------------------------------------

    @property
    def audience(self) -> str:
        return self.audiences[0]

    @property
    def issuer(self) -> str:
        """Auth0 issuers carry a trailing slash; verifiers must compare it exactly."""
        return self.url

    @property
    def jwks_url(self) -> str:
        return self.url + ".well-known/jwks.json"

    @property
    def token_url(self) -> str:
        return self.url + "oauth/token"

    @property
    def discovery_url(self) -> str:
        return self.url + ".well-known/openid-configuration"

    # -- keys --------------------------------------------------------------------

    @property
    def current_key(self) -> SigningKey:
        with self._lock:
            return self._current

    @property
    def next_key(self) -> SigningKey:
        with self._lock:
            return self._next

    @property
    def previous_keys(self) -> tuple[SigningKey, ...]:
        with self._lock:
            return tuple(self._previous)

    @property
    def unknown_key(self) -> SigningKey:
        """A key never published in the JWKS (for "no matching kid" tests)."""
        with self._lock:
            if self._unknown is None:
                self._unknown = SigningKey.generate()
            return self._unknown

    def published_keys(self) -> list[SigningKey]:
        with self._lock:
            return [self._current, self._next, *self._previous]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.published_keys()]}

    def rotate(self) -> SigningKey:
        """Auth0's "Rotate": next becomes current, a new next appears, old current stays published."""
        fresh = SigningKey.generate()
        with self._lock:
            self._previous.insert(0, self._current)
            self._current, self._next = self._next, fresh
            return self._current

    def revoke_previous(self) -> list[str]:
        """Auth0's "Revoke": previously used keys leave the JWKS; returns their kids."""
        with self._lock:
            gone, self._previous = self._previous, []
            self._revoked.extend(gone)
            return [k.kid for k in gone]

    # -- failure hooks -----------------------------------------------------------

    def fail_jwks(self, status: int | None = 503, reset_after: float = 1.0) -> None:
        """Make the JWKS endpoint answer ``status`` (None: serve normally again). A 429 carries
        Auth0's rate-limit headers, its ``X-RateLimit-Reset`` ``reset_after`` seconds ahead."""
        with self._lock:
            self._jwks_status = status
            self._jwks_reset_after = reset_after

    def break_jwks(self, fault: str | None, drip_every: float = 2.0) -> None:
        """Make the JWKS endpoint fail while its status says all is well (None: serve normally again):
        "html" answers 200 with an HTML error page (a CDN's or a captive portal's), "empty" answers 200
        with ``{"keys": []}``, and "hang" takes the request and drips the first bytes of an answer, one
        every ``drip_every`` seconds, never finishing it; the connection closes when the fault ends."""
        if fault is not None and fault not in JWKS_FAULTS:
            raise ValueError(f"JWKS fault {fault!r} is not one of {sorted(JWKS_FAULTS)}")
        with self._lock:
            self._jwks_fault = fault
            self._jwks_drip_every = drip_every

    def _hanging(self) -> float | None:
        """The drip interval while the JWKS endpoint hangs, else None."""
        with self._lock:
            return self._jwks_drip_every if self._jwks_fault == "hang" else None

    def jwks_delay(self, seconds: float) -> None:
        """Delay every JWKS answer (0 turns it off)."""
        with self._lock:
            self._jwks_delay = max(0.0, float(seconds))

    @property
    def jwks_fetches(self) -> int:
        with self._lock:
            return self._jwks_fetches

    @property
    def token_requests(self) -> int:
        with self._lock:
            return self._token_requests

    def reset_counters(self) -> None:
        with self._lock:
            self._jwks_fetches = 0
            self._jwks_fetches_by_agent.clear()
            self._token_requests = 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "jwks_fetches": self._jwks_fetches,
                "token_requests": self._token_requests,
                "jwks_status": self._jwks_status,
                "jwks_delay": self._jwks_delay,
                "jwks_fault": self._jwks_fault,
                "current_kid": self._current.kid,
                "next_kid": self._next.kid,
                "previous_kids": [k.kid for k in self._previous],
                "revoked_kids": [k.kid for k in self._revoked],
            }

    # -- tokens ------------------------------------------------------------------

    def add_client(self, client_id: str, client: Client) -> None:
        self.clients[client_id] = client

    def profile_of(self, audience: str | None = None) -> str:
        """The access-token profile of the API ``audience`` (the first API when None)."""
        return self.profiles.get(audience or self.audience, AUTH0_PROFILE)

    def claims_for(self, client_id: str, audience: str | None = None) -> dict[str, Any]:
        """The claims Auth0 puts in a client-credentials access token for this client, in the
        profile of the API it is for."""
        client = self.clients.get(client_id)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"{client_id}@clients",
            "aud": audience or self.audience,
            "iat": now,
            "exp": now + self.token_lifetime,
        }
        if client is not None and client.scope:
            claims["scope"] = client.scope
        if self.profile_of(audience) == RFC9068_PROFILE:
            claims["jti"] = secrets.token_urlsafe(16)
            claims["client_id"] = client_id
        else:
            claims["gty"] = "client-credentials"
            claims["azp"] = client_id
        if client is not None:
            claims.update(client.claims)
        return claims

    def issue_token(
        self,
        client_id: str,
        *,
        key: KeyChoice = "current",
        alg: str = "RS256",
        headers: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        drop: Iterable[str] = (),
        lifetime: int | None = None,
        audience: str | None = None,
        **overrides: Any,
    ) -> str:
        """Mint a token as Auth0 would for ``client_id`` and the API ``audience`` (its claims and
        ``typ`` follow that API's token profile), then bend it as a test needs.

        ``overrides`` (and ``claims`` for names that are not identifiers) replace or
        add claims; ``drop`` removes claims; ``headers`` replaces or adds header
        fields, and a ``None`` value removes one (e.g. ``headers={"kid": None}``).
        ``key`` is "current", "next", "previous", "unknown", a SigningKey or a bare
        RSA private key. ``alg`` may be RS/PS 256-512, HS256-512 (signed with
        ``hs256_secret``), ES256 (a throwaway EC key) or "none".
        """
        body = self.claims_for(client_id, audience)
        if lifetime is not None:
            body["exp"] = body["iat"] + lifetime
        body.update(claims or {})
        body.update(overrides)
        for name in drop:
            body.pop(name, None)

        signer: Any
        kid: str | None = None
        if alg.startswith(("RS", "PS")):
            signing_key = self._resolve_key(key)
            if isinstance(signing_key, SigningKey):
                signer, kid = signing_key.private_key, signing_key.kid
            else:
                signer = signing_key
        elif alg.startswith("HS"):
            signer = self.hs256_secret.encode()
        elif alg.startswith("ES"):
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
            signer = ec.generate_private_key(curve)
            kid = "ec-" + secrets.token_hex(8)
        elif alg == "none":
            signer = None
        else:
            raise ValueError(f"unsupported alg {alg!r}")

        header: dict[str, Any] = {"alg": alg, "typ": "at+jwt" if self.profile_of(audience) == RFC9068_PROFILE else "JWT"}
        if kid is not None:
            header["kid"] = kid
        for name, value in (headers or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return encode_jwt(header, body, signer)

    def _resolve_key(self, key: KeyChoice) -> SigningKey | rsa.RSAPrivateKey:
        if isinstance(key, (SigningKey, rsa.RSAPrivateKey)):
            return key
        if key == "current":
            return self.current_key
        if key == "next":
            return self.next_key
        if key == "previous":  # the key used before the last rotation, revoked or not
            with self._lock:
                candidates = self._previous[:1] or self._revoked[-1:]
            if not candidates:
                raise ValueError("no previous key: call rotate() first")
            return candidates[0]
        if key == "unknown":
            return self.unknown_key
        raise ValueError(f"unknown key choice {key!r}")

    def token_response(self, client_id: str, audience: str, jkt: str | None = None) -> dict[str, Any]:
        """As Auth0 answers: with ``jkt`` (the request carried a DPoP proof) the token is bound to that
        key in ``cnf.jkt`` and its type is DPoP."""
        claims = {"cnf": {"jkt": jkt}} if jkt is not None else None
        token = self.issue_token(client_id, audience=audience, claims=claims)
        out: dict[str, Any] = {"access_token": token}
        scope = self.clients[client_id].scope
        if scope:
            out["scope"] = scope
        out["expires_in"] = self.token_lifetime
        out["token_type"] = "Bearer" if jkt is None else "DPoP"
        return out

    def discovery(self) -> dict[str, Any]:
        base = self.url
        return {
            "issuer": self.issuer,
            "authorization_endpoint": base + "authorize",
            "token_endpoint": self.token_url,
            "device_authorization_endpoint": base + "oauth/device/code",
            "userinfo_endpoint": base + "userinfo",
            "mfa_challenge_endpoint": base + "mfa/challenge",
            "jwks_uri": self.jwks_url,
            "registration_endpoint": base + "oidc/register",
            "revocation_endpoint": base + "oauth/revoke",
            "scopes_supported": ["openid", "profile", "offline_access", "email"],
            "response_types_supported": ["code", "token", "id_token", "code token"],
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["HS256", "RS256", "PS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "dpop_signing_alg_values_supported": sorted(self.dpop.algorithms),
            "claims_supported": ["aud", "exp", "iat", "iss", "sub", "name", "email"],
        }

    # -- request handling (called from server threads) ---------------------------

    def jwks_fetches_by(self, agent_prefix: str) -> int:
        """Fetches whose User-Agent starts with ``agent_prefix`` (tells the plugin from the gateway)."""
        with self._lock:
            return sum(n for agent, n in self._jwks_fetches_by_agent.items() if agent.startswith(agent_prefix))

    def _serve_jwks(self, agent: str = "") -> tuple[int, dict[str, Any] | str | None, dict[str, str]]:
        """The JWKS answer: a JSON document, an HTML page (str), or None for an answer never finished."""
        with self._lock:
            self._jwks_fetches += 1
            self._jwks_fetches_by_agent[agent] = self._jwks_fetches_by_agent.get(agent, 0) + 1
            status, delay, reset_after = self._jwks_status, self._jwks_delay, self._jwks_reset_after
            fault = self._jwks_fault
        if delay:
            time.sleep(delay)
        if fault == "hang":
            return 200, None, {}
        if fault == "html":
            return 200, ERROR_PAGE, {}
        if fault == "empty":
            return 200, {"keys": []}, {}
        if status == 429:  # Auth0's rate-limit answer: no Retry-After, the bucket's refill time as a UNIX time
            headers = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": str(math.ceil(time.time() + reset_after))}
            return 429, {"error": "too_many_requests", "error_description": "Global limit has been reached"}, headers
        if status is not None:
            return status, {"error": "stand-in JWKS failure", "status": status}, {}
        return 200, self.jwks(), {}

    def _oauth_token(self, params: Mapping[str, Any], basic: tuple[str, str] | None,
                     dpop_proof: str | None = None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._token_requests += 1
        grant = params.get("grant_type")
        if grant != "client_credentials":
            if not grant:
                return 400, _oauth_error("invalid_request", "Missing required parameter: grant_type")
            return 403, _oauth_error("unauthorized_client", f"Grant type '{grant}' not allowed for the client.")
        client_id, secret = basic or (params.get("client_id"), params.get("client_secret"))
        client = self.clients.get(str(client_id)) if client_id else None
        if (
            client is None
            or not isinstance(secret, str)
            or not hmac.compare_digest(client.secret.encode(), secret.encode())
        ):
            return 401, _oauth_error("access_denied", "Unauthorized")
        audience = params.get("audience")
        if not audience:
            return 403, _oauth_error(
                "access_denied",
                "No audience parameter was provided, and no default audience has been configured",
            )
        if audience not in self.audiences:
            return 403, _oauth_error("access_denied", f"Service not found: {audience}")
        if client.audiences is not None and audience not in client.audiences:
            return 403, _oauth_error(
                "access_denied",
                f'Client is not authorized to access "{audience}". You need to create a '
                '"client-grant" associated to this API.',
            )
        jkt = None
        if dpop_proof is not None:
            try:
                jkt = dpoplib.check_proof(dpop_proof, self.dpop, "POST", self.token_url, time.time())
            except DPoPRefused as exc:
                return 400, _oauth_error("invalid_dpop_proof", exc.detail)
        return 200, self.token_response(str(client_id), str(audience), jkt)

    def _test_hook(self, name: str, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        if name == "rotate":
            self.rotate()
        elif name == "revoke-previous":
            self.revoke_previous()
        elif name == "jwks-fail":
            status = params.get("status", 503)
            self.fail_jwks(int(status) if status is not None else None)
        elif name == "jwks-delay":
            self.jwks_delay(float(params.get("seconds", 0)))
        elif name == "reset":
            self.fail_jwks(None)
            self.break_jwks(None)
            self.jwks_delay(0)
            self.reset_counters()
        elif name == "token":
            client_id = str(params.get("client_id") or next(iter(self.clients), "test-client"))
            token = self.issue_token(
                client_id,
                key=str(params.get("key", "current")),
                alg=str(params.get("alg", "RS256")),
                headers=params.get("headers") or {},
                claims=params.get("claims") or {},
                drop=params.get("drop") or (),
                lifetime=params.get("lifetime"),
                audience=params.get("audience"),
            )
            return 200, {"access_token": token, "token_type": "Bearer"}
        elif name != "stats":
            return 404, {"error": f"unknown test hook {name!r}"}
        return 200, self.stats()


def _oauth_error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


def encode_jwt(header: Mapping[str, Any], claims: Mapping[str, Any], key: Any) -> str:
    """Compact JWS with exactly the given header (PyJWT would add or reorder fields)."""
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    alg = str(header.get("alg", "none"))
    if alg == "none" or key is None:
        return signing_input + "."
    algorithm = jwt.PyJWS().get_algorithm_by_name(alg)
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key))
    return signing_input + "." + b64url(signature)


class _Handler(QuietHandler):
    server_version = "stand-in-auth0"
    # Idle keep-alive connections close after this many seconds, as a CDN's do. Native JWT opens a new
    # connection for each JWKS fetch and leaves it open; while its fetches fail it fetches on every
    # request, and each connection would hold one of this server's threads.
    timeout = 2.0

    @property
    def idp(self) -> AuthZeroStandIn:
        return self.server.owner  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path
        if path == "/.well-known/jwks.json":
            status, body, extra = self.idp._serve_jwks(self.headers.get("User-Agent", ""))
            headers = {"Cache-Control": "public, max-age=15, stale-while-revalidate=15, stale-if-error=86400", **extra}
            if body is None:
                self._drip_until_mended()
            elif isinstance(body, str):
                self.send_bytes(status, body.encode(), "text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
            else:
                self.send_json(status, body, headers=headers)
        elif path == "/.well-known/openid-configuration":
            self.send_json(200, self.idp.discovery())
        elif path == TEST_PREFIX + "stats":
            self.send_json(200, self.idp.stats())
        else:
            self.send_json(404, {"error": "not_found", "error_description": "Not Found"})

    def _drip_until_mended(self) -> None:
        """A hung JWKS endpoint: the start of a 200 answer, then one more byte of a header that never
        ends every drip interval, until the fault ends or the client gives up; then the connection closes."""
        self.close_connection = True
        stream = itertools.chain(b"HTTP/1.1 200 OK\r\nX-Stalled: ", itertools.repeat(ord(".")))
        next_drip = time.monotonic()
        while (every := self.idp._hanging()) is not None:
            if time.monotonic() >= next_drip:
                try:
                    self.wfile.write(bytes([next(stream)]))
                    self.wfile.flush()
                except OSError:
                    return
                next_drip = time.monotonic() + every
            time.sleep(0.05)

    def do_POST(self) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        raw = self.read_body()
        params = self._parse_params(raw)
        if params is None:
            self.send_json(400, _oauth_error("invalid_request", "Invalid request body"))
            return
        if path == "/oauth/token":
            status, body = self.idp._oauth_token(params, self._basic_auth(), self.headers.get("DPoP"))
            headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
            self.send_json(status, body, headers=headers)
        elif path.startswith(TEST_PREFIX):
            try:
                status, body = self.idp._test_hook(path[len(TEST_PREFIX) :], params)
            except (TypeError, ValueError) as exc:
                status, body = 400, {"error": str(exc)}
            self.send_json(status, body)
        else:
            self.send_json(404, {"error": "not_found", "error_description": "Not Found"})

    def _parse_params(self, raw: bytes) -> dict[str, Any] | None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not raw.strip():
            return {}
        if ctype == "application/x-www-form-urlencoded":
            return dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def _basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("Authorization") or ""
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return urllib.parse.unquote(user), urllib.parse.unquote(password)


AuthZeroStandIn.handler_class = _Handler


def token_curl(token_url: str, client_id: str, client_secret: str, audience: str) -> str:
    """The walkthrough's token request, ready to paste."""
    data = json.dumps(
        {
            "client_id": client_id,
            "client_secret": client_secret,
            "audience": audience,
            "grant_type": "client_credentials",
        },
        separators=(",", ":"),
    )
    return (
        "curl --request POST \\\n"
        f"  --url {token_url} \\\n"
        "  --header 'content-type: application/json' \\\n"
        f"  --data '{data}'"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin.devstack.idp", description="Run the Auth0 stand-in alone.")
    parser.add_argument("--host", default=os.environ.get("STACK_IDP_HOST", LOOPBACK))
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACK_IDP_PORT", "0")))
    parser.add_argument("--audience", default=os.environ.get("STACK_AUDIENCE", DEFAULT_AUDIENCE))
    parser.add_argument("--client-id", default=os.environ.get("STACK_CLIENT_ID", "demo-m2m-client"))
    parser.add_argument("--client-secret", default=os.environ.get("STACK_CLIENT_SECRET") or None)
    parser.add_argument("--scope", default="read:echo")
    parser.add_argument("--pol", default=None, help="value of the token's 'pol' claim (default: none)")
    parser.add_argument("--token-profile", choices=sorted(TOKEN_PROFILES), default=AUTH0_PROFILE,
                        help="the API's access-token profile, as set in Auth0 (default: auth0)")
    args = parser.parse_args(argv)

    secret = args.client_secret or secrets.token_urlsafe(24)
    claims = {"pol": args.pol} if args.pol else {}
    idp = AuthZeroStandIn(
        args.host,
        args.port,
        audience=args.audience,
        clients={args.client_id: Client(secret, claims=claims, scope=args.scope)},
        profiles={args.audience: args.token_profile},
    )
    idp.start()
    banner = "\n".join(
        [
            f"Auth0 stand-in on {idp.url}",
            f"  issuer   {idp.issuer}",
            f"  jwks_uri {idp.jwks_url}",
            "Get a token:",
            token_curl(idp.token_url, args.client_id, secret, idp.audience),
            "Ctrl-C to stop.",
        ]
    )
    return serve_until_signal(idp.stop, banner=banner)


if __name__ == "__main__":
    raise SystemExit(main())
