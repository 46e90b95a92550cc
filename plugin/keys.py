"""Verification keys: built once from a JWK or PEM, then used for every signature check.

Signature checks call ``cryptography`` directly with pre-built key objects; that
is the whole cost of a verify (about 40 µs for RSA-2048), with none of the
per-call parsing a generic JWT library repeats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from plugin.errors import InvalidToken
from plugin.tokens import decode_segment

VerificationKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | bytes

_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# Padding and hash objects are immutable descriptors: built once, not per signature.
_DIGESTS: Mapping[str, hashes.HashAlgorithm] = {size: algorithm() for size, algorithm in _HASHES.items()}
_PKCS1V15 = padding.PKCS1v15()
_HMAC_DIGESTS = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
# The curves JOSE names (RFC 7518); Go's JWK and x509 parsers know no others (e.g. not secp256k1).
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_JOSE_CURVES = frozenset(_EC_CURVES.values())


# Go 1.24+ crypto/rsa (and so the gateway) refuses RSA keys under 1024 bits: they can be factored.
MIN_RSA_BITS = 1024
# Go's crypto/rsa also refuses a public exponent above 2**31-1; a huge one makes every verify slow.
MAX_RSA_EXPONENT = 2**31 - 1
# Members only a private JWK has. A key set that publishes one is never trusted with it (the gateway's
# verifier cannot use a private key either), and building it would cost seconds of prime recovery.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
# Members the gateway's JWK parser reads into strings, and those it decodes as base64url whatever the
# key type: another JSON type (null aside), or text that is not base64url, refuses the entry.
_STRING_MEMBERS = ("use", "kty", "kid", "crv", "alg", "x5u", "x5t", "x5t#S256")
_BASE64URL_MEMBERS = ("k", "x", "y", "n", "e")


class KeyTypeMismatch(Exception):
    """The key found cannot check this algorithm (e.g. an RSA key for HS256)."""


def key_from_jwk(jwk: Mapping[str, Any]) -> VerificationKey | None:
    """A public key from one JWKS entry, or None for entries we never verify with.

    Only signing keys (``use`` absent or ``sig``) of type RSA or EC are kept: an
    encryption key or a symmetric key in a public JWKS is never a verification key.
    Nor is an entry the gateway's JWK parser refuses (a member of the wrong JSON type, a key number
    not base64url, a certificate in ``x5c`` that does not parse or names another key, an ``x5t``
    thumbprint of the wrong size or of another certificate).
    """
    use = jwk.get("use")
    if use not in (None, "sig") or any(member in jwk for member in PRIVATE_MEMBERS) or not _members_read(jwk):
        return None
    kty = jwk.get("kty")
    try:
        key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None = None
        if kty == "RSA":
            rsa_key = RSAAlgorithm.from_jwk(_as_go_reads(jwk, ("n", "e")))
            key = rsa_key if isinstance(rsa_key, rsa.RSAPublicKey) and _usable_rsa(rsa_key) else None
        elif kty == "EC":
            ec_key = ECAlgorithm.from_jwk(_as_go_reads(jwk, ("x", "y")))
            key = ec_key if isinstance(ec_key, ec.EllipticCurvePublicKey) and ec_key.curve.name in _JOSE_CURVES else None
        if key is not None and not _certificates_agree(jwk, key):
            return None
        return key
    except Exception:  # noqa: BLE001 - a malformed entry is skipped, never fatal to the set
        return None


def _members_read(jwk: Mapping[str, Any]) -> bool:
    """Whether the gateway's JWK parser reads the entry's members: each a string where it takes a
    string, and every key number base64url, even those its key type does not use."""
    if any(jwk.get(name) is not None and not isinstance(jwk[name], str) for name in _STRING_MEMBERS):
        return False
    try:
        for name in _BASE64URL_MEMBERS:
            value = jwk.get(name)
            if value is not None:
                if not isinstance(value, str):
                    return False
                decode_segment(value.rstrip("="))
    except InvalidToken:
        return False
    return True


def _as_go_reads(jwk: Mapping[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    """The entry with its key numbers read as the gateway's JWK parser reads them: base64url once
    trailing '=' are cut, CR and LF skipped; any other character (the standard alphabet's + and /)
    makes the entry malformed."""
    entry = dict(jwk)
    for name in members:
        value = jwk.get(name)
        if isinstance(value, str):
            entry[name] = base64.urlsafe_b64encode(decode_segment(value.rstrip("="))).rstrip(b"=").decode()
        elif value is not None:
            raise ValueError(f"{name} is not a string")
    return entry


def _certificates_agree(jwk: Mapping[str, Any], key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bool:
    """Whether the entry's certificate members pass the gateway's JWK parser: ``x5c`` a list of
    base64 DER certificates, every one of them parsed, the first naming this very key (RFC 7517
    4.7); ``x5t`` and ``x5t#S256`` thumbprints of their hash's size, of that first certificate when
    there is one. An entry failing any of them is not trusted with its key."""
    chain = jwk.get("x5c")
    if chain is None:
        chain = []
    if not isinstance(chain, list) or not all(isinstance(cert, str) for cert in chain):
        return False
    x5t, x5t_s256 = jwk.get("x5t"), jwk.get("x5t#S256")  # strings or None: _members_read has seen them
    try:
        leaf = _standard_base64(chain[0]) if chain else None
        if leaf is not None:
            try:
                certificate = x509.load_der_x509_certificate(leaf)
            except ValueError:
                # The gateway's parser refuses the whole set, and its fallback then reads this entry's
                # first certificate alone, as PEM text (thumbprints and the rest of the chain unread).
                return b"-----" in leaf and _same_key(load_static_public_key(leaf), key)
            for cert in chain[1:]:
                x509.load_der_x509_certificate(_standard_base64(cert))
            if not _same_key(certificate.public_key(), key):
                return False
        for value, digest in ((x5t, hashlib.sha1), (x5t_s256, hashlib.sha256)):
            thumbprint = _thumbprint(value, digest().digest_size)
            if thumbprint and leaf is not None and thumbprint != digest(leaf).digest():
                return False
    except (ValueError, InvalidToken, UnsupportedAlgorithm):
        return False
    return True


def _same_key(published: Any, key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bool:
    return type(published) is type(key) and published.public_numbers() == key.public_numbers()


def _standard_base64(text: str) -> bytes:
    """Padded standard base64 as Go's StdEncoding reads it: CR and LF skipped wherever they are; any
    other character outside the alphabet, a missing or excess '=', or text after it refused."""
    data = text.encode("ascii").translate(None, b"\r\n")
    if len(data) % 4 or data.endswith(b"==="):
        raise ValueError("not padded base64")
    return binascii.a2b_base64(data, strict_mode=True)


def _thumbprint(value: str | None, size: int) -> bytes:
    """An ``x5t``/``x5t#S256`` value as the gateway's JWK parser reads it (empty when absent):
    base64url with trailing '=' cut; a digest written in hex (twice the size) is read as hex. Any
    other size is refused."""
    if not value:
        return b""
    digest = decode_segment(value.rstrip("="))
    if len(digest) == 2 * size:
        digest = binascii.unhexlify(digest)
    if digest and len(digest) != size:
        raise ValueError(f"a thumbprint of {len(digest)} bytes, not {size}")
    return digest


def _usable_rsa(key: rsa.RSAPublicKey) -> bool:
    return key.key_size >= MIN_RSA_BITS and key.public_numbers().e <= MAX_RSA_EXPONENT


def load_static_public_key(data: bytes) -> VerificationKey:
    """A PEM or DER public key or X.509 certificate, as the gateway's ParseRSAPublicKey accepts."""
    loaders = (
        serialization.load_pem_public_key,
        serialization.load_der_public_key,
        lambda raw: x509.load_pem_x509_certificate(raw).public_key(),
        lambda raw: x509.load_der_x509_certificate(raw).public_key(),
    )
    for load in loaders:
        try:
            key = load(data)
        except (ValueError, TypeError):
            continue
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise ValueError(f"a {key.key_size}-bit RSA key is refused (the minimum is {MIN_RSA_BITS})")
        if isinstance(key, rsa.RSAPublicKey) and key.public_numbers().e > MAX_RSA_EXPONENT:
            raise ValueError(f"an RSA public exponent above {MAX_RSA_EXPONENT} is refused")
        if isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            return key
        raise ValueError("only RSA and EC public keys are supported")
    raise ValueError("is not a PEM/DER public key or certificate")


def verify_signature(alg: str, key: VerificationKey, signing_input: bytes, signature: bytes) -> bool:
    """True when ``signature`` is valid for ``alg``; KeyTypeMismatch when the key cannot do ``alg``."""
    family, size = alg[:2], alg[2:]
    if family == "HS":
        if not isinstance(key, bytes):
            raise KeyTypeMismatch(alg)
        expected = hmac.new(key, signing_input, _HMAC_DIGESTS[size]).digest()
        return hmac.compare_digest(expected, signature)
    digest = _DIGESTS[size]
    try:
        if family == "RS":
            if not isinstance(key, rsa.RSAPublicKey):
                raise KeyTypeMismatch(alg)
            key.verify(signature, signing_input, _PKCS1V15, digest)
            return True
        if family == "PS":
            if not isinstance(key, rsa.RSAPublicKey):
                raise KeyTypeMismatch(alg)
            if len(signature) != (key.key_size + 7) // 8:
                return False  # OpenSSL left-pads a short PSS signature; Go's VerifyPSS refuses it
            # Salt length is taken from the signature, as the gateway's verifier does.
            pss = padding.PSS(mgf=padding.MGF1(_HASHES[size]()), salt_length=padding.PSS.AUTO)
            key.verify(signature, signing_input, pss, digest)
            return True
        if family == "ES":
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _EC_CURVES[alg]:
                raise KeyTypeMismatch(alg)
            half = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * half:
                return False
            r = int.from_bytes(signature[:half], "big")
            s = int.from_bytes(signature[half:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest))
            return True
    except InvalidSignature:
        return False
    raise KeyTypeMismatch(alg)
