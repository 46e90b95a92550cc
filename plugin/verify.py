"""Signature and claim checks, in the gateway's order and with its refusals.

Order (golang-jwt v4 as driven by Tyk's JWT middleware): parse -> alg admitted ->
key found -> signature -> exp/iat/nbf (the last failure's text wins) -> iss ->
aud. Each step raises the typed error the gateway's answer corresponds to.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from cachetools import LRUCache

from plugin import tokens as tokenlib
from plugin.config import ApiConfig
from plugin.custom_claims import check_custom_claims
from plugin.errors import (
    AudienceInvalid,
    BadSignature,
    ClaimsInvalid,
    InvalidToken,
    IssuerInvalid,
    JtiMissing,
    KeysUnavailable,
    LifetimeTooLong,
    TokenExpired,
    TokenNotValidYet,
    TokenUsedBeforeIssued,
    UnexpectedSigningMethod,
    UnknownKey,
)
from plugin.jwks import JwksCache
from plugin.keys import KeyTypeMismatch, VerificationKey, load_static_public_key, verify_signature

ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
DEFAULT_MAX_TOKEN_BYTES = 64 * 1024


class VerifiedToken(NamedTuple):
    claims: dict[str, Any]
    kid: str | None
    key: VerificationKey | None  # the JWKS key that verified it; None for a static key
    exp: float | None
    jwks_url: str | None = None  # the key set that published ``key``


class Verifier:
    """Verifies tokens for any API configuration; owns the parsed static keys."""

    def __init__(self, jwks: JwksCache, clock: Callable[[], float] = time.time,
                 max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES) -> None:
        self.jwks = jwks
        self._clock = clock
        self.max_token_bytes = max_token_bytes
        self._static_keys: LRUCache[bytes, VerificationKey] = LRUCache(maxsize=64)
        self._static_lock = threading.Lock()
        self._headers: tokenlib.HeaderMemo[dict[str, Any]] = tokenlib.HeaderMemo()

    def verify(self, raw: str, config: ApiConfig) -> VerifiedToken:
        if len(raw) > self.max_token_bytes:
            raise InvalidToken("token larger than the limit")
        parsed = tokenlib.parse(raw, self._headers)
        alg = parsed.alg
        if alg not in config.allowed_algorithms:
            raise UnexpectedSigningMethod(alg)
        kid, key, jwks_url = self._key(parsed.header, config)
        signature = tokenlib.decode_segment(parsed.signature_b64)
        try:
            valid = verify_signature(alg, key, parsed.signing_input, signature)
        except KeyTypeMismatch:
            raise InvalidToken("key cannot verify this algorithm") from None
        if not valid:
            raise BadSignature("signature does not verify")
        check_header(parsed.header)
        claims = parsed.claims
        now = self._clock()
        check_times(claims, now, config)
        if config.max_token_lifetime:
            check_lifetime(claims, now, config.max_token_lifetime)
        check_issuer_and_audience(claims, config)
        if config.require_jti and "jti" not in claims:
            raise JtiMissing()
        if config.claim_rules:
            check_custom_claims(claims, config.claim_rules)
        exp = claims.get("exp")
        return VerifiedToken(claims=claims, kid=kid, key=key if kid is not None else None,
                             exp=float(exp) if _is_number(exp) and exp else None, jwks_url=jwks_url)

    def _key(self, header: Mapping[str, Any], config: ApiConfig) -> tuple[str | None, VerificationKey, str | None]:
        source = config.key_source
        if source.jwks_urls:
            kid = header.get("kid")
            if not isinstance(kid, str):
                raise InvalidToken("kid is not a string")
            url, published = self._published(source.jwks_urls, kid, config.jwks_cache_ttl)
            return kid, published, url
        assert source.static_key is not None
        if config.signing_method == "hmac":
            return None, source.static_key, None
        with self._static_lock:  # an LRU reorders itself on every read
            key = self._static_keys.get(source.static_key)
        if key is None:
            key = load_static_public_key(source.static_key)
            with self._static_lock:
                self._static_keys[source.static_key] = key
        return None, key, None

    def _published(self, urls: tuple[str, ...], kid: str, ttl: float) -> tuple[str, VerificationKey]:
        """The first key set, in the API's order, that publishes ``kid`` (as native JWT's jwksURIs)."""
        if len(urls) == 1:
            return urls[0], self.jwks.get_key(urls[0], kid, ttl)
        # Sets already loaded answer first, so a kid of a later set never refetches an earlier one;
        # a set not loaded yet may publish it too, so from there on each is asked in order. A set
        # whose fetch failed goes behind the loaded ones, as in native JWT: its retries (which may
        # hang) hold up only the tokens no loaded set publishes.
        for url in urls:
            loaded = self.jwks.current_keys(url)
            if loaded is None:
                if self.jwks.failing(url):
                    continue
                break
            if kid in loaded:
                return url, loaded[kid]
        unavailable: KeysUnavailable | None = None
        for url in urls:
            try:
                return url, self.jwks.get_key(url, kid, ttl)
            except UnknownKey:
                continue
            except KeysUnavailable as exc:  # the kid may be in this one: say so if no other has it
                unavailable = unavailable or exc
        raise unavailable or UnknownKey("kid not in any of the JWKS")


def check_header(header: Mapping[str, Any]) -> None:
    """Refuse what a resource server must not accept silently (RFC 7515 crit; non-access-token typ)."""
    if "crit" in header:
        raise InvalidToken("crit header is not supported")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise InvalidToken("typ is not JWT or at+jwt")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_INT64_MIN = -(2**63)
# time.Unix stores seconds since year 1 in an int64: Unix seconds above this wrap to the far past.
_UNIX_TO_INTERNAL = 62_135_596_800
_LAST_UNWRAPPED = 2**63 - 1 - _UNIX_TO_INTERNAL


def _seconds(value: Any) -> int | None:
    """A NumericDate as golang-jwt v4 reads it, or None if not a number.

    Rounded down to whole seconds (so 0.5 is 0, long expired: only an exact 0 means "not set",
    which the caller tests on the raw value); a value outside int64 becomes Go's out-of-range
    conversion result, MinInt64; and one within the last ~62 billion seconds of int64 wraps, as
    time.Unix's int64 does, to a date before any other (an expired exp, a passing iat or nbf).
    """
    if not _is_number(value):
        return None
    seconds = float(value)  # Go holds every JSON number as a float64: 2**63 - 1 is 2**63 there
    if not _INT64_MIN <= seconds < 2**63:
        return _INT64_MIN
    whole = math.floor(seconds)
    return whole - 2**64 if whole > _LAST_UNWRAPPED else whole


def check_times(claims: Mapping[str, Any], now: float, config: ApiConfig) -> None:
    """exp, then iat, then nbf; like the gateway, the last failing check gives the message."""
    current = int(now)
    failure: ClaimsInvalid | None = None
    if "exp" in claims:
        raw = claims["exp"]
        exp = _seconds(raw)
        if exp is None or (raw != 0 and not current - config.exp_skew < exp):
            failure = TokenExpired()
    if "iat" in claims:
        raw = claims["iat"]
        iat = _seconds(raw)
        if iat is None or (raw != 0 and not current + config.iat_skew >= iat):
            failure = TokenUsedBeforeIssued()
    if "nbf" in claims:
        raw = claims["nbf"]
        nbf = _seconds(raw)
        if nbf is None or (raw != 0 and not current + config.nbf_skew >= nbf):
            failure = TokenNotValidYet()
    if failure is not None:
        raise failure


def check_lifetime(claims: Mapping[str, Any], now: float, limit: int) -> None:
    """The API's ``max_token_lifetime``: a token minted to live longer is refused however fresh,
    so a stolen one is bounded too; without ``iat`` its remaining time counts. A token with no
    ``exp`` (or ``exp`` 0, which the gateway reads as none) would live forever."""
    exp = _seconds(claims.get("exp"))
    if not exp:
        raise LifetimeTooLong("expiration time (exp) claim is required but not present in token")
    iat = _seconds(claims.get("iat"))
    start = iat if iat else int(now)
    if exp - start > limit:
        raise LifetimeTooLong(f"token lifetime exceeds the maximum of {limit} seconds")


def check_issuer_and_audience(claims: Mapping[str, Any], config: ApiConfig) -> None:
    """The checks of the gateway's OAS allowedIssuers/allowedAudiences, with their texts."""
    if config.issuers:
        if "iss" not in claims:
            raise IssuerInvalid("issuer claim is required but not present in token")
        iss = claims["iss"]
        if not isinstance(iss, str):
            raise IssuerInvalid("issuer claim must be a string")
        if iss not in config.issuers:
            raise IssuerInvalid(f"invalid issuer claim: {iss}")
    if config.audiences:
        if "aud" not in claims:
            raise AudienceInvalid("audience claim is required but not present in token")
        aud = claims["aud"]
        if isinstance(aud, str):
            audiences = [aud]
        elif isinstance(aud, list):
            audiences = [a for a in aud if isinstance(a, str)]
        else:
            raise AudienceInvalid("invalid audience claim format")
        if not any(a in config.audiences for a in audiences):
            raise AudienceInvalid(f"no matching audience found in token: [{' '.join(audiences)}]")
