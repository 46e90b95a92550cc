"""Reading claims the way the gateway does: a literal name first, then a dotted path.

Auth0 custom claims are URLs full of dots (``https://example.com/pol``), so the
literal lookup must come first; ``org.team.policy`` style paths still work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugin.errors import IdentityNotFound

_MISSING = object()


def lookup(claims: Mapping[str, Any], name: str) -> Any:
    """The claim's value, or None when neither the literal name nor the dotted path exists."""
    value = claims.get(name, _MISSING)
    if value is not _MISSING and value is not None:
        return value
    if "." in name:
        return nested(claims, name)
    return None if value is _MISSING else value


def nested(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``a.b`` is ``claims["a"]["b"]``), or None: the gateway's nestedMapLookup."""
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    """A non-empty string claim, as the gateway's getClaimValue finds it: the literal name when it
    holds a non-empty string, else the dotted path (whatever else the literal name holds)."""
    value = claims.get(name)
    if isinstance(value, str) and value:
        return value
    if "." in name:
        found = nested(claims, name)
        if isinstance(found, str) and found:
            return found
    return None


def identity(claims: Mapping[str, Any], base_field: str | tuple[str, ...]) -> str:
    """The session identity, with the gateway's exact refusals: one base field, else ``sub``
    (classic native JWT); or a list of fields, then ``sub`` unless listed (OAS ``subjectClaims``)."""
    if isinstance(base_field, tuple):
        return _identity_from_list(claims, base_field)
    if base_field:
        found = _named_identity(claims, base_field)
        if found is not None:
            return found
    sub = claims.get("sub")
    if isinstance(sub, str):
        if sub:
            return sub
        raise IdentityNotFound("found an empty user ID in sub claim")
    raise IdentityNotFound("no suitable claims for user ID were found")


def _identity_from_list(claims: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    """OAS native JWT: an empty listed claim refuses at once; an absent one passes to the next."""
    for name in fields if "sub" in fields else (*fields, "sub"):
        found = _named_identity(claims, name)
        if found is not None:
            return found
    raise IdentityNotFound("no suitable claims for user ID were found")


def _named_identity(claims: Mapping[str, Any], name: str) -> str | None:
    """A named claim's identity; None when it is absent or not a string; refused when empty."""
    found = string_claim(claims, name)
    if found is not None:
        return found
    if claims.get(name) == "" or ("." in name and nested(claims, name) == ""):
        raise IdentityNotFound(f"found an empty user ID in predefined base claim, claim: {name}")
    return None


def scopes(claims: Mapping[str, Any], name: str) -> list[str]:
    """Scopes from a space-separated string or an array of strings (nested arrays flattened)."""
    found: list[str] = []

    def collect(value: Any, nested: bool) -> None:
        if isinstance(value, str):
            found.extend([value] if nested else value.split(" "))
        elif isinstance(value, list):
            for item in value:
                collect(item, True)

    collect(lookup(claims, name), False)
    return found
