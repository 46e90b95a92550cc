"""DPoP (RFC 9449): access tokens bound to a key that the client proves it holds on every request.

Off unless an API's ``config_data`` turns it on (``dpop``), so the default path stays native JWT's.
With it on, a token whose claims carry ``cnf.jkt`` (as Auth0 issues them to a client that asked
with a DPoP proof) is accepted only as ``Authorization: DPoP <token>`` with a ``DPoP`` header
holding a fresh proof: a JWS signed by the key whose RFC 7638 thumbprint is that ``jkt``, naming
this request's method and URL and the token's hash, within a time window, with a ``jti`` never
accepted before. Nothing here logs a token, a proof or a ``jti``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from plugin import tokens as tokenlib
from plugin.coprocess import MiniRequestObject
from plugin.errors import (
    DPoPBoundAsBearer,
    DPoPKeyMismatch,
    DPoPProofAlgorithm,
    DPoPProofClaims,
    DPoPProofKey,
    DPoPProofMalformed,
    DPoPProofMethod,
    DPoPProofMissing,
    DPoPProofPrivateKey,
    DPoPProofReplayed,
    DPoPProofSignature,
    DPoPProofTime,
    DPoPProofTokenHash,
    DPoPProofType,
    DPoPProofUrl,
    DPoPRequired,
    DPoPTokenNotBound,
    InvalidToken,
)
from plugin.keys import MAX_RSA_EXPONENT, PRIVATE_MEMBERS, KeyTypeMismatch, verify_signature

log = logging.getLogger("plugin.dpop")

MODES = ("disabled", "allowed", "required")  # the names of Auth0's API SDKs (aspnetcore-api, fastify-api)
SUPPORTED_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512",
                                  "PS256", "PS384", "PS512", "EdDSA"})
DEFAULT_ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
DEFAULT_IAT_OFFSET = 300  # Auth0's SDKs: iatOffset
DEFAULT_IAT_LEEWAY = 30  # Auth0's SDKs: iatLeeway
DEFAULT_JTI_CACHE_SIZE = 100_000
DPOP_HEADER = "Dpop"  # "DPoP" as Go's net/http stores it, and so as the gateway sends it
MAX_PROOF_BYTES = 8 * 1024  # an RSA-4096 jwk and every claim fit in a third of it
MIN_PROOF_RSA_BITS = 2048
HEADER_MEMO_SIZE = 1024
_TYPE = "dpop+jwt"
_SCHEME = "DPOP "
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EC_CURVES: Mapping[str, tuple[str, ec.EllipticCurve, int]] = {
    "ES256": ("P-256", ec.SECP256R1(), 32),
    "ES384": ("P-384", ec.SECP384R1(), 48),
    "ES512": ("P-521", ec.SECP521R1(), 66),
}
_OKP_CURVES = {"Ed25519": 32, "Ed448": 57}
# A jwk member that only a private or symmetric key has: such a proof has published its secret.
_SECRET_MEMBERS = (*PRIVATE_MEMBERS, "k")

ProofKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_hash(access_token: str) -> str:
    """The proof's ``ath``: base64url of the SHA-256 of the token's ASCII text."""
    return b64url(hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest())


class ReplayCache:
    """The ``jti`` of every proof accepted while its window lasts, so none is accepted twice
    (RFC 9449 section 11.1). One per API configuration, in each plugin process.

    Keyed by a 16-byte BLAKE2b of the jti, oldest first. Bounded: past ``size`` entries the oldest
    go before their window ends (its proof could then be replayed), and a warning says so at most
    once a minute.
    """

    def __init__(self, size: int = DEFAULT_JTI_CACHE_SIZE) -> None:
        self.size = size
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self.forgotten = 0  # entries dropped before their window ended
        self._warned_at = -float("inf")

    def admit(self, jti: str, until: float, now: float) -> bool:
        """Remember ``jti`` until ``until``; False when it is already remembered (a replay)."""
        key = hashlib.blake2b(jti.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        seen = self._seen
        with self._lock:
            while seen:
                oldest = next(iter(seen))
                if seen[oldest] > now:
                    break
                del seen[oldest]
            if seen.get(key, now) > now:
                return False
            seen.pop(key, None)
            seen[key] = until
            if len(seen) > self.size:
                seen.popitem(last=False)
                self.forgotten += 1
                self._warn()
        return True

    def _warn(self) -> None:
        moment = time.monotonic()
        if moment - self._warned_at >= 60.0:
            self._warned_at = moment
            log.warning("dpop replay cache full (%d proofs): the oldest are forgotten before their window ends; "
                        "raise dpop_jti_cache_size or lower dpop_iat_offset", self.size)

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True)
class DPoPSettings:
    """One API's DPoP settings; its replay cache lives and dies with the parsed configuration."""

    required: bool = False
    algorithms: frozenset[str] = frozenset(DEFAULT_ALGORITHMS)
    iat_offset: int = DEFAULT_IAT_OFFSET
    iat_leeway: int = DEFAULT_IAT_LEEWAY
    base_url: str = ""  # normalized, without a trailing slash; "" builds the URL from the request
    replay: ReplayCache = field(default_factory=ReplayCache, compare=False, repr=False)
    # Decoded proof headers by their base64url text: a client sends the same header (typ, alg, jwk)
    # with every proof, so its key is built and its thumbprint hashed once.
    headers: tokenlib.HeaderMemo[_ProofHeader] = field(
        default_factory=lambda: tokenlib.HeaderMemo(HEADER_MEMO_SIZE, MAX_PROOF_BYTES), compare=False, repr=False)

    @property
    def algs(self) -> str:
        """For the WWW-Authenticate challenge's ``algs``."""
        return " ".join(sorted(self.algorithms))


