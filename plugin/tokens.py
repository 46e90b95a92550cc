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
import math
import re
from typing import Any, Generic, NamedTuple, TypeVar

from plugin import gojson
from plugin.errors import InvalidToken

# Algorithms golang-jwt v4 registers. Anything else is "signing method (alg) is unavailable".
KNOWN_ALGORITHMS = frozenset(
    {f"{family}{size}" for family in ("HS", "RS", "PS", "ES") for size in ("256", "384", "512")}
    | {"EdDSA", "none"}
)

# base64url's '-' and '_' become the standard alphabet's '+' and '/'; a literal '+', '/' or '='
# becomes '!', outside every alphabet, so strict decoding refuses it as Go's RawURLEncoding does.
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"", b"==", b"=")  # by length % 4; a remainder of 1 is never valid base64
HEADER_MEMO_SIZE = 256
HEADER_MEMO_MAX_SEGMENT = 512  # longer headers are parsed every time, so the memo stays small
_Header = TypeVar("_Header")
_MAX_FLOAT_DIGITS = 309  # an integer literal this long may not fit a float64


def _finite_float(text: str) -> float:
    """Go decodes every JSON number into a float64 and refuses one that overflows it (1e400)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of float64 range")
    return value


def _float64_int(text: str) -> int:
    value = int(text)
    if len(text) >= _MAX_FLOAT_DIGITS:
        float(value)  # raises OverflowError past float64's range; _json_object refuses the token
    return value


_JSON_DECODER = json.JSONDecoder(parse_constant=gojson.refuse_constant, parse_float=_finite_float, parse_int=_float64_int)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # left only by a lone \u escape: pairs are joined when decoded
# Go's decoder takes 10,000 levels of nesting; Python's recursive one stops near 1,000, at a depth
# that depends on how deep the caller already is. A fixed, lower bound gives every caller (the
# server's threads, `check`) the same answer, and leaves room for walking what was decoded.
MAX_JSON_DEPTH = 512
# A string that never closes runs to the end of the text: the match then always succeeds where it
# starts, so nothing backtracks and the scan stays linear even on quote-and-backslash floods.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


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
    """Unpadded base64url, strictly: any other character, padding, or an impossible length is refused.

    Except CR and LF, which Go's decoder skips wherever they are (a token in a query parameter can
    carry them as %0D/%0A); the signed text keeps them, as golang-jwt's does.
    """
    try:
        data = segment.encode("ascii").translate(_TO_STANDARD_ALPHABET, b"\r\n")
        return binascii.a2b_base64(data + _PADDING[len(data) % 4], strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise InvalidToken("segment is not unpadded base64url") from None


class HeaderMemo(Generic[_Header]):
    """Decoded headers by their base64url text: one tenant's tokens share a handful of headers.

    Only headers that parsed (a JSON object naming a known alg) are kept; the checks that come
    later (crit, typ) still run on every token. Every caller shares them, so a header from the
    memo is read-only. Bounded and cleared when full: a stream of distinct
    headers costs what it would without the memo. Single dict operations are atomic under the GIL.
    """

    def __init__(self, size: int = HEADER_MEMO_SIZE, max_segment: int = HEADER_MEMO_MAX_SEGMENT) -> None:
        self.size = size
        self.max_segment = max_segment
        self._headers: dict[str, _Header] = {}

    def get(self, segment: str) -> _Header | None:
        return self._headers.get(segment)

    def put(self, segment: str, header: _Header) -> None:
        if len(segment) > self.max_segment:
            return
        if len(self._headers) >= self.size:
            self._headers = {}
        self._headers[segment] = header

    def __len__(self) -> int:
        return len(self._headers)


def parse(raw: str, memo: HeaderMemo[dict[str, Any]] | None = None) -> ParsedToken:
    """Split and decode a token; raises InvalidToken for anything the gateway would refuse to parse."""
    parts = raw.split(".")
    if len(parts) != 3:
        raise InvalidToken("token does not have three segments")
    header_b64, payload_b64, signature_b64 = parts
    header = memo.get(header_b64) if memo is not None else None
    if header is None:
        header = _json_object(decode_segment(header_b64), trailing_ok=False)
        claims = _json_object(decode_segment(payload_b64), trailing_ok=True)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in KNOWN_ALGORITHMS:
            raise InvalidToken("unknown or missing alg")
        if memo is not None:
            memo.put(header_b64, header)
    else:
        claims = _json_object(decode_segment(payload_b64), trailing_ok=True)
    return ParsedToken(
        header=header,
        claims=claims,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature_b64=signature_b64,
    )


def json_segment(segment: str) -> dict[str, Any]:
    """One base64url segment holding exactly a JSON object (nothing after it), read as a token's
    header is: for JWTs other than access tokens, such as DPoP proofs."""
    return _json_object(decode_segment(segment), trailing_ok=False)


def too_deep(text: str) -> bool:
    """JSON text nesting arrays and objects deeper than MAX_JSON_DEPTH (brackets in strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # every real token: two counts, no scan
    if not text.lstrip(" \t\r\n").startswith(("{", "[")):
        return False  # a first value that is not a container nests nothing; what trails it is not decoded
    depth = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            return True
        if depth == 0:
            return False  # the first value is complete: what trails it is not decoded (claims) or refused anyway
    return False


def _json_object(data: bytes, trailing_ok: bool) -> dict[str, Any]:
    text = gojson.text(data)
    if too_deep(text):
        raise InvalidToken("segment nests JSON too deep")
    try:
        if trailing_ok:
            value, _ = _JSON_DECODER.raw_decode(text.lstrip(" \t\r\n"))
        else:
            value = _JSON_DECODER.decode(text)
    except (ValueError, OverflowError, RecursionError):
        raise InvalidToken("segment is not JSON") from None
    if value is None and trailing_ok:
        value = {}  # the claims are decoded into a Go map, which JSON null leaves empty, not an error
    if not isinstance(value, dict):
        raise InvalidToken("segment is not a JSON object")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):  # only a \uD800-\uDFFF escape leaves one
        value = _replace_surrogates(value)
    return value


def _replace_surrogates(value: Any) -> Any:
    """Go's decoder turns a lone surrogate escape into U+FFFD; Python keeps it, and it cannot be encoded.

    Walks the freshly decoded value in place with a stack of its own, not by recursion, so nesting
    costs no Python frames.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    pending: list[Any] = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = _SURROGATE.sub("\ufffd", item)
                elif isinstance(item, (list, dict)):
                    pending.append(item)
        elif isinstance(node, dict):
            entries = list(node.items())
            node.clear()  # rebuilt in order: a key may change too (and two may become one, the later winning)
            for key, item in entries:
                if isinstance(item, str):
                    item = _SURROGATE.sub("\ufffd", item)
                elif isinstance(item, (list, dict)):
                    pending.append(item)
                node[_SURROGATE.sub("\ufffd", key)] = item
    return value
