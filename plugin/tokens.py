"""Taking a compact JWS apart exactly as the gateway's JWT library does, without trusting it yet.

The rules mirror golang-jwt v4 (used by Tyk's native JWT middleware) so that a
token which the gateway would call malformed is malformed here too: three
segments, unpadded base64url, a JSON object header, a JSON object payload
(where, as in Go, text after the object is ignored), and an ``alg`` the
library knows.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any, NamedTuple

from plugin.errors import InvalidToken

# Algorithms golang-jwt v4 registers. Anything else is "signing method (alg) is unavailable".
KNOWN_ALGORITHMS = frozenset(
    {f"{family}{size}" for family in ("HS", "RS", "PS", "ES") for size in ("256", "384", "512")}
    | {"EdDSA", "none"}
)

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_JSON_DECODER = json.JSONDecoder(parse_constant=lambda name: _reject_constant(name))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class ParsedToken(NamedTuple):  # a tuple: built on every verification, and cheap to build
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature_b64: str  # decoded only after the alg and key checks, in the gateway's order

    @property
    def alg(self) -> str:
        return self.header["alg"]


def strip_bearer(value: str) -> str:
    """Drop a case-insensitive ``Bearer `` prefix, as the gateway does (and nothing else)."""
    if len(value) > 6 and value[:7].upper() == "BEARER ":
        return value[7:]
    return value


def decode_segment(segment: str) -> bytes:
    if _SEGMENT.fullmatch(segment) is None or len(segment) % 4 == 1:
        raise InvalidToken("segment is not unpadded base64url")
    # The alphabet is checked above, so the lenient decoder reads exactly what Go's RawURLEncoding does.
    try:
        return binascii.a2b_base64(segment.encode("ascii").translate(_TO_STANDARD_ALPHABET) + b"=" * (-len(segment) % 4))
    except binascii.Error:
        raise InvalidToken("segment is not base64url") from None


def parse(raw: str) -> ParsedToken:
    """Split and decode a token; raises InvalidToken for anything the gateway would refuse to parse."""
    parts = raw.split(".")
    if len(parts) != 3:
        raise InvalidToken("token does not have three segments")
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(decode_segment(header_b64), trailing_ok=False)
    claims = _json_object(decode_segment(payload_b64), trailing_ok=True)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in KNOWN_ALGORITHMS:
        raise InvalidToken("unknown or missing alg")
    return ParsedToken(
        header=header,
        claims=claims,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature_b64=signature_b64,
    )


def _json_object(data: bytes, trailing_ok: bool) -> dict[str, Any]:
    text = data.decode("utf-8", errors="replace")
    try:
        if trailing_ok:
            value, _ = _JSON_DECODER.raw_decode(text.lstrip(" \t\r\n"))
        else:
            value = _JSON_DECODER.decode(text)
    except (ValueError, RecursionError):
        raise InvalidToken("segment is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken("segment is not a JSON object")
    return value
