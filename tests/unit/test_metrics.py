"""Metrics: bounded labels, scrape-time sources, and the /metrics, /healthz, /readyz endpoints."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugin import errors
from plugin import extensions as ext
from plugin.auth import Authenticator, ConfigStore
from plugin.coprocess import HookType
from plugin.hooks import HookRouter
from plugin.jwks import JwksCache, JwksSettings
from plugin.metrics import HOOKS, MAX_CONNECTIONS, MAX_REQUEST_HEAD, OUTCOMES, REASONS, Metrics, parse_listen
from plugin.verify import Verifier
from tests.support import tokens as t
from tests.support.objects import AUTH_HOOK, auth_object


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def all_reasons() -> set[str]:
    found, pending = set(), [errors.AuthError]
    while pending:
        cls = pending.pop()
        found.add(cls.reason)
        pending.extend(cls.__subclasses__())
    return found


def test_reasons_list_every_refusal_reason_in_plugin_errors():
    assert set(REASONS) == all_reasons()
    assert set(REASONS) | {"ok"} <= OUTCOMES


def test_each_metrics_object_owns_its_registry():
    a, b = Metrics(), Metrics()
    a.request("auth_check", "expired")
    assert samples(a)[("tyk_auth0_requests_total", (("hook", "auth_check"), ("outcome", "expired")))] == 1
    assert ("tyk_auth0_requests_total", (("hook", "auth_check"), ("outcome", "expired"))) not in samples(b)


def test_unknown_label_values_are_folded_to_keep_series_bounded():
    metrics = Metrics()
    metrics.request("SomeHookName", "whatever")
    assert samples(metrics)[("tyk_auth0_requests_total", (("hook", "unknown"), ("outcome", "internal_error")))] == 1
    assert {"auth_check", "unknown"} <= set(HOOKS)


@pytest.fixture()
def wired(idp):
    """An authenticator wired exactly as the server wires it, with the metrics around it."""
    metrics = Metrics()
    jwks = JwksCache(JwksSettings(), fetcher=idp)
    authenticator = Authenticator(Verifier(jwks), ConfigStore(defaults={}))
    router = HookRouter(AUTH_HOOK, metrics.instrument_auth(authenticator.authenticate),
                        hooks=ext.as_router_hooks(ext.builtin_hooks(), on_outcome=metrics.hook_outcome),
                        on_outcome=metrics.request)
    metrics.bind(token_cache=lambda: (authenticator.hits, authenticator.misses),
                 jwks_fetches=lambda: (jwks.stats.ok, jwks.stats.failed), jwks_ages=jwks.ages, ready=jwks.ready)
    return metrics, router


def test_auth_outcomes_latency_cache_and_jwks_are_exported(wired, signing_key):
    metrics, router = wired
    token = t.sign(signing_key)
    router.dispatch(auth_object(f"Bearer {token}"))
    router.dispatch(auth_object(f"Bearer {token}"))
    router.dispatch(auth_object(None))
    router.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(exp=1))))
    router.dispatch(auth_object("Bearer x", hook_name=ext.CLAIMS_TO_HEADERS_HOOK, hook_type=HookType.PostKeyAuth))
    found = samples(metrics)

    def requests(hook: str, outcome: str) -> float:
        return found.get(("tyk_auth0_requests_total", (("hook", hook), ("outcome", outcome))), 0)

    assert requests("auth_check", "ok") == 2
    assert requests("auth_check", "missing") == 1
    assert requests("auth_check", "expired") == 1
    assert requests("post_key_auth", "ok") == 1
    assert found[("tyk_auth0_verify_seconds_count", ())] == 4
    assert found[("tyk_auth0_token_cache_hits_total", ())] == 1
    assert found[("tyk_auth0_token_cache_misses_total", ())] == 2
    assert found[("tyk_auth0_jwks_fetches_total", (("result", "ok"),))] == 1
    assert found[("tyk_auth0_jwks_fetches_total", (("result", "error"),))] == 0
    url = "https://tenant.example.auth0.com/.well-known/jwks.json"
    assert 0 <= found[("tyk_auth0_jwks_age_seconds", (("url", url),))] < 60
    assert found[("tyk_auth0_ready", ())] == 1


def test_a_crashing_auth_check_is_counted_as_internal_error():
    metrics = Metrics()

    def crash(obj):
        raise ZeroDivisionError

    router = HookRouter(AUTH_HOOK, metrics.instrument_auth(crash))
    reply = router.dispatch(auth_object("Bearer x"))
    assert reply.request.return_overrides.response_error == "Key not authorised"
    assert samples(metrics)[("tyk_auth0_requests_total", (("hook", "auth_check"), ("outcome", "internal_error")))] == 1


def test_an_auth_call_for_a_hook_name_not_served_is_counted_as_unknown_hook(signing_key):
    metrics = Metrics()
    router = HookRouter(AUTH_HOOK, metrics.instrument_auth(lambda obj: None), on_outcome=metrics.request)
    reply = router.dispatch(auth_object("Bearer " + t.sign(signing_key), hook_name="RenamedAuthCheck"))
    assert reply.request.return_overrides.response_error == "Key not authorised"
    assert samples(metrics)[("tyk_auth0_requests_total", (("hook", "auth_check"), ("outcome", "unknown_hook")))] == 1


def test_with_several_auth_hooks_served_calls_are_counted_by_the_name_they_carry():
    metrics = Metrics()
    router = HookRouter(("Auth0JWTAuthCheck", "Auth0JWTAuthCheckV2"),
                        metrics.instrument_auth(lambda obj: None, by_hook_name=True), on_outcome=metrics.request)
    for name in ("Auth0JWTAuthCheck", "Auth0JWTAuthCheckV2", "Auth0JWTAuthCheckV2", "NotServed"):
        router.dispatch(auth_object("Bearer x", hook_name=name))
    found = samples(metrics)
    assert found[("tyk_auth0_auth_hook_calls_total", (("name", "Auth0JWTAuthCheck"),))] == 1
    assert found[("tyk_auth0_auth_hook_calls_total", (("name", "Auth0JWTAuthCheckV2"),))] == 2
    assert not any(name == "tyk_auth0_auth_hook_calls_total" and dict(labels)["name"] == "NotServed"
                   for name, labels in found)


def test_with_one_auth_hook_calls_are_not_counted_by_name():
    metrics = Metrics()
    router = HookRouter(AUTH_HOOK, metrics.instrument_auth(lambda obj: None))
    router.dispatch(auth_object("Bearer x"))
    assert not any(name == "tyk_auth0_auth_hook_calls_total" for name, _ in samples(metrics))


def test_calls_counted_on_many_threads_are_summed_at_scrape_time():
    import threading

    metrics = Metrics()
    instrumented = metrics.instrument_auth(lambda obj: None)

    def work() -> None:
        for _ in range(500):
            instrumented(None)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = samples(metrics)
    assert found[("tyk_auth0_requests_total", (("hook", "auth_check"), ("outcome", "ok")))] == 2000
    assert found[("tyk_auth0_verify_seconds_count", ())] == 2000
    assert found[("tyk_auth0_verify_seconds_bucket", (("le", "+Inf"),))] == 2000


def test_a_failing_source_does_not_break_the_scrape():
    metrics = Metrics()
    metrics.bind(jwks_ages=lambda: 1 / 0, token_cache=lambda: (3, 4))
    found = samples(metrics)
    assert found[("tyk_auth0_token_cache_hits_total", ())] == 3
    assert not any(name == "tyk_auth0_jwks_age_seconds" for name, _ in found)


@pytest.fixture()
def served():
    metrics = Metrics()
    state = {"ready": False}
    metrics.bind(ready=lambda: (state["ready"], "JWKS not loaded yet") if not state["ready"] else True)
    port = metrics.start("127.0.0.1", 0)
    yield metrics, state, f"http://127.0.0.1:{port}"
    metrics.stop()


def test_http_endpoints(served):
    metrics, state, base = served
    metrics.request("auth_check", "ok")
    status, body, content_type = get(base + "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert b'tyk_auth0_requests_total{hook="auth_check",outcome="ok"} 1.0' in body
    assert b"tyk_auth0_ready 0.0" in body
    assert get(base + "/healthz")[:2] == (200, b'{"status": "ok"}\n')
    status, body, content_type = get(base + "/readyz")
    assert (status, content_type) == (503, "application/json")
    assert json.loads(body) == {"status": "not ready", "reason": "JWKS not loaded yet"}
    state["ready"] = True
    status, body, _ = get(base + "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    assert get(base + "/nope")[0] == 404


def test_readiness_that_raises_is_not_ready():
    metrics = Metrics()
    metrics.bind(ready=lambda: {}["missing"])
    assert metrics.readiness() == (False, "readiness check failed: KeyError")
    assert Metrics().readiness()[0] is True  # nothing bound: ready while the process runs


def test_openmetrics_is_served_when_asked(served):
    _, _, base = served
    request = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().endswith(b"# EOF\n")


def idle_client(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(b"GET /metr")  # a request line that never ends
    return client


def test_an_idle_connection_is_dropped_after_the_idle_timeout():
    metrics = Metrics()
    port = metrics.start("127.0.0.1", 0, idle_timeout=0.2)
    try:
        with idle_client(port) as client:
            assert client.recv(100) == b""  # closed by the server, not by the 10 s client timeout
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        metrics.stop()


def closed(client: socket.socket) -> bool:
    client.setblocking(False)
    try:
        return client.recv(1) == b""
    except BlockingIOError:
        return False


def test_a_probe_gets_through_when_idle_connections_hold_every_slot():
    metrics = Metrics()
    port = metrics.start("127.0.0.1", 0, idle_timeout=30)
    clients = [idle_client(port) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # every slot taken by a connection that never finishes its request line
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        # One idle connection gave way: the one whose thread began waiting first, which under load
        # need not be the first one opened.
        deadline = time.monotonic() + 5
        while not (gave_way := [c for c in clients if closed(c)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(gave_way) == 1
    finally:
        for client in clients:
            client.close()
        metrics.stop()


def test_connections_beyond_the_limit_never_hold_more_threads_than_the_limit():
    metrics = Metrics()
    port = metrics.start("127.0.0.1", 0, idle_timeout=30)
    threads_before = threading.active_count()
    clients = [idle_client(port) for _ in range(MAX_CONNECTIONS + 8)]
    try:
        gave_way: set[int] = set()
        deadline = time.monotonic() + 5
        while len(gave_way) < 8 and time.monotonic() < deadline:
            gave_way |= {i for i, client in enumerate(clients) if i not in gave_way and closed(client)}
            time.sleep(0.05)
        time.sleep(0.2)  # and no more than that
        gave_way |= {i for i, client in enumerate(clients) if i not in gave_way and closed(client)}
        assert len(gave_way) == 8  # as many gave way as came beyond the limit
        assert threading.active_count() <= threads_before + MAX_CONNECTIONS
    finally:
        for client in clients:
            client.close()
        metrics.stop()


def test_a_request_head_over_the_limit_is_refused_before_it_is_read_whole():
    metrics = Metrics()
    port = metrics.start("127.0.0.1", 0, idle_timeout=5)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            header = b"X-Big: " + b"a" * 1000 + b"\r\n"
            with contextlib.suppress(OSError):  # the server may answer and close before all is sent
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header * (MAX_REQUEST_HEAD // 1000 + 1))
            assert client.recv(100).startswith(b"HTTP/1.0 431")
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        metrics.stop()


def test_a_request_head_within_the_limit_is_answered():
    metrics = Metrics()
    port = metrics.start("127.0.0.1", 0, idle_timeout=5)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            header = b"X-Big: " + b"a" * 1000 + b"\r\n"
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header * 12 + b"\r\n")
            assert client.recv(100).startswith(b"HTTP/1.0 200")
    finally:
        metrics.stop()


def test_a_request_line_over_the_limit_closes_the_connection_without_a_traceback(capfd):
    metrics = Metrics()
    port = metrics.start("127.0.0.1", 0, idle_timeout=5)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            with contextlib.suppress(OSError):
                client.sendall(b"GET /" + b"a" * (2 * MAX_REQUEST_HEAD))
            assert client.recv(100) == b""  # closed without an answer
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        metrics.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_stop_releases_the_port_and_start_twice_is_refused():
    metrics = Metrics()
    port = metrics.start("127.0.0.1", 0)
    with pytest.raises(RuntimeError):
        metrics.start("127.0.0.1", 0)
    metrics.stop()
    metrics.stop()
    again = Metrics()
    assert again.start("127.0.0.1", port) == port
    again.stop()


@pytest.mark.parametrize("value, expected", [
    ("0.0.0.0:9464", ("0.0.0.0", 9464)), (":9464", ("0.0.0.0", 9464)), ("[::1]:80", ("::1", 80)),
])
def test_parse_listen(value, expected):
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9464", "host:", "host:99999", "host:x", "host:²", "host:" + "9" * 5000])
def test_parse_listen_refuses_bad_values(value):
    with pytest.raises(ValueError):
        parse_listen(value)
