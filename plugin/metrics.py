"""Prometheus metrics and the health endpoints, on their own small HTTP server.

The request path only adds to counts its own thread owns (a request counter and a
latency histogram, summed over threads when Prometheus scrapes), so nothing is
locked per request; state the server already keeps (JWKS fetch counts and ages,
verified-token cache hits, readiness) is read at scrape time too, through
callables bound at startup, so nothing is counted twice. Every metric lives in a
registry this object owns: two servers in one process (tests) never share series.

Label values are bounded: ``hook`` is the hook type, ``outcome`` is ``ok`` or a
fixed refusal ``reason`` from :mod:`plugin.errors` (see ``OUTCOMES``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from plugin.cli import is_port
from plugin.coprocess import Object
from plugin.errors import AuthError
from plugin.httpthread import ServerThread

log = logging.getLogger("plugin.metrics")

# Every ``reason`` an AuthError can carry (tests keep this list equal to plugin.errors).
REASONS: tuple[str, ...] = (
    "audience", "claims", "config", "custom_claim", "dpop_binding", "dpop_proof", "dpop_replay", "expired",
    "identity", "invalid", "issued_in_future", "issuer", "jti", "jwks_unavailable", "lifetime", "missing", "no_policy",
    "not_valid_yet", "signature", "signing_method", "unknown_hook", "unknown_kid",
)
# ok; a refusal reason; "refused" (a user hook's deliberate refusal); "hook_error" (a user hook raised);
# "internal_error" (the auth check crashed; the client got 403 "Key not authorised").
OUTCOMES: frozenset[str] = frozenset({"ok", "refused", "hook_error", "internal_error", *REASONS})
HOOKS: tuple[str, ...] = ("auth_check", "pre", "post", "post_key_auth", "response", "unknown")

# Auth checks take ~50 µs from cache, ~100 µs to verify, up to the JWKS timeout on a cold fetch.
VERIFY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                  1.0, 2.5, 5.0)

Readiness = Callable[[], "bool | tuple[bool, str]"]


class _Tally:
    """One thread's counts: written only by that thread, read (copied) at scrape time."""

    __slots__ = ("requests", "buckets", "seconds", "names")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.names: dict[str, int] = {}  # auth calls by hook name, counted only when several are served
        self.buckets = [0] * (len(VERIFY_BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0

    def count(self, key: tuple[str, str]) -> None:
        self.requests[key] = self.requests.get(key, 0) + 1


class _Tallies:
    """Every thread's tally, and their sums."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[_Tally] = []
        self._lock = threading.Lock()

    def mine(self) -> _Tally:
        try:
            return self._local.tally
        except AttributeError:
            tally = self._local.tally = _Tally()
            with self._lock:
                self._all.append(tally)
            return tally

    def requests(self) -> dict[tuple[str, str], int]:
        total: dict[tuple[str, str], int] = {("auth_check", "ok"): 0}  # the series exists before any call
        for tally in self._snapshot():
            for key, n in dict(tally.requests).items():
                total[key] = total.get(key, 0) + n
        return total

    def names(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for tally in self._snapshot():
            for name, n in dict(tally.names).items():
                total[name] = total.get(name, 0) + n
        return total

    def latency(self) -> tuple[list[int], float]:
        buckets, seconds = [0] * (len(VERIFY_BUCKETS) + 1), 0.0
        for tally in self._snapshot():
            for i, n in enumerate(list(tally.buckets)):
                buckets[i] += n
            seconds += tally.seconds
        return buckets, seconds

    def _snapshot(self) -> list[_Tally]:
        with self._lock:
            return list(self._all)


class _Sources:
    """Callables that read the server's own state at scrape time."""

    def __init__(self) -> None:
        self.token_cache: Callable[[], tuple[int, int]] | None = None
        self.jwks_fetches: Callable[[], tuple[int, int]] | None = None
        self.jwks_ages: Callable[[], Mapping[str, float]] | None = None
        self.ready: Readiness | None = None


class _ScrapeCollector(Collector):
    def __init__(self, sources: _Sources, tallies: _Tallies, readiness: Callable[[], tuple[bool, str]]) -> None:
        self._sources = sources
        self._tallies = tallies
        self._readiness = readiness

    def describe(self) -> list[Metric]:
        return []  # families appear only once their source is bound

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("tyk_auth0_requests", "Calls answered, by hook type and outcome (ok or "
                                       "the refusal reason).", labels=["hook", "outcome"])
        for (hook, outcome), n in sorted(self._tallies.requests().items()):
            requests.add_metric([hook, outcome], n)
        yield requests
        names = self._tallies.names()
        if names:
            by_name = CounterMetricFamily("tyk_auth0_auth_hook_calls", "Auth calls by the hook name the gateway "
                                          "called (served names only; counted when serve has several manifests).",
                                          labels=["name"])
            for name, n in sorted(names.items()):
                by_name.add_metric([name], n)
            yield by_name
        counts, seconds = self._tallies.latency()
        cumulative, running = [], 0
        for bound, n in zip([*map(_bound, VERIFY_BUCKETS), "+Inf"], counts, strict=True):
            running += n
            cumulative.append((bound, running))
        yield HistogramMetricFamily("tyk_auth0_verify_seconds", "Time of one auth check, from the token to a "
                                    "session or a refusal (cache hits included).", buckets=cumulative, sum_value=seconds)
        s = self._sources
        if s.token_cache is not None:
            found = _safe(s.token_cache)
            if found is not None:
                hits, misses = found
                yield CounterMetricFamily("tyk_auth0_token_cache_hits", "Auth checks answered from the "
                                          "verified-token cache.", value=hits)
                yield CounterMetricFamily("tyk_auth0_token_cache_misses", "Auth checks that verified the "
                                          "token (not in the verified-token cache).", value=misses)
        if s.jwks_fetches is not None:
            found = _safe(s.jwks_fetches)
            if found is not None:
                family = CounterMetricFamily("tyk_auth0_jwks_fetches", "JWKS fetches by result.",
                                             labels=["result"])
                family.add_metric(["ok"], found[0])
                family.add_metric(["error"], found[1])
                yield family
        if s.jwks_ages is not None:
            ages = _safe(s.jwks_ages)
            if ages is not None:
                gauge = GaugeMetricFamily("tyk_auth0_jwks_age_seconds", "Seconds since the key set of "
                                          "each JWKS URL was last fetched successfully.", labels=["url"])
                for url, age in sorted(ages.items()):
                    gauge.add_metric([url], age)
                yield gauge
        ready, _ = self._readiness()
        yield GaugeMetricFamily("tyk_auth0_ready", "1 when the server can verify tokens (keys loaded), "
                                "else 0.", value=1.0 if ready else 0.0)


def _bound(value: float) -> str:
    return repr(float(value))


def _safe(source: Callable[[], Any]) -> Any:
    try:
        return source()
    except Exception:  # a broken source must not take /metrics down
        log.exception("metrics source failed")
        return None


class Metrics:
    """The plugin's metrics and the HTTP server that exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tallies = _Tallies()
        self._sources = _Sources()
        self.registry.register(_ScrapeCollector(self._sources, self._tallies, self.readiness))
        self._serving: ServerThread | None = None

    # -- recording --------------------------------------------------------------------------------

    def request(self, hook: str, outcome: str) -> None:
        """Count one answered call; unknown label values are folded so the series stay bounded."""
        key = (hook if hook in HOOKS else "unknown", outcome if outcome in OUTCOMES else "internal_error")
        self._tallies.mine().count(key)

    def hook_outcome(self, kind: str, outcome: str) -> None:
        """Observer for ``plugin.extensions.as_router_hooks(on_outcome=...)``."""
        self.request(kind, outcome)

    def instrument_auth(self, authenticate: Callable[[Object], None],
                        by_hook_name: bool = False) -> Callable[[Object], None]:
        """Wrap the auth check so every call is timed and counted by outcome; errors pass through.
        ``by_hook_name`` also counts calls by the hook name they carry (the router lets only served
        names through, so the series stay bounded): while an auth hook is renamed it shows whether
        any gateway still calls the old name. Off, it costs nothing."""
        mine, clock, bounds = self._tallies.mine, time.perf_counter, VERIFY_BUCKETS
        ok = ("auth_check", "ok")

        def instrumented(obj: Object) -> None:
            started = clock()
            key = ok
            try:
                authenticate(obj)
            except AuthError as error:
                key = ("auth_check", error.reason if error.reason in OUTCOMES else "internal_error")
                raise
            except Exception:
                key = ("auth_check", "internal_error")
                raise
            finally:
                elapsed = clock() - started
                tally = mine()
                tally.count(key)
                tally.buckets[bisect_left(bounds, elapsed)] += 1
                tally.seconds += elapsed

        if not by_hook_name:
            return instrumented

        def counted_by_name(obj: Object) -> None:
            names = mine().names
            names[obj.hook_name] = names.get(obj.hook_name, 0) + 1
            instrumented(obj)

        return counted_by_name

    def bind(self, *, token_cache: Callable[[], tuple[int, int]] | None = None,
             jwks_fetches: Callable[[], tuple[int, int]] | None = None,
             jwks_ages: Callable[[], Mapping[str, float]] | None = None,
             ready: Readiness | None = None) -> None:
        """Where scrape-time values come from: (hits, misses), (ok, failed), {url: age}, readiness."""
        if token_cache is not None:
            self._sources.token_cache = token_cache
        if jwks_fetches is not None:
            self._sources.jwks_fetches = jwks_fetches
        if jwks_ages is not None:
            self._sources.jwks_ages = jwks_ages
        if ready is not None:
            self._sources.ready = ready

    def readiness(self) -> tuple[bool, str]:
        check = self._sources.ready
        if check is None:
            return True, "no readiness check bound"
        try:
            answer = check()
        except Exception as exc:  # noqa: BLE001 - a failing check means not ready, not a crash
            return False, f"readiness check failed: {type(exc).__name__}"
        if isinstance(answer, tuple):
            ready = bool(answer[0])
            return ready, "ready" if ready else str(answer[1])
        return bool(answer), "ready" if answer else "not ready"

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    # -- HTTP server ------------------------------------------------------------------------------

    def start(self, host: str = "0.0.0.0", port: int = 9464, idle_timeout: float = 10.0) -> int:
        """Serve /metrics, /healthz and /readyz from a daemon thread; returns the bound port.

        A connection that sends nothing for ``idle_timeout`` seconds is dropped, and at most
        MAX_CONNECTIONS are served at once, so idle or slow clients cannot take the process's
        threads and file descriptors (which the JWKS fetches and the gRPC server need too).
        """
        if self._serving is not None:
            raise RuntimeError("metrics server already started")
        server_class = _IPv6Server if ":" in host else _MetricsServer
        httpd = server_class((host, port), _handler(self, idle_timeout))
        self._serving = ServerThread(httpd, name="metrics-http")
        bound = self._serving.port
        log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", bound)
        return bound

    def stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(timeout=2)


MAX_CONNECTIONS = 32  # scrapers and probes, each on a thread of its own
# One request's line and headers: a scrape or a probe sends well under 1 KiB, while http.server alone
# would hold up to 100 header lines of 64 KiB each, 6 MiB a connection, 200 MiB over every slot.
MAX_REQUEST_HEAD = 16 * 1024


class _HeadLimit:
    """A connection's reader that refuses a request head (line and headers) past MAX_REQUEST_HEAD."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.left = MAX_REQUEST_HEAD

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._raw.readline(self.left + 1 if limit < 0 else min(limit, self.left + 1))
        self.left -= len(line)
        if self.left < 0:
            raise http.client.LineTooLong(f"request head over {MAX_REQUEST_HEAD} bytes")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _MetricsServer(ThreadingHTTPServer):
    """At most MAX_CONNECTIONS at once. When all are taken, the one that has waited longest for its
    next request gives way to the newcomer, so connections that only sit open (keep-alive, or a
    client that never finishes its request line) cannot lock a health probe out; with none waiting,
    the newcomer is closed at once rather than queued."""

    daemon_threads = True
    request_queue_size = 64  # socketserver's 5 makes a burst of probes wait on SYN retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._waiting: dict[socket.socket, float] = {}  # connections waiting for a request line, since when
        self._waiting_lock = threading.Lock()

    def waiting(self, connection: socket.socket, since: float | None) -> None:
        with self._waiting_lock:
            if since is None:
                self._waiting.pop(connection, None)
            else:
                self._waiting[connection] = since

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False) and not self._make_room():
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def _make_room(self) -> bool:
        with self._waiting_lock:
            if not self._waiting:
                return False
            oldest = min(self._waiting, key=self._waiting.__getitem__)
            del self._waiting[oldest]
        with contextlib.suppress(OSError):
            oldest.shutdown(socket.SHUT_RDWR)  # its thread reads the end, finishes, and frees the slot
        return self._slots.acquire(timeout=1.0)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or sends an oversized head: socketserver would print a traceback to
        stderr, past the log's format, once per connection any stranger opens."""
        log.debug("metrics connection from %s ended early", client_address[0] if client_address else "-")

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.waiting(request, None)
            self._slots.release()


class _IPv6Server(_MetricsServer):
    address_family = socket.AF_INET6


def _handler(metrics: Metrics, idle_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tyk-auth0-plugin"
        sys_version = ""
        timeout = idle_timeout  # each socket read; http.server drops the connection when it expires

        def setup(self) -> None:
            super().setup()
            self.rfile = _HeadLimit(self.rfile)  # type: ignore[assignment]

        def handle_one_request(self) -> None:
            server = self.server
            assert isinstance(server, _MetricsServer)
            server.waiting(self.connection, time.monotonic())  # until a request is being answered
            assert isinstance(self.rfile, _HeadLimit)
            self.rfile.left = MAX_REQUEST_HEAD  # each request on a kept-alive connection has its own
            super().handle_one_request()

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _answer(self, head: bool) -> None:
            server = self.server
            assert isinstance(server, _MetricsServer)
            server.waiting(self.connection, None)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, content_type = metrics.exposition(self.headers.get("Accept", ""))
                self._send(200, body, content_type, head)
            elif path == "/healthz":
                self._json(200, {"status": "ok"}, head)
            elif path == "/readyz":
                ready, reason = metrics.readiness()
                self._json(200 if ready else 503, {"status": "ready" if ready else "not ready", "reason": reason},
                           head)
            else:
                self._json(404, {"error": "not found"}, head)

        def _json(self, status: int, document: dict[str, str], head: bool) -> None:
            self._send(status, json.dumps(document).encode() + b"\n", "application/json", head)

        def _send(self, status: int, body: bytes, content_type: str, head: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            pass  # probes every few seconds would drown the plugin's own log

    return Handler


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` as given to ``--metrics-listen``."""
    host, sep, port = value.rpartition(":")
    if not sep or not is_port(port):
        raise ValueError(f"--metrics-listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:9464")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def add_serve_arguments(parser: Any, environ: Mapping[str, str] | None = None) -> None:
    """``serve --metrics-listen``: where /metrics, /healthz and /readyz are served (off when empty)."""
    env = os.environ if environ is None else environ
    parser.add_argument("--metrics-listen", type=_listen_or_off, default=env.get("TYK_AUTH0_METRICS_LISTEN", ""),
                        metavar="HOST:PORT",
                        help="serve /metrics, /healthz and /readyz here, e.g. 0.0.0.0:9464; with --workers N, "
                             "worker i listens on PORT+i (env TYK_AUTH0_METRICS_LISTEN; default: off)")


def _listen_or_off(text: str) -> str:
    if text.strip():
        try:
            parse_listen(text.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (from the flag or TYK_AUTH0_METRICS_LISTEN)") from None
    return text.strip()
