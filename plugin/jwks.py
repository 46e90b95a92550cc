"""The JWKS cache: keys by URL and kid, refreshed off the request path, tolerant of IdP outages.

Behaviour an operator can rely on:
- a cold URL is fetched once, shared by every request waiting for it (single flight);
- at most ``waiters`` requests wait on fetches at once; others wait only while the fetch is younger
  than ``overflow_wait`` (a healthy IdP has answered by then), and not at all on the retry of a URL
  whose last fetch failed, so however slow the IdP, it holds every call thread for at most that
  once;
- a fresh set is refreshed in the background before it goes stale (no request waits);
- a ``kid`` the set lacks triggers at most one refetch per ``min_refetch_interval`` (none before an
  endpoint's ``Retry-After``, or on a 429 its ``X-RateLimit-Reset``, ends), and requests wait for it
  (a key rotated in is found at once);
  between refetches such a kid is refused at once, so a flood of random kids costs the IdP one
  fetch per interval;
- when a fetch fails, the last good set keeps serving for up to ``max_stale`` seconds; with no
  set to serve, requests are refused at once until the retry backoff (or a longer
  ``Retry-After``) ends, and the IdP sees one fetch per backoff step, never one per request;
- each fetch runs on a thread of its own and is cut at ``fetch_deadline`` (its name lookup
  aside); no request waits on it longer, and until it ends no other fetch of that URL starts;
- a URL no API has asked for in ``idle_after`` seconds is dropped: no longer refreshed or counted
  for readiness, and verifications made with its keys are checked again;
- a JWKS response is bounded in size and key count; only RSA/EC signing keys are kept.
"""

from __future__ import annotations

import email.message
import email.utils
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Any

from plugin import gojson, httpget
from plugin.config import jwks_url_problem
from plugin.errors import KeysUnavailable, UnknownKey
from plugin.keys import VerificationKey, key_from_jwk
from plugin.logs import shown_url

log = logging.getLogger("plugin.jwks")

Fetcher = Callable[[str, float, int], bytes]


class FetchError(Exception):
    """A JWKS could not be had; the message is safe to log (no key material)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After, X-RateLimit-Reset)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL a JWKS could be configured with (https, or http on
    loopback; no credentials), and only a few times."""

    max_redirections = 3

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        problem = jwks_url_problem(newurl)
        if problem is not None:
            raise FetchError(f"HTTP {code} redirect refused: {problem.removeprefix('the JWKS URL ')}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# Whole-fetch bound; the name is kept where the cache and the settings speak of it.
fetch_deadline = httpget.deadline

# Proxy settings come from the environment (HTTPS_PROXY, NO_PROXY), as with urllib's own opener.
_OPENER = httpget.build_opener(_CheckedRedirects)


def http_fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    """GET the JWKS. ``timeout`` bounds each socket wait; once the headers are in, the body must
    arrive within ``timeout`` too; and the whole fetch, redirects included, is cut at
    ``fetch_deadline(timeout)`` (the name lookup aside), so a dripping endpoint is dropped."""
    # Always http(s): config.py takes only those as JWKS URLs.
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "tyk-auth0-plugin"})
    try:
        return httpget.get(_OPENER, request, timeout, max_bytes)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code}", retry_after=server_wait(exc.code, exc.headers)) from None
    except httpget.Incomplete as exc:
        raise FetchError(str(exc)) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise FetchError(failure_text(exc)) from None


def server_wait(status: int, headers: Mapping[str, str] | email.message.Message | None,
                now: Callable[[], float] = time.time) -> float | None:
    """Seconds a refusal asks us to wait, or None: its ``Retry-After``, else on a 429 the
    ``X-RateLimit-Reset`` Auth0 sends (a UNIX time), so a rate-limited tenant is not asked again
    before its bucket refills."""
    if headers is None:
        return None
    asked = retry_after(headers.get("Retry-After"), now)
    if asked is None and status == 429:
        asked = rate_limit_reset(headers.get("X-RateLimit-Reset"), now)
    return asked


# Below this an X-RateLimit-Reset is no UNIX time (2001-09-09): a count of seconds, which Auth0 never sends.
_EARLIEST_RESET = 1_000_000_000