# -- the request side ---------------------------------------------------------------------------------


def split_authorization(value: str) -> tuple[str, bool]:
    """The token and whether it came with the DPoP scheme (any letter case, as auth schemes are);
    otherwise an optional ``Bearer `` is dropped, as the gateway drops it."""
    if len(value) > 5 and value[:5].upper() == _SCHEME:
        return value[5:], True
    return tokenlib.strip_bearer(value), False


def confirmation(claims: Mapping[str, Any]) -> str | None:
    """The token's ``cnf.jkt``: None for a token not bound by DPoP; "" for a binding that is not a
    string, which no proof's thumbprint matches."""
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or "jkt" not in cnf:
        return None
    jkt = cnf["jkt"]
    return jkt if isinstance(jkt, str) else ""


def check_request(settings: DPoPSettings, request: MiniRequestObject, token: str, dpop_scheme: bool,
                  jkt: str | None, now: float) -> None:
    """Refuses (DPoPRefused) a verified token this API may not take as it came: a bound one without
    the DPoP scheme and a valid proof, an unbound one with the scheme, or, where DPoP is required, a
    bearer token."""
    if not dpop_scheme:
        if jkt is not None:
            raise DPoPBoundAsBearer(settings.algs)
        if settings.required:
            raise DPoPRequired(settings.algs)
        return
    if jkt is None:
        raise DPoPTokenNotBound(settings.algs)
    check_proof(request.headers.get(DPOP_HEADER, ""), settings, request.method, request_url(request, settings),
                now, access_token=token, jkt=jkt)


def request_url(request: MiniRequestObject, settings: DPoPSettings) -> str:
    """The URL the client called, as its proof's ``htu`` names it: the API's public base URL, or the
    request's scheme and Host header, joined with the path the client sent (query and fragment off).

    The gateway sends ``request_uri`` as the client wrote it, before any listen path is stripped.
    """
    target = request.request_uri or request.url
    path = target.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):  # the absolute form a client may send to a proxy
        try:
            path = urlsplit(path).path
        except ValueError:
            path = ""
    if settings.base_url:
        return settings.base_url + path
    return f"{request.scheme or 'http'}://{request.headers.get('Host', '')}{path}"


_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else "%" + match[1].upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, for a path that starts with '/'."""
    if "." not in path:
        return path
    kept: list[str] = []
    segments = path.split("/")
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            if segment == ".." and len(kept) > 1:
                kept.pop()
            if i == last:
                kept.append("")
            continue
        kept.append(segment)
    return "/".join(kept)


def normalize_url(url: str) -> str | None:
    """``url`` without query and fragment, normalized as RFC 9449 compares ``htu`` (RFC 3986
    sections 6.2.2 and 6.2.3: letter case, percent-encoding, dot segments, default port, empty
    path); None for anything but an absolute http(s) URL without user information."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = _remove_dot_segments(_PERCENT.sub(_percent, parts.path or "/"))
    return f"{scheme}://{netloc}{path}"


# -- the proof -----------------------------------------------------------------------------------------


class _ProofHeader(NamedTuple):
    alg: str
    key: ProofKey
    thumbprint: str


def _header(segment: str, algs: str, memo: tokenlib.HeaderMemo[_ProofHeader]) -> _ProofHeader:
    known = memo.get(segment)
    if known is not None:
        return known
    try:
        header = tokenlib.json_segment(segment)
    except InvalidToken:
        raise DPoPProofMalformed(algs) from None
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != _TYPE:
        raise DPoPProofType(algs)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        raise DPoPProofAlgorithm(algs)
    if "crit" in header:  # no extension is understood here (RFC 7515 4.1.11)
        raise DPoPProofMalformed(algs)
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DPoPProofKey(algs)
    if any(member in jwk for member in _SECRET_MEMBERS):
        raise DPoPProofPrivateKey(algs)
    parsed = _ProofHeader(alg, _public_key(alg, jwk, algs), thumbprint(jwk))
    memo.put(segment, parsed)  # only a header that passed every check on the header alone
    return parsed


