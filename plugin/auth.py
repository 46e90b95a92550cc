"""The auth check: token -> verified claims -> policies -> session, with a verified-token cache.

The cache holds only successes, keyed by (API configuration, org, BLAKE2b-256 of
the token) so the token itself is never stored; an entry lives until the token's
``exp`` (plus skew) and dies early if its signing key leaves the JWKS, is replaced
under its kid, or its key set goes past max-stale.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from plugin import claims as claimlib
from plugin import dpop as dpoplib
from plugin import policies as policylib
from plugin.config import ApiConfig, env_config_data, parse_config_data
from plugin.coprocess import Object, SessionState
from plugin.errors import ConfigurationError, MissingToken
from plugin.extract import DEFAULT_HEADER, DEFAULT_SOURCE
from plugin.keys import VerificationKey
from plugin.policy_index import PolicyIndex
from plugin.session import build_session, extractor_deadline, key_id, stamp
from plugin.tokens import strip_bearer
from plugin.verify import Verifier

log = logging.getLogger("plugin.auth")

NO_EXP_CACHE_SECONDS = 300.0
# id_extractor_deadline for a session the gateway must never serve from its cache: the gateway serves
# one only while the deadline is after its clock, and 1970 is before any clock, however skewed.
NEVER_REUSE = 0
STAMP_MEMO_SIZE = 4096


class _BadConfig(NamedTuple):
    """A config_data that failed to parse: kept as data and raised afresh per request, because one
    exception object raised again and again would chain every request's frames onto its traceback."""

    key: str
    problem: str
    retry_at: float  # monotonic; a file named by jwt_source_file may appear (a secret mounted late)


FILE_RETRY_SECONDS = 10.0


_Parsed = tuple[int, ApiConfig] | _BadConfig


class ConfigStore:
    """Parses each distinct config_data once; a bad one is logged once and fails only its API
    (one whose jwt_source_file cannot be used is tried again every FILE_RETRY_SECONDS).

    A plain dict, so the per-request lookup is one hash of a string the interpreter has
    already hashed or cheaply can; past ``size`` distinct configurations the oldest goes. The
    size is far beyond a gateway's APIs (about 1.4 KB each): calls in turn over more APIs than
    it holds would parse every configuration again on every call, and find no verified token.
    """

    def __init__(self, defaults: dict[str, Any] | None = None, size: int = 4096) -> None:
        self.defaults = env_config_data() if defaults is None else defaults
        self.size = size
        self._lock = threading.Lock()
        self._parsed: dict[str | None, _Parsed] = {}
        self._serial = 0
        self._epoch = 0  # clears so far

    def get(self, spec: Mapping[str, str]) -> tuple[int, ApiConfig]:
        """The parsed config of an API spec and a serial number that never names another config.

        The APIID is read only to log a bad config: every map read on the request path costs.
        """
        raw = spec.get("config_data")
        found = self._parsed.get(raw)
        if found is None:
            found = self._parse(raw, spec.get("APIID", ""))
        if isinstance(found, _BadConfig):
            if found.retry_at <= time.monotonic():
                return self._parse_again(raw, spec.get("APIID", ""))
            raise ConfigurationError(found.key, found.problem)
        return found

    def _parse_again(self, raw: str | None, api_id: str) -> tuple[int, ApiConfig]:
        found = self._parse(raw, api_id)
        if isinstance(found, _BadConfig):
            raise ConfigurationError(found.key, found.problem)
        return found

    def _parse(self, raw: str | None, api_id: str) -> _Parsed:
        epoch = self._epoch  # a reload during the parse (which may read a file) makes it stale
        try:
            config = parse_config_data(raw, self.defaults)
        except ConfigurationError as exc:
            log.error("bad plugin configuration api=%s key=%s problem=%s", api_id or "-", exc.key, exc.problem)
            retry_at = time.monotonic() + FILE_RETRY_SECONDS if exc.key == "jwt_source_file" else math.inf
            return self._remember(raw, _BadConfig(exc.key, exc.problem, retry_at), epoch)
        if not config.audiences:  # legal, as native JWT allows it, but rarely meant with Auth0
            log.warning("plugin configuration api=%s sets no audience: any token of the tenant passes, whatever API "
                        "it was issued for, and so do its ID tokens; set audience to the Auth0 API's identifier",
                        api_id or "-")
        with self._lock:
            self._serial += 1
            serial = self._serial
        return self._remember(raw, (serial, config), epoch)

    def _remember(self, raw: str | None, found: _Parsed, epoch: int) -> _Parsed:
        with self._lock:
            if epoch != self._epoch:
                return found  # parsed before the reload: this request uses it, the next parses afresh
            parsed = self._parsed
            parsed[raw] = found
            while len(parsed) > self.size:
                del parsed[next(iter(parsed))]
        return found

    def clear(self) -> None:
        with self._lock:
            self._parsed = {}
            self._epoch += 1