def rate_limit_reset(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds until the UNIX time an ``X-RateLimit-Reset`` header names, or None."""
    if not value:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or int(value) < _EARLIEST_RESET:
        return None
    return max(int(value) - now(), 0.0)


def failure_text(exc: BaseException) -> str:
    """A failed fetch for the log: its kind and the local library's words, never text the endpoint sent
    (http.client quotes a malformed status line whole: up to 64 KiB, control characters and all)."""
    kind = type(exc).__name__
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, http.client.HTTPException):
        return kind if reason is exc else f"{kind}: {type(reason).__name__}"
    if isinstance(reason, OSError):
        return f"{kind}: {reason.strerror or reason}"
    if isinstance(reason, str):  # urllib's own words ("no host given")
        return f"{kind}: {reason}"
    return kind


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now(), 0.0)


@dataclass(frozen=True)
class JwksSettings:
    fetch_timeout: float = 3.0
    max_bytes: int = 256 * 1024
    max_keys: int = 50
    min_refetch_interval: float = 10.0
    max_stale: float = 6 * 3600.0
    refresh_ahead: float = 0.2  # refresh when this fraction of the TTL is left
    retry_backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    max_retry_after: float = 600.0  # the longest server-asked Retry-After honoured
    idle_after: float = 6 * 3600.0
    # Requests that may wait on fetches at once, all URLs together (None: no limit). The server keeps
    # one call thread beyond it; a request beyond it waits only while the fetch is younger than
    # overflow_wait, so a slow IdP cannot hold every thread, and a healthy one refuses nobody.
    waiters: int | None = None
    overflow_wait: float = 1.0

    @property
    def fetch_deadline(self) -> float:
        """How long requests wait on one fetch, and how long http_fetch lets it run."""
        return fetch_deadline(self.fetch_timeout)


@dataclass
class KeySet:
    keys: Mapping[str, VerificationKey]
    fetched_at: float
    ttl: float


@dataclass(frozen=True)
class _Fetch:
    future: Future[KeySet]
    started: float  # the clock's time; requests stop waiting on it fetch_deadline later


@dataclass
class _Entry:
    url: str
    ttl: float
    last_used: float
    keyset: KeySet | None = None
    last_attempt: float = float("-inf")
    failures: int = 0
    next_retry: float = 0.0  # the refresher's back-off after failures
    asked_to_wait_until: float = 0.0  # the endpoint's own Retry-After, which binds every fetch
    inflight: _Fetch | None = None  # set from the fetch's start until its thread ends
    past_max_stale: bool = False  # noted once by the refresher, so the generation moves once


@dataclass
class FetchStats:
    ok: int = 0
    failed: int = 0


class _RepeatedMembers(dict[str, Any]):
    """A JSON object naming a member twice, the last one kept: so the gateway's key-set decoder
    reads such a document, but its JWK parser refuses such a key entry."""


def keys_member(body: bytes) -> Any:
    """The document's ``keys`` as Go's decoder fills the gateway's key-set struct: the last member
    named ``keys`` in any letter case. Read as Go reads it: a BOM, UTF-16 text, or a NaN or Infinity
    literal anywhere is not JSON."""
    members: list[list[tuple[str, Any]]] = []

    def remember(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        members[:] = [pairs]  # the document's own object is the last one to close
        read = dict(pairs)
        return read if len(read) == len(pairs) else _RepeatedMembers(read)

    try:
        document = json.loads(gojson.text(body), object_pairs_hook=remember, parse_constant=gojson.refuse_constant)
    except (ValueError, RecursionError):
        raise FetchError("response is not JSON") from None
    if not isinstance(document, dict):
        raise FetchError("response has no 'keys' array")
    named = [value for name, value in members[0] if gojson.equal_fold(name, "keys")]
    return named[-1] if named else None


def entry_kid(jwk: Mapping[str, Any]) -> Any:
    """The kid an entry answers to: a key without kid (or with kid null) answers kid "", as in the
    gateway's JWKS lookup."""
    kid = jwk.get("kid")
    return "" if kid is None else kid


def entry_key(jwk: Any) -> VerificationKey | None:
    """The key an entry of ``keys`` gives (see key_from_jwk), or None; an entry naming one member
    twice gives none."""
    if not isinstance(jwk, dict) or isinstance(jwk, _RepeatedMembers):
        return None
    return key_from_jwk(jwk)


def parse_jwks(body: bytes, max_keys: int) -> dict[str, VerificationKey]:
    entries = keys_member(body)
    if not isinstance(entries, list):
        raise FetchError("response has no 'keys' array")
    if len(entries) > max_keys:
        raise FetchError(f"JWKS has {len(entries)} keys, more than the limit of {max_keys}")
    by_kid: dict[str, VerificationKey] = {}
    for jwk in entries:
        key = entry_key(jwk)
        if key is None:
            continue
        kid = entry_kid(jwk)
        if isinstance(kid, str):
            by_kid.setdefault(kid, key)  # the first key with a kid wins, as in the gateway
    if not by_kid:
        raise FetchError("JWKS has no usable RSA/EC signing key")
    return by_kid


class JwksCache:
    """Owns every key set this server knows, per JWKS URL."""

    def __init__(self, settings: JwksSettings | None = None, fetcher: Fetcher = http_fetch,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or JwksSettings()
        self._fetcher = fetcher
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self.stats = FetchStats()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._required: set[str] = set()
        self._waiting = 0  # requests waiting on fetches within the ``waiters`` limit
        # Bumped whenever a fetch drops a kid or changes the key behind one, a key set goes past
        # max-stale, or an idle URL is dropped, so holders of verifications made with earlier keys
        # know to look again.
        self.generation = 0

    # -- request path ---------------------------------------------------------------------------

    def get_key(self, url: str, kid: str, ttl: float) -> VerificationKey:
        """The key for ``kid``; a cold URL is waited for, an unknown kid refetched at most once per interval."""
        entry = self._entry(url, ttl)
        keyset = self._usable(entry)
        if keyset is None:
            keyset = self._load(entry)
        key = keyset.keys.get(kid)
        if key is not None:
            return key
        return self._refetch_for(entry, kid)

    def current_keys(self, url: str) -> Mapping[str, VerificationKey] | None:
        """The usable key set of ``url`` by kid, or None when none is loaded; never fetches."""
        entry = self._entries.get(url)
        if entry is None:
            return None
        entry.last_used = self._clock()
        keyset = self._usable(entry)
        return keyset.keys if keyset is not None else None

    def failing(self, url: str) -> bool:
        """Whether ``url`` has no usable set and its last fetch failed; never fetches."""
        entry = self._entries.get(url)
        return entry is not None and entry.failures > 0 and self._usable(entry) is None

    def touch(self, url: str) -> None:
        """Note that ``url``'s keys still vouch for a token in use (a verified-token cache hit), so
        the URL is not dropped as idle while its tokens are served from cache."""
        entry = self._entries.get(url)
        if entry is not None:
            entry.last_used = self._clock()

    def current_key(self, url: str, kid: str) -> VerificationKey | None:
        """The key now published under ``kid`` in a usable key set, or None; never fetches."""
        keys = self.current_keys(url)
        return keys.get(kid) if keys is not None else None

    def prefetch(self, url: str, ttl: float, required: bool = False) -> bool:
        """Load ``url`` now; a required URL keeps the server unready until it has keys."""
        entry = self._entry(url, ttl)
        if required:
            with self._lock:
                self._required.add(url)
        with self._lock:
            fetch = entry.inflight or self._start(entry)
        try:
            self._wait(entry, fetch)
            return True
        except KeysUnavailable:
            return False

    def _load(self, entry: _Entry) -> KeySet:
        """A URL with no usable set: start its fetch or join the running one, and wait."""
        with self._lock:
            keyset = self._usable(entry)  # a fetch may have ended since the caller looked
            if keyset is not None:
                return keyset
            fetch = entry.inflight
            if fetch is None:
                if self._clock() < entry.next_retry:
                    # The last fetch failed: until its backoff ends, refuse at once rather than ask
                    # the IdP again on every request (the refresher retries in the background).
                    raise KeysUnavailable("JWKS fetch failed recently")
                fetch = self._start(entry)
        return self._wait_as_request(entry, fetch)

    def _refetch_for(self, entry: _Entry, kid: str) -> VerificationKey:
        """A kid the usable set lacks: refetch at most once per interval, and wait for the refetch
        (the one started here or one running)."""
        with self._lock:
            latest = entry.keyset  # a fetch may have ended since the caller looked
            if latest is not None and kid in latest.keys:
                return latest.keys[kid]
            fetch = entry.inflight
            if fetch is None:
                if not self._may_fetch(entry):
                    raise UnknownKey("kid not in JWKS")
                fetch = self._start(entry)
        try:
            keyset = self._wait_as_request(entry, fetch)
        except KeysUnavailable:
            raise UnknownKey("kid not in JWKS (refetch failed or still running)") from None
        key = keyset.keys.get(kid)
        if key is None:
            raise UnknownKey("kid not in JWKS (refetched)")
        return key

    # -- state for health and metrics ---------------------------------------------------------

    def ready(self) -> bool:
        """Required URLs have usable keys, and no set in use that once loaded has gone past max-stale.

        A URL that never loaded (one API's typo), or that no API uses any more, does not make the
        whole server unready.
        """
        now = self._clock()
        with self._lock:
            entries = list(self._entries.values())
            required = set(self._required)
        for entry in entries:
            if entry.url not in required and self._idle(entry, now):
                continue
            usable = self._usable(entry) is not None
            if not usable and (entry.url in required or entry.keyset is not None):
                return False
        return all(url in self._entries for url in required)

    def ages(self) -> dict[str, float]:
        """Seconds since each key set was fetched, by masked URL. URLs that differ only in what the
        mask hides (credentials, the query) share a label, which shows the oldest: the one to alert on."""
        now = self._clock()
        out: dict[str, float] = {}
        with self._lock:
            for url, entry in self._entries.items():
                if entry.keyset is not None:
                    label = shown_url(url)
                    out[label] = max(out.get(label, 0.0), now - entry.keyset.fetched_at)
        return out

    # -- fetching -------------------------------------------------------------------------------

    def _entry(self, url: str, ttl: float) -> _Entry:
        now = self._clock()
        with self._lock:  # with _drop's check and delete: a request never holds an entry just dropped
            entry = self._entries.get(url)
            if entry is None:
                entry = self._entries[url] = _Entry(url=url, ttl=ttl, last_used=now)
            entry.last_used = now
            if ttl < entry.ttl:
                entry.ttl = ttl
        return entry

    def _usable(self, entry: _Entry) -> KeySet | None:
        keyset = entry.keyset
        if keyset is None:
            return None
        if self._clock() - keyset.fetched_at > keyset.ttl + self.settings.max_stale:
            return None
        return keyset

    def _idle(self, entry: _Entry, now: float) -> bool:
        return now - entry.last_used > self.settings.idle_after

    def _may_fetch(self, entry: _Entry) -> bool:
        # Not the failure back-off: one refetch per interval is bound enough, and it finds an IdP
        # that has come back (and the keys it rotated in meanwhile) before the back-off would.
        now = self._clock()
        return now - entry.last_attempt >= self.settings.min_refetch_interval and now >= entry.asked_to_wait_until

    def _start(self, entry: _Entry) -> _Fetch:
        """Start a fetch of ``entry`` on a thread of its own; the caller holds the lock."""
        now = self._clock()
        fetch = _Fetch(Future(), now)
        entry.last_attempt = now
        try:
            threading.Thread(target=self._run, args=(entry, fetch), name="jwks-fetch", daemon=True).start()
        except RuntimeError:  # no thread to be had: a failed fetch, with its back-off, never a stuck one
            self.stats.failed += 1
            entry.failures += 1
            entry.next_retry = now + self._backoff(entry.failures)
            log.warning("jwks fetch not started url=%s: no thread could be started", shown_url(entry.url))
            fetch.future.set_exception(FetchError("no thread could be started"))
            return fetch
        entry.inflight = fetch
        return fetch

    def _wait_as_request(self, entry: _Entry, fetch: _Fetch) -> KeySet:
        """Wait as a request's call thread: beyond ``waiters`` at once, only while the fetch is young,
        and not at all when the URL's last fetch failed: an IdP that hangs on every retry would
        otherwise hold the last call thread, the other APIs' one, for a second at each retry."""
        limit = self.settings.waiters
        with self._lock:
            counted = limit is None or self._waiting < limit
            if counted:
                self._waiting += 1
        try:
            patience = self.settings.fetch_deadline
            if not counted:
                patience = 0.0 if entry.failures else min(patience, self.settings.overflow_wait)
            return self._wait(entry, fetch, patience)
        finally:
            if counted:
                with self._lock:
                    self._waiting -= 1

    def _wait(self, entry: _Entry, fetch: _Fetch, patience: float | None = None) -> KeySet:
        """Wait on ``fetch`` until ``patience`` (default: fetch_deadline) after its start."""
        if patience is None:
            patience = self.settings.fetch_deadline
        try:
            return fetch.future.result(timeout=max(fetch.started + patience - self._clock(), 0.0))
        except Exception:  # noqa: BLE001 - a failed or overdue fetch is the same to a request
            fallback = self._usable(entry)
            if fallback is not None:
                return fallback
            raise KeysUnavailable("JWKS fetch failed") from None

    def _run(self, entry: _Entry, fetch: _Fetch) -> None:
        # The future is completed only once the fetch is no longer in flight: whoever has seen the
        # outcome finds the URL free to fetch again (a refresher pass right after a failure retries
        # it, it does not skip it as still running).
        started = time.monotonic()
        try:
            keyset = self._fetch(entry)
        except BaseException as exc:  # noqa: BLE001 - waiters must never be left on a future nobody completes
            self._landed(entry, fetch)
            fetch.future.set_exception(exc)
        else:
            self._landed(entry, fetch)
            fetch.future.set_result(keyset)
        took = time.monotonic() - started
        if took > self.settings.fetch_deadline:
            log.warning("jwks fetch url=%s took %.1f s; requests stop waiting after %.1f s", shown_url(entry.url),
                        took, self.settings.fetch_deadline)

    def _landed(self, entry: _Entry, fetch: _Fetch) -> None:
        with self._lock:
            if entry.inflight is fetch:
                entry.inflight = None

    def _backoff(self, failures: int) -> float:
        steps = self.settings.retry_backoff
        return steps[min(failures, len(steps)) - 1]

    def _fetch(self, entry: _Entry) -> KeySet:
        try:
            try:
                body = self._fetcher(entry.url, self.settings.fetch_timeout, self.settings.max_bytes)
                by_kid = parse_jwks(body, self.settings.max_keys)
            except FetchError:
                raise
            except Exception as unexpected:  # noqa: BLE001 - any failure is a failed fetch, with its backoff
                raise FetchError(f"unexpected {type(unexpected).__name__}") from None
        except FetchError as exc:
            failed_at = self._clock()  # not the start: a fetch may take longer to fail than a back-off step
            with self._lock:
                self.stats.failed += 1
                entry.failures += 1
                wait = self._backoff(entry.failures)
                if exc.retry_after is not None:
                    asked = min(exc.retry_after, self.settings.max_retry_after)
                    wait = max(wait, asked)
                    entry.asked_to_wait_until = failed_at + asked
                entry.next_retry = failed_at + wait
            stale = entry.keyset is not None and self._usable(entry) is not None
            log.warning("jwks fetch failed url=%s error=%s serving=%s", shown_url(entry.url), exc,
                        "last-good keys" if stale else "nothing")
            raise
        keyset = KeySet(keys=by_kid, fetched_at=self._clock(), ttl=entry.ttl)
        with self._lock:
            previous = entry.keyset
            changed = previous is None or set(previous.keys) != set(by_kid)
            entry.keyset = keyset  # before the generation moves: a reader of the new generation finds the new keys
            if previous is not None and any(by_kid.get(kid) != key for kid, key in previous.keys.items()):
                self.generation += 1
            entry.past_max_stale = False
            entry.failures = 0
            entry.next_retry = 0.0
            self.stats.ok += 1
        if changed:
            log.info("jwks loaded url=%s kids=%s", shown_url(entry.url), ",".join(sorted(by_kid)) or "-")
        return keyset

    # -- background refresh ---------------------------------------------------------------------

    def refresh_due(self) -> None:
        """Start a refresh of every set close to going stale (failed ones retry with backoff), and
        drop URLs no API has used for ``idle_after``. Never waits on a fetch."""
        now = self._clock()
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            if entry.url not in self._required and self._idle(entry, now):
                self._drop(entry, now)
                continue
            keyset = entry.keyset
            if keyset is not None and not entry.past_max_stale and self._usable(entry) is None:
                with self._lock:
                    entry.past_max_stale = True
                    self.generation += 1  # verifications cached under these keys are served no longer
            due_at = (keyset.fetched_at + keyset.ttl * (1 - self.settings.refresh_ahead)) if keyset else 0.0
            if now < max(due_at, entry.next_retry):
                continue
            with self._lock:
                if entry.inflight is None:
                    self._start(entry)

    def _drop(self, entry: _Entry, now: float) -> None:
        with self._lock:
            if entry.inflight is not None or self._entries.get(entry.url) is not entry or not self._idle(entry, now):
                return
            del self._entries[entry.url]
            if entry.keyset is not None:
                self.generation += 1  # its keys are no longer watched: what they verified is checked again
        log.info("jwks dropped url=%s: no API used it for %.0f s", shown_url(entry.url), now - entry.last_used)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until no fetch is running (for tests: fetches run on threads of their own)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                running = [entry.inflight.future for entry in self._entries.values() if entry.inflight is not None]
            if not running:
                return
            futures_wait(running, timeout=max(end - time.monotonic(), 0.0))

    def start(self, interval: float = 1.0) -> None:
        if self._refresher is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh_due()
                except Exception:  # the refresher must outlive any one bad fetch
                    log.exception("jwks refresher error")

        self._refresher = threading.Thread(target=run, name="jwks-refresher", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=2)
            self._refresher = None
