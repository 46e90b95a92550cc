"""Which Tyk policies a verified token gets: its policy claim, else scope mapping, else the defaults.

The precedence and refusals follow the native JWT middleware for a new session.
One deliberate extension: the policy claim may be a list of policy ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from plugin import claims as claimlib
from plugin.config import ApiConfig
from plugin.errors import NoMatchingPolicy


def policy_claim(claims: Mapping[str, Any], field: str | tuple[str, ...]) -> tuple[str, ...]:
    """The policy ids a token names: in one claim, or in the first of a list of claims that
    names any (OAS ``basePolicyClaims``)."""
    if isinstance(field, tuple):
        for name in field:
            found = _named_policies(claims, name)
            if found:
                return found
        return ()
    return _named_policies(claims, field) if field else ()


def _named_policies(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    single = claimlib.string_claim(claims, name)
    if single is not None:
        return (single,)
    value = claimlib.lookup(claims, name)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(dict.fromkeys(value))
    return ()


class BasePolicy(NamedTuple):
    """The policy native JWT builds a new session from; the only one whose absence refuses outright."""

    id: str
    lone_default: bool  # the API's one default policy, taken for want of a policy claim
    # What the new session holds when native first applies policies: the claim's policy (here
    # every listed one), or every default policy.
    applied: tuple[str, ...] = ()
    from_defaults: bool = False


def base_policy(claims: Mapping[str, Any], config: ApiConfig) -> BasePolicy | None:
    """The policy claim's (the first of a list), else the first default."""
    claimed = policy_claim(claims, config.policy_field)
    if claimed:
        return BasePolicy(claimed[0], lone_default=False, applied=tuple(claimed))
    defaults = tuple(dict.fromkeys(config.default_policies))  # native adds each default once
    if not defaults:
        return None
    return BasePolicy(defaults[0], lone_default=len(defaults) == 1, applied=defaults, from_defaults=True)


def token_scopes(claims: Mapping[str, Any], config: ApiConfig) -> list[str]:
    """The scopes of ``jwt_scope_claim_name`` only (Auth0's RBAC ``permissions`` count when that
    setting names them). A list of names picks the first that is a claim of the token, else
    ``scope``, as OAS ``scopes.claims`` does. Unlike native JWT, a literal claim name is tried
    before the dotted path, so a namespaced Auth0 claim such as ``https://example.com/roles``
    can hold the scopes."""
    name = config.scope_claim
    if isinstance(name, tuple):
        name = next((n for n in name if n in claims), "scope")
    return claimlib.scopes(claims, name)


def resolve(claims: Mapping[str, Any], config: ApiConfig) -> tuple[str, ...]:
    """The policy ids to apply, in order; raises NoMatchingPolicy with the gateway's words."""
    base = policy_claim(claims, config.policy_field)
    from_defaults = not base and bool(config.default_policies)
    policies = base or tuple(dict.fromkeys(config.default_policies))  # native adds each default once

    if config.scope_to_policy:
        found = token_scopes(claims, config)
        if found:
            mapped = [config.scope_to_policy[s] for s in found if s in config.scope_to_policy]
            chosen = ([] if from_defaults else list(base)) + mapped
            if not chosen:
                raise NoMatchingPolicy("key not authorized: no matching policy found in scope claim")
            policies = tuple(dict.fromkeys(chosen))

    if not policies:
        raise NoMatchingPolicy("key not authorized: no matching policy found")
    return policies
