"""Every way a request is refused, mapped to the exact status and text Tyk's native JWT middleware uses.

Handlers raise these; only the hook router turns them into a reply, so the
wording lives here and nowhere else. ``reason`` is a short fixed label for logs
and metrics (never data from the request).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


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

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers the refusal carries besides its status and text (native JWT's carry none)."""
        return _NO_HEADERS


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


class DPoPRefused(AuthError):
    """A DPoP check failed (RFC 9449), on an API that turns DPoP on: 401 with the check's own words,
    and a ``WWW-Authenticate: DPoP`` challenge naming the RFC's error code and the algorithms the
    API accepts for proofs, so a DPoP client library knows what went wrong."""

    status = 401
    reason = "dpop_proof"
    error_code: ClassVar[str] = "invalid_dpop_proof"
    text: ClassVar[str] = ""

    def __init__(self, algs: str = "") -> None:
        challenge = f'DPoP error="{self.error_code}"'
        if algs:
            challenge += f', algs="{algs}"'
        self._headers = MappingProxyType({"WWW-Authenticate": challenge})
        super().__init__(self.text)

    @property
    def message(self) -> str:
        return f"Key not authorized: {self.detail}"

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers


class DPoPProofMissing(DPoPRefused):
    text = "DPoP proof missing"


class DPoPProofMalformed(DPoPRefused):
    text = "DPoP proof is not a well-formed JWT"


class DPoPProofType(DPoPRefused):
    text = "DPoP proof typ is not dpop+jwt"


class DPoPProofAlgorithm(DPoPRefused):
    text = "DPoP proof algorithm is not allowed"


class DPoPProofKey(DPoPRefused):
    text = "DPoP proof jwk is not a usable public key for its alg"


class DPoPProofPrivateKey(DPoPRefused):
    text = "DPoP proof jwk holds a private key"


class DPoPProofSignature(DPoPRefused):
    text = "DPoP proof signature is invalid"


class DPoPProofClaims(DPoPRefused):
    text = "DPoP proof lacks one of the claims jti, htm, htu, iat, ath"


class DPoPProofMethod(DPoPRefused):
    text = "DPoP proof htm does not match the request method"


class DPoPProofUrl(DPoPRefused):
    text = "DPoP proof htu does not match the request URL"


class DPoPProofTime(DPoPRefused):
    text = "DPoP proof iat is outside the accepted window"


class DPoPProofTokenHash(DPoPRefused):
    text = "DPoP proof ath does not match the access token"


class DPoPProofReplayed(DPoPRefused):
    reason = "dpop_replay"
    text = "DPoP proof has already been used"


class DPoPKeyMismatch(DPoPRefused):
    """The proof holds up, but was signed by another key than the one the token is bound to."""

    reason = "dpop_binding"
    text = "DPoP proof key does not match the token's cnf.jkt"


class DPoPBoundAsBearer(DPoPRefused):
    """RFC 9449 7.2: a DPoP-bound token must not be accepted as a bearer token, or stealing it pays."""

    reason = "dpop_binding"
    error_code = "invalid_token"
    text = "DPoP-bound token must be sent with the DPoP scheme"


class DPoPTokenNotBound(DPoPRefused):
    reason = "dpop_binding"
    error_code = "invalid_token"
    text = "token sent with the DPoP scheme is not DPoP-bound"


class DPoPRequired(DPoPRefused):
    """``dpop: required``: the API takes DPoP-bound tokens only."""

    reason = "dpop_binding"
    error_code = "invalid_token"
    text = "DPoP-bound token required"


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
