"""The JWKS cache: keys by URL and kid, refreshed off the request path, tolerant of IdP outages.

Behaviour an operator can rely on:
- a cold URL is fetched once, shared by every request waiting for it (single flight);
- a fresh set is refreshed in the background before it goes stale (no request waits);
- an unknown ``kid`` triggers at most one refetch per ``min_refetch_interval``, shared by all
  concurrent requests; until the next allowed fetch that kid is answered from a negative cache,
  so a flood of random kids cannot push the IdP past one fetch per interval;
- when a fetch fails, the last good set keeps serving for up to ``max_stale`` seconds; with no
  set to serve, requests are refused at once until the retry backoff ends, and the IdP sees one
  fetch per backoff step, never one per request;
- a fetch that has not completed within about twice ``fetch_timeout`` is abandoned;
- a JWKS response is bounded in size and key count; only RSA/EC signing keys are kept.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from cachetools import TTLCache

from plugin.errors import KeysUnavailable, UnknownKey
from plugin.keys import VerificationKey, key_from_jwk
from plugin.logs import shown_url

log = logging.getLogger("plugin.jwks")

Fetcher = Callable[[str, float, int], bytes]


class FetchError(Exception):
    """A JWKS could not be had; the message is safe to log (no key material)."""


def http_fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    """GET the JWKS. ``timeout`` bounds each socket wait, and once the headers are in, the body must
    arrive within ``timeout`` too, so an endpoint that drips its body is dropped."""
    # Always http(s): config.py takes only those as JWKS URLs.
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "tyk-auth0-plugin"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = _read_until(response, time.monotonic() + timeout, max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{type(exc).__name__}: {reason}") from None
    if len(body) > max_bytes:
        raise FetchError(f"response larger than {max_bytes} bytes")
    return body


def _read_until(response: http.client.HTTPResponse, deadline: float, limit: int) -> bytes:
    """Read at most ``limit`` bytes, one socket read at a time, giving up if more is still to come
    once ``deadline`` has passed (a body complete by then is kept, however late its end is seen)."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = response.read1(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline and not response.isclosed() and size < limit:
            raise FetchError("response not complete within the fetch timeout")
    return b"".join(parts)


@dataclass(frozen=True)
class JwksSettings:
    fetch_timeout: float = 3.0
    max_bytes: int = 256 * 1024
    max_keys: int = 50
    min_refetch_interval: float = 10.0
    max_stale: float = 6 * 3600.0
    refresh_ahead: float = 0.2  # refresh when this fraction of the TTL is left
    retry_backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class KeySet:
    keys: Mapping[str, VerificationKey]
    fetched_at: float
    ttl: float


@dataclass
class _Entry:
    url: str
    ttl: float
    unknown_kids: TTLCache[str, bool]  # kids just looked for and absent, until the next allowed fetch
    keyset: KeySet | None = None
    last_attempt: float = float("-inf")
    failures: int = 0
    next_retry: float = 0.0
    inflight: Future[KeySet] | None = None
    past_max_stale: bool = False  # noted once by the refresher, so the generation moves once


@dataclass
class FetchStats:
    ok: int = 0
    failed: int = 0