_CacheKey = tuple[int, str, bytes]  # (config serial, org id, BLAKE2b-256 of the token)


class CachedAuth(NamedTuple):
    """One verified token, as the cache holds it (a tuple: small, and cheap to build)."""

    reply: bytes  # the reply's part of an Object, serialized: the session and metadata["token"]
    policies: tuple[str, ...]
    base_policy: policylib.BasePolicy | None  # the one the gateway must have
    jwks_url: str | None
    kid: str | None
    key: VerificationKey | None  # the JWKS key that verified it (None: a static key)
    generation: int  # the JWKS cache's generation when it was verified
    exp: float | None
    expires_at: float  # wall-clock second after which the token no longer verifies
    jkt: str | None = None  # cnf.jkt: the key a DPoP-bound token is bound to (None: not bound)


class TokenCache:
    """Verified tokens by (config serial, org id, BLAKE2b-256 of the token); bounded, oldest out first.

    A plain ordered dict: a hit is one dict lookup and one comparison, with no lock (single
    dict operations are atomic under the GIL); only inserts and evictions take the lock.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[_CacheKey, CachedAuth] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _CacheKey, now: float) -> CachedAuth | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires_at > now:
            return entry
        with self._lock:
            self._entries.pop(key, None)
        return None

    def put(self, key: _CacheKey, entry: CachedAuth) -> None:
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def discard(self, key: _CacheKey) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[_CacheKey]:
        return list(self._entries)


class Authenticator:
    def __init__(self, verifier: Verifier, configs: ConfigStore, cache_size: int = 100_000,
                 clock: Callable[[], float] = time.time, policy_index: PolicyIndex | None = None) -> None:
        self.verifier = verifier
        self.configs = configs
        self.policy_index = policy_index
        self._clock = clock
        self._cache = TokenCache(cache_size) if cache_size > 0 else None
        self._jwks = verifier.jwks
        self._stamps: dict[int, bytes] = {}  # deadline -> the serialized deadline
        self.hits = 0
        self.misses = 0

    def authenticate(self, obj: Object) -> None:
        """Fill ``obj.session`` and ``obj.metadata["token"]``, or raise an AuthError."""
        spec = obj.spec
        serial, config = self.configs.get(spec)
        source = config.token_source
        request = obj.request
        header = request.headers.get(DEFAULT_HEADER, "") if source is DEFAULT_SOURCE else source.extract(request)
        if not header:
            raise MissingToken()
        dpop = config.dpop  # None unless the API turns DPoP on; this read is all DPoP costs the others
        if dpop is None:
            raw = strip_bearer(header)
            dpop_scheme = False
        else:
            raw, dpop_scheme = dpoplib.split_authorization(header)
        org_id = spec.get("OrgID", "")
        now = self._clock()
        cache = self._cache
        if cache is None:
            cached = self._verify(raw, config, org_id, now)
        else:
            # The org is part of the key: the cached reply carries the session key, which names the org,
            # and two APIs of different orgs may share one config_data (or none).
            # BLAKE2b (CPython's own code) rather than OpenSSL's sha256: slower in a tight loop (1.3 vs
            # 0.8 µs) but about 2 µs cheaper inside the server, where OpenSSL's set-up finds cold caches.
            cache_key = (serial, org_id,
                         hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=32).digest())
            found: CachedAuth | None = cache.get(cache_key, now)
            if found is not None and found.generation != self._jwks.generation:
                found = self._revalidate(cache_key, found)
            if found is not None:
                self.hits += 1
                if found.jwks_url is not None:
                    self._jwks.touch(found.jwks_url)  # a key set serving cached tokens is in use
                cached = found
            else:
                self.misses += 1
                cached = self._verify(raw, config, org_id, now)
                cache.put(cache_key, cached)
        seed = b""
        if self.policy_index is not None:
            refusal = self.policy_index.refusal(org_id, cached.base_policy, cached.policies)
            if refusal is not None:
                raise refusal
            seed = self.policy_index.seed(org_id, cached.base_policy)  # read per request: policies change
        # One merge of pre-serialized bytes fills the session and metadata["token"]: protobuf merges
        # a message field that appears twice and lets the later scalar win, so the base policy's
        # values and the per-request deadline appended after the cached session (which sets none
        # of their fields) override nothing but themselves.
        if dpop is not None:
            dpoplib.check_request(dpop, request, raw, dpop_scheme, cached.jkt, now)
        # A DPoP-bound token's session must never be served by the gateway's ID extractor, on any API:
        # it would answer the next request (keyed by the Authorization header) without seeing its new
        # proof, and it shares a session among the APIs of an org, so a bound token granted as Bearer
        # where DPoP is off would then be served on an API of that org that requires a proof.
        deadline = (extractor_deadline(int(now), cached.exp, config.id_extractor_ttl) if cached.jkt is None
                    else NEVER_REUSE)
        times = self._stamps.get(deadline)
        if times is None:
            times = self._stamp(deadline)
        obj.ClearField("session")  # replaces, never merges into, whatever the gateway sent
        obj.MergeFromString(cached.reply + seed + times)

    def _stamp(self, deadline: int) -> bytes:
        """The serialized per-request deadline; one per deadline, shared by every token."""
        session = SessionState()
        stamp(session, deadline)
        times = Object(session=session).SerializeToString()
        stamps = self._stamps
        if len(stamps) >= STAMP_MEMO_SIZE:
            stamps.clear()  # passing seconds make the old ones useless; clearing is cheaper than ordering
        stamps[deadline] = times
        return times

    def _revalidate(self, cache_key: _CacheKey, cached: CachedAuth) -> CachedAuth | None:
        """After the JWKS dropped or replaced a key: keep the entry only if its key is still published."""
        assert self._cache is not None
        generation = self._jwks.generation
        if cached.kid is not None and self._jwks.current_key(cached.jwks_url or "", cached.kid) != cached.key:
            self._cache.discard(cache_key)
            return None
        cached = cached._replace(generation=generation)
        self._cache.put(cache_key, cached)
        return cached

    def _verify(self, raw: str, config: ApiConfig, org_id: str, now: float) -> CachedAuth:
        generation = self._jwks.generation  # read first: a rotation during the verify invalidates it
        verified = self.verifier.verify(raw, config)
        identity = claimlib.identity(verified.claims, config.identity_field)
        base = policylib.base_policy(verified.claims, config)
        if self.policy_index is not None:  # native looks the base policy up before any scope mapping
            refused = self.policy_index.base_refusal(org_id, base)
            if refused is not None:
                raise refused
        policies = policylib.resolve(verified.claims, config)
        session_key = key_id(org_id, identity, config.hash_key_function)
        reply = Object()
        build_session(verified.claims, identity, policies, config, session_key, verified.exp, session=reply.session)
        reply.metadata["token"] = session_key
        # Whole seconds, as check_times judges exp: a fractional exp must not outlive its second here.
        expires_at = (math.floor(verified.exp) + config.exp_skew) if verified.exp is not None else now + NO_EXP_CACHE_SECONDS
        return CachedAuth(
            reply=reply.SerializeToString(),
            policies=policies,
            base_policy=base,
            jwks_url=verified.jwks_url,
            kid=verified.kid,
            key=verified.key,
            generation=generation,
            exp=verified.exp,
            expires_at=expires_at,
            jkt=dpoplib.confirmation(verified.claims),
        )
