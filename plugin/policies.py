"""Which Tyk policies a verified token gets: its policy claim, else scope mapping, else the defaults.

The precedence and refusals follow the native JWT middleware for a new session.
One deliberate extension: the policy claim may be a list of policy ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugin import claims as claimlib
from plugin.config import ApiConfig
from plugin.errors import NoMatchingPolicy


def policy_claim(claims: Mapping[str, Any], field: str) -> tuple[str, ...]:
    if not field:
        return ()
    single = claimlib.string_claim(claims, field)
    if single is not None:
        return (single,)
    value = claimlib.lookup(claims, field)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(dict.fromkeys(value))
    return ()


def base_policy(claims: Mapping[str, Any], config: ApiConfig) -> str | None:
    """The policy native JWT builds a new session from: the claim's (the first of a list), else the
    first default; the only one whose absence from the gateway refuses the token outright."""
    claimed = policy_claim(claims, config.policy_field)
    if claimed:
        return claimed[0]
    return config.default_policies[0] if config.default_policies else None


def token_scopes(claims: Mapping[str, Any], config: ApiConfig) -> list[str]:
    """The scopes of ``jwt_scope_claim_name`` only, as native JWT reads them: Auth0's RBAC
    ``permissions`` count when that setting names them."""
    return claimlib.scopes(claims, config.scope_claim)


def resolve(claims: Mapping[str, Any], config: ApiConfig) -> tuple[str, ...]:
    """The policy ids to apply, in order; raises NoMatchingPolicy with the gateway's words."""
    base = policy_claim(claims, config.policy_field)
    from_defaults = not base and bool(config.default_policies)
    policies = base or config.default_policies

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
