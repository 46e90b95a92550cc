"""Every way a request is refused, mapped to the exact status and text Tyk's native JWT middleware uses.

Handlers raise these; only the hook router turns them into a reply, so the
wording lives here and nowhere else. ``reason`` is a short fixed label for logs
and metrics (never data from the request).
"""

from __future__ import annotations

from typing import ClassVar


class AuthError(Exception):
    """A refusal the client sees as ``{"error": message}`` with ``status``."""

    status: ClassVar[int] = 403
    reason: ClassVar[str] = "invalid"
    base_message: ClassVar[str] = "Key not authorized"

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.base_message


class MissingToken(AuthError):
    status = 400
    reason = "missing"
    base_message = "Authorization field missing"


class UnexpectedSigningMethod(AuthError):
    """The token's alg is not admitted by the API (family or allow-list)."""

    reason = "signing_method"
    base_message = "Key not authorized: Unexpected signing method"


class InvalidToken(AuthError):
    """Malformed token, bad signature, unknown kid, unusable key: the gateway says only this."""

    reason = "invalid"


class UnknownKey(InvalidToken):
    reason = "unknown_kid"


class BadSignature(InvalidToken):
    reason = "signature"


class KeysUnavailable(InvalidToken):
    """No key set could be had for the API (JWKS down and nothing cached)."""

    reason = "jwks_unavailable"


class ClaimsInvalid(AuthError):
    """Time or claim checks failed after a good signature: 401 with the check's own words."""

    status = 401
    reason = "claims"

    @property
    def message(self) -> str:
        return f"Key not authorized: {self.detail}"


class TokenExpired(ClaimsInvalid):
    reason = "expired"

    def __init__(self) -> None:
        super().__init__("token has expired")


class TokenUsedBeforeIssued(ClaimsInvalid):
    reason = "issued_in_future"

    def __init__(self) -> None:
        super().__init__("token used before issued")


class TokenNotValidYet(ClaimsInvalid):
    reason = "not_valid_yet"

    def __init__(self) -> None:
        super().__init__("token is not valid yet")


class LifetimeTooLong(ClaimsInvalid):
    """The API's max_token_lifetime (no native twin): a token may not live longer, nor without an exp."""

    reason = "lifetime"


class IssuerInvalid(ClaimsInvalid):
    reason = "issuer"


class AudienceInvalid(ClaimsInvalid):
    reason = "audience"


class CustomClaimInvalid(ClaimsInvalid):
    """A blocking rule of custom_claim_validation (OAS customClaimValidation) failed."""

    reason = "custom_claim"


class JtiMissing(ClaimsInvalid):
    """OAS native JWT's jtiValidation: only the claim's presence is checked."""

    reason = "jti"

    def __init__(self) -> None:
        super().__init__("JWT ID (jti) claim is required but not present in token")


class IdentityNotFound(AuthError):
    """The identity claim is missing or empty; the gateway returns the bare error text."""

    reason = "identity"

    @property
    def message(self) -> str:
        return self.detail


class NoMatchingPolicy(AuthError):
    reason = "no_policy"

    def __init__(self, detail: str = "key not authorized: no matching policy found") -> None:
        super().__init__(detail)

    @property
    def message(self) -> str:
        return self.detail


class PolicyNotFound(AuthError):
    """A token with no policy claim on an API whose one default policy the gateway lacks: native JWT
    fails to create the key and answers 500 with its words."""

    status = 500
    reason = "no_policy"

    def __init__(self, policy_id: str) -> None:
        quoted = '"' + policy_id.replace("\\", "\\\\").replace('"', '\\"') + '"'  # Go's %q, for plain ids
        super().__init__(f"failed to create key: policy not found: {quoted}")

    @property
    def message(self) -> str:
        return self.detail


class NoValidPolicies(AuthError):
    """The policies native JWT builds a new session from grant no API at all: creating the key
    fails in the gateway's policy service, and native answers 500 with its words."""

    status = 500
    reason = "no_policy"

    def __init__(self) -> None:
        super().__init__("failed to create key: key has no valid policies to be applied")

    @property
    def message(self) -> str:
        return self.detail


class UnknownHook(AuthError):
    """An auth call for a hook this server does not serve: fail closed with the coprocess wording."""

    reason = "unknown_hook"
    base_message = "Key not authorised"


class ConfigurationError(AuthError):
    """The API's own plugin settings are wrong: the operator's fault, so a 500 naming the key.

    The client sees only the key; the problem (which may name files or environment variables of
    the plugin host) goes to the plugin's log and to ``check``.
    """

    status = 500
    reason = "config"

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")

    @property
    def message(self) -> str:
        return f"Auth plugin misconfigured: {self.key}"