def parse_jwks(body: bytes, max_keys: int) -> dict[str, VerificationKey]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FetchError("response is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise FetchError("response has no 'keys' array")
    entries = document["keys"]
    if len(entries) > max_keys:
        raise FetchError(f"JWKS has {len(entries)} keys, more than the limit of {max_keys}")
    by_kid: dict[str, VerificationKey] = {}
    for jwk in entries:
        if not isinstance(jwk, dict):
            continue
        key = key_from_jwk(jwk)
        kid = jwk.get("kid", "")  # a key without kid answers kid "", as in the gateway's JWKS lookup
        if key is not None and isinstance(kid, str):
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
        # Bumped whenever a fetch drops a kid or changes the key behind one, or a key set goes past
        # max-stale, so holders of verifications made with earlier keys know to look again.
        self.generation = 0

    # -- request path ---------------------------------------------------------------------------

    def get_key(self, url: str, kid: str, ttl: float) -> VerificationKey:
        """The key for ``kid``; refetches at most once per interval for an unknown kid."""
        entry = self._entry(url, ttl)
        keyset = self._usable(entry)
        if keyset is None:
            if entry.inflight is None and self._clock() < entry.next_retry:
                # The last fetch failed: until its backoff ends, refuse at once rather than ask the
                # IdP again on every request (the refresher retries in the background).
                raise KeysUnavailable("JWKS fetch failed recently")
            keyset = self._fetch_shared(entry)
        key = keyset.keys.get(kid)
        if key is not None:
            return key
        if kid in entry.unknown_kids:
            raise UnknownKey("kid not in JWKS (negative cache)")
        if entry.inflight is not None or self._may_fetch(entry):  # join a running fetch, or start one
            try:
                keyset = self._fetch_shared(entry)
            except KeysUnavailable:
                pass
            else:
                key = keyset.keys.get(kid)
                if key is not None:
                    return key
        latest = entry.keyset  # a fetch may have finished since this request looked
        if latest is not None and kid in latest.keys:
            return latest.keys[kid]
        with self._lock:
            entry.unknown_kids[kid] = True
        raise UnknownKey("kid not in JWKS")

    def current_key(self, url: str, kid: str) -> VerificationKey | None:
        """The key now published under ``kid`` in a usable key set, or None; never fetches."""
        entry = self._entries.get(url)
        keyset = self._usable(entry) if entry is not None else None
        return keyset.keys.get(kid) if keyset is not None else None

    def prefetch(self, url: str, ttl: float, required: bool = False) -> bool:
        """Load ``url`` now; a required URL keeps the server unready until it has keys."""
        entry = self._entry(url, ttl)
        if required:
            with self._lock:
                self._required.add(url)
        try:
            self._fetch_shared(entry)
            return True
        except KeysUnavailable:
            return False

    # -- state for health and metrics ---------------------------------------------------------

    def ready(self) -> bool:
        """Required URLs have usable keys, and no set that once loaded has gone past max-stale.

        A URL that never loaded (one API's typo) does not make the whole server unready.
        """
        with self._lock:
            entries = list(self._entries.values())
            required = set(self._required)
        for entry in entries:
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
        entry = self._entries.get(url)
        if entry is None:
            negative: TTLCache[str, bool] = TTLCache(maxsize=1024, ttl=max(self.settings.min_refetch_interval, 0.001),
                                                     timer=self._clock)
            with self._lock:
                entry = self._entries.setdefault(url, _Entry(url=url, ttl=ttl, unknown_kids=negative))
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

    def _may_fetch(self, entry: _Entry) -> bool:
        return self._clock() - entry.last_attempt >= self.settings.min_refetch_interval

    def _fetch_shared(self, entry: _Entry) -> KeySet:
        """Run one fetch for ``entry``, or wait for the one already running."""
        with self._lock:
            future = entry.inflight
            owner = future is None
            if owner:
                future = entry.inflight = Future()
                entry.last_attempt = self._clock()
        assert future is not None
        if not owner:
            try:
                return future.result(timeout=self.settings.fetch_timeout * 2 + 1)
            except Exception:  # noqa: BLE001 - any failure of the shared fetch is the same to a waiter
                fallback = self._usable(entry)
                if fallback is not None:
                    return fallback
                raise KeysUnavailable("JWKS fetch failed") from None
        try:
            keyset = self._fetch(entry)
        except BaseException as exc:
            future.set_exception(exc)  # waiters must never be left on a future nobody completes
            if not isinstance(exc, FetchError):
                raise
            fallback = self._usable(entry)
            if fallback is not None:
                return fallback
            raise KeysUnavailable("JWKS fetch failed") from None
        else:
            future.set_result(keyset)
            return keyset
        finally:
            with self._lock:
                entry.inflight = None

    def _fetch(self, entry: _Entry) -> KeySet:
        started = self._clock()
        try:
            try:
                body = self._fetcher(entry.url, self.settings.fetch_timeout, self.settings.max_bytes)
                by_kid = parse_jwks(body, self.settings.max_keys)
            except FetchError:
                raise
            except Exception as unexpected:  # noqa: BLE001 - any failure is a failed fetch, with its backoff
                raise FetchError(f"unexpected {type(unexpected).__name__}") from None
        except FetchError as exc:
            with self._lock:
                self.stats.failed += 1
                entry.failures += 1
                backoff = self.settings.retry_backoff
                entry.next_retry = started + backoff[min(entry.failures, len(backoff)) - 1]
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
            entry.unknown_kids.clear()
            self.stats.ok += 1
        if changed:
            log.info("jwks loaded url=%s kids=%s", shown_url(entry.url), ",".join(sorted(by_kid)) or "-")
        return keyset

    # -- background refresh ---------------------------------------------------------------------

    def refresh_due(self) -> None:
        """Refresh every set close to going stale; failed ones retry with backoff."""
        now = self._clock()
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            keyset = entry.keyset
            if keyset is not None and not entry.past_max_stale and self._usable(entry) is None:
                with self._lock:
                    entry.past_max_stale = True
                    self.generation += 1  # verifications cached under these keys are served no longer
            due_at = (keyset.fetched_at + keyset.ttl * (1 - self.settings.refresh_ahead)) if keyset else 0.0
            if now < max(due_at, entry.next_retry) or entry.inflight is not None:
                continue
            if entry.failures == 0 and not self._may_fetch(entry):
                continue  # after a failure the backoff alone paces the retries
            with contextlib.suppress(KeysUnavailable):  # logged and counted where it failed
                self._fetch_shared(entry)

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