def _member(jwk: Mapping[str, Any], name: str, algs: str, size: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise DPoPProofKey(algs)
    try:
        data = tokenlib.decode_segment(value)
    except InvalidToken:
        raise DPoPProofKey(algs) from None
    if not data or (size is not None and len(data) != size):
        raise DPoPProofKey(algs)
    return data


_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK whose key type is known (RSA, EC, OKP): what
    a token bound to that key carries as ``cnf.jkt``."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _public_key(alg: str, jwk: Mapping[str, Any], algs: str) -> ProofKey:
    """The key the proof's jwk names, checked against its alg."""
    kty = jwk.get("kty")
    try:
        if alg[:2] in ("RS", "PS"):
            if kty != "RSA":
                raise DPoPProofKey(algs)
            n = int.from_bytes(_member(jwk, "n", algs), "big")
            e = int.from_bytes(_member(jwk, "e", algs), "big")
            if n.bit_length() < MIN_PROOF_RSA_BITS or not 3 <= e <= MAX_RSA_EXPONENT:
                raise DPoPProofKey(algs)
            return rsa.RSAPublicNumbers(e, n).public_key()
        if alg in _EC_CURVES:
            crv, curve, size = _EC_CURVES[alg]
            if kty != "EC" or jwk.get("crv") != crv:
                raise DPoPProofKey(algs)
            x = int.from_bytes(_member(jwk, "x", algs, size), "big")
            y = int.from_bytes(_member(jwk, "y", algs, size), "big")
            return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        okp_curve = jwk.get("crv")
        if kty != "OKP" or not isinstance(okp_curve, str) or okp_curve not in _OKP_CURVES:
            raise DPoPProofKey(algs)
        raw = _member(jwk, "x", algs, _OKP_CURVES[okp_curve])
        if okp_curve == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        return ed448.Ed448PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # a point off its curve, an unusable modulus
        raise DPoPProofKey(algs) from None


def _signature_valid(header: _ProofHeader, signing_input: bytes, signature: bytes) -> bool:
    key = header.key
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        try:
            key.verify(signature, signing_input)
        except InvalidSignature:
            return False
        return True
    try:
        return verify_signature(header.alg, key, signing_input, signature)
    except KeyTypeMismatch:
        return False


def check_proof(proof: str, settings: DPoPSettings, method: str, url: str, now: float, *,
                access_token: str | None = None, jkt: str | None = None, remember: bool = True) -> str:
    """The proof's key thumbprint, once every RFC 9449 section 4.3 check passes for a request of
    ``method`` to ``url``; with ``access_token`` its ``ath`` and with ``jkt`` its key must match too.

    Its ``jti`` is remembered only once everything else has passed (``remember``), so a proof refused
    for another reason never blocks the client's next one.
    """
    algs = settings.algs
    if not proof:
        raise DPoPProofMissing(algs)
    if len(proof) > MAX_PROOF_BYTES:
        raise DPoPProofMalformed(algs)
    parts = proof.split(".")
    if len(parts) != 3:
        raise DPoPProofMalformed(algs)
    header = _header(parts[0], algs, settings.headers)
    if header.alg not in settings.algorithms:
        raise DPoPProofAlgorithm(algs)
    try:
        signature = tokenlib.decode_segment(parts[2])
        claims = tokenlib.json_segment(parts[1])
    except InvalidToken:
        raise DPoPProofMalformed(algs) from None
    if not _signature_valid(header, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
        raise DPoPProofSignature(algs)
    jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
    ath = claims.get("ath")
    if (not isinstance(jti, str) or not jti or not isinstance(htm, str) or not isinstance(htu, str)
            or not isinstance(iat, (int, float)) or isinstance(iat, bool)
            or (access_token is not None and not isinstance(ath, str))):
        raise DPoPProofClaims(algs)
    if htm != method:
        raise DPoPProofMethod(algs)
    expected = normalize_url(url)
    if expected is None or normalize_url(htu) != expected:
        raise DPoPProofUrl(algs)
    if not now - settings.iat_offset <= iat <= now + settings.iat_leeway:
        raise DPoPProofTime(algs)
    if access_token is not None and ath != token_hash(access_token):
        raise DPoPProofTokenHash(algs)
    if jkt is not None and header.thumbprint != jkt:
        raise DPoPKeyMismatch(algs)
    # Accepted while now <= iat + offset; the extra second covers the fraction int() would cut.
    if remember and not settings.replay.admit(jti, float(iat) + settings.iat_offset + 1, now):
        raise DPoPProofReplayed(algs)
    return header.thumbprint
