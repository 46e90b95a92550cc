"""Tyk OAS native JWT's ``customClaimValidation``: per-claim rules, with the gateway's semantics and texts.

The gateway finds a claim with a gjson path over the claims and compares values as Go's
``cmp.Equal`` does on decoded JSON (every number a float64). Its quirks are kept, since a client
must get the same answer either way: ``contains`` on a string claim is a substring test, and on a
claim that is neither a string nor a list only the last allowed value counts. A ``nonBlocking``
rule never refuses. Where several rules fail, the gateway reports one of them at random (it walks
a Go map); here the first by path.

Paths are the plain part of gjson's syntax: names separated by dots, a number indexing a list.
Other gjson syntax (wildcards, ``#``, pipes, brackets, ...) is refused as a configuration error,
and so is a path the gateway's own check cannot parse (it would refuse every token with
``invalid claim path``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin import gojson
from plugin.errors import ConfigurationError, CustomClaimInvalid

KEY = "custom_claim_validation"
TYPES = ("required", "exact_match", "contains")
_RULE_FIELDS = frozenset({"type", "allowedValues", "nonBlocking"})
# One path segment: characters the gateway's JSONPath check takes in a name and gjson reads literally.
_SEGMENT = re.compile(r"[A-Za-z0-9_:;~\u0080-\U0010ffff]+")
_ASCII_DIGITS = re.compile(r"[0-9]+")
MISSING = object()


Segment = tuple[str, int]  # a member name, and the list index it selects (-1: none)


def segments_of(path: str) -> tuple[Segment, ...]:
    """A path's names, each with the list index gjson reads from it: decimal digits taken modulo
    2**64 (it does not check for overflow), and as a signed int, so 2**63 and up select nothing."""
    segments = []
    for name in path.split("."):
        index = -1
        if _ASCII_DIGITS.fullmatch(name):
            number = 0
            for digit in name:
                number = (number * 10 + ord(digit) - 48) % 2**64
            index = number if number < 2**63 else -1
        segments.append((name, index))
    return tuple(segments)


@dataclass(frozen=True)
class ClaimRule:
    """One rule, checked in order of path (the gateway's order is random, which only shows when two fail)."""

    path: str
    segments: tuple[Segment, ...]
    type: str
    allowed: tuple[Any, ...] = ()
    non_blocking: bool = False


def parse_rules(value: Any) -> tuple[ClaimRule, ...]:
    """config_data's ``custom_claim_validation``: ``{path: {type, allowedValues, nonBlocking}}``, as in Tyk OAS."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ConfigurationError(KEY, "must be an object of claim path -> {type, allowedValues, nonBlocking}")
    rules = []
    for path, rule in sorted(value.items()):
        if not all(_SEGMENT.fullmatch(name) for name in path.split(".")):
            raise ConfigurationError(KEY, f"path {path!r}: use claim names of letters, digits and _:;~ joined "
                                          "by dots (the gateway's path check refuses characters such as - / and "
                                          "spaces; gjson syntax such as wildcards, #, | and brackets is not "
                                          "supported)")
        if not isinstance(rule, dict):
            raise ConfigurationError(KEY, f"path {path!r}: the rule must be an object")
        fields = _fields(rule, path)
        kind = fields.get("type")
        if kind not in TYPES:
            raise ConfigurationError(KEY, f"path {path!r}: type must be one of {', '.join(TYPES)}")
        allowed = fields.get("allowedValues")
        if allowed is None:
            allowed = []
        if not isinstance(allowed, list):
            raise ConfigurationError(KEY, f"path {path!r}: allowedValues must be a list")
        non_blocking = fields.get("nonBlocking")
        if non_blocking is None:
            non_blocking = False
        if not isinstance(non_blocking, bool):
            raise ConfigurationError(KEY, f"path {path!r}: nonBlocking must be true or false")
        rules.append(ClaimRule(path, segments_of(path), kind, tuple(_as_go_json(v, path) for v in allowed),
                               non_blocking))
    return tuple(rules)


def _fields(rule: dict[str, Any], path: str) -> dict[str, Any]:
    """A rule's fields as Go decodes them: names match case-insensitively, a later key wins.
    An unknown field, which Go would skip, is refused: it is most likely a misspelt one."""
    found: dict[str, Any] = {}
    for key, value in rule.items():
        field = next((name for name in _RULE_FIELDS if gojson.equal_fold(name, key)), None)
        if field is None:
            raise ConfigurationError(KEY, f"path {path!r}: unknown field {key!r} (type, allowedValues, nonBlocking)")
        found[field] = value
    return found


def check_custom_claims(claims: Mapping[str, Any], rules: tuple[ClaimRule, ...]) -> None:
    """Raise the gateway's refusal for the first failing blocking rule."""
    for rule in rules:
        found = lookup(claims, rule.segments)
        if found is MISSING:
            if rule.non_blocking:
                continue  # the gateway's later checks on a missing claim never refuse a non-blocking rule
            raise CustomClaimInvalid(f"custom claim {rule.path} is required but not present in token")
        if rule.type == "required":
            ok = found is not None
            problem = f"custom claim {rule.path} expects a non nil value"
        elif rule.type == "contains":
            ok = contains_match(rule.allowed, found)
            problem = f"claim {rule.path} value does not contain any expected values"
        else:
            ok = any(go_equal(found, allowed) for allowed in rule.allowed)
            problem = f"claim {rule.path} value does not match any expected values"
        if not ok and not rule.non_blocking:
            raise CustomClaimInvalid(problem)


def lookup(claims: Mapping[str, Any], segments: tuple[Segment, ...]) -> Any:
    """The value at a plain gjson path, or MISSING: names select object members, digits index lists."""
    value: Any = claims
    for name, index in segments:
        if isinstance(value, dict):
            if name not in value:
                return MISSING
            value = value[name]
        elif isinstance(value, list) and 0 <= index < len(value):
            value = value[index]
        else:
            return MISSING
    return value


def contains_match(allowed: tuple[Any, ...], claim: Any) -> bool:
    """The gateway's ``contains``, quirks included: a substring test on strings, membership in lists,
    and for any other claim the comparison with the last allowed value (each one overwrites the last)."""
    matched = False
    for expected in allowed:
        if isinstance(claim, str):
            if isinstance(expected, str) and expected in claim:
                matched = True
        elif isinstance(claim, list):
            if any(go_equal(expected, item) for item in claim):
                matched = True
        else:
            matched = go_equal(expected, claim)
    return matched


def go_equal(a: Any, b: Any) -> bool:
    """``cmp.Equal`` on two decoded JSON values: numbers compare as float64, types never mix.
    Iterative: claims may nest 512 levels, and allowed values deeper."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if isinstance(x, bool) or isinstance(y, bool):
            same = isinstance(x, bool) and isinstance(y, bool) and x == y
        elif x is None or y is None:
            same = x is None and y is None
        elif isinstance(x, (int, float)):
            same = isinstance(y, (int, float)) and float(x) == float(y)
        elif isinstance(x, str):
            same = isinstance(y, str) and x == y
        elif isinstance(x, list):
            same = isinstance(y, list) and len(x) == len(y)
            if same:
                pending.extend(zip(x, y, strict=True))
        elif isinstance(x, dict):
            same = isinstance(y, dict) and x.keys() == y.keys()
            if same:
                pending.extend((x[k], y[k]) for k in x)
        else:
            same = False
        if not same:
            return False
    return True


def _as_go_json(value: Any, path: str) -> Any:
    """An allowed value as the gateway decodes it: a number must fit a float64, and NaN is not JSON."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, (int, float)):
            try:
                if math.isfinite(float(item)):
                    continue
            except OverflowError:
                pass
            raise ConfigurationError(KEY, f"path {path!r}: an allowed value is a number beyond float64 (or NaN)")
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return value
