"""Behaviours of Go's encoding/json that answers depend on, for the gateway's JSON read here."""

from __future__ import annotations

import codecs
from typing import Any

_PER_BYTE = "tyk-auth0-plugin-go-replace"


def _replace_each_byte(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    return "\ufffd", error.start + 1


codecs.register_error(_PER_BYTE, _replace_each_byte)


def text(data: bytes) -> str:
    """UTF-8 as Go's decoder reads it: one U+FFFD per invalid byte, where Python's "replace" puts
    one per invalid sequence (b"a\\xe2\\x82b" is a, two U+FFFD, b), so strings compare as Go's do."""
    try:
        return data.decode("utf-8")  # the common case, on CPython's fastest path
    except UnicodeDecodeError:
        return data.decode("utf-8", _PER_BYTE)


def equal_fold(a: str, b: str) -> bool:
    """strings.EqualFold, with which Go matches a JSON key to a struct field: rune by rune simple
    case folding (not Python's casefold, which maps a ligature such as 'ﬆ' to two letters)."""
    return len(a) == len(b) and all(x == y or x.lower() == y.lower() or x.upper() == y.upper()
                                    for x, y in zip(a, b, strict=True))


def refuse_constant(name: str) -> Any:
    """For json's ``parse_constant``: NaN, Infinity and -Infinity, which Python reads, are no JSON
    to Go's decoder, wherever they stand."""
    raise ValueError(f"{name} is not JSON")
