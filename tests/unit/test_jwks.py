"""The JWKS cache keeps answering through IdP outages and key rotation, and never floods the IdP."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from plugin import jwks as jwks_module
from plugin.errors import KeysUnavailable, UnknownKey
from plugin.jwks import FetchError, JwksCache, JwksSettings, parse_jwks
from tests.support import tokens as t

URL = "https://tenant.example.auth0.com/.well-known/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def key() -> t.SigningKey:
    return t.rsa_key("k1")


def make(fake, clock=None, **settings) -> JwksCache:
    return JwksCache(JwksSettings(**settings), fetcher=fake, clock=clock or time.monotonic)


class WaitingFuture(Future):
    """The cache's shared-fetch future, counting the requests that wait on it."""

    waiting = 0
    _count_lock = threading.Lock()

    def result(self, timeout: float | None = None) -> object:
        with WaitingFuture._count_lock:
            WaitingFuture.waiting += 1
        return super().result(timeout)


@pytest.fixture()
def waiting_future(monkeypatch) -> type[WaitingFuture]:
    monkeypatch.setattr(jwks_module, "Future", WaitingFuture)
    monkeypatch.setattr(WaitingFuture, "waiting", 0)
    return WaitingFuture


def held(fetcher, release: threading.Event, entered: threading.Event):
    """A fetcher that, once called, blocks until ``release`` is set."""

    def fetch(*args):
        entered.set()
        release.wait(timeout=30)
        return fetcher(*args)

    return fetch


def refresh(cache: JwksCache) -> None:
    """One pass of the refresher, then wait for the fetches it started (they run on threads)."""
    cache.refresh_due()
    cache.settle()


def wait_for(condition, deadline: float = 5.0) -> bool:
    end = time.monotonic() + deadline
    while not condition() and time.monotonic() < end:
        time.sleep(0.005)
    return condition()


def test_keys_are_fetched_once_and_then_served_from_cache(key):
    fake = t.FakeJwks(keys=[key])
    cache = make(fake)
    for _ in range(5):
        cache.get_key(URL, "k1", 600)
    assert fake.fetches == 1


def test_concurrent_cold_requests_share_one_fetch(key, waiting_future):
    fake = t.FakeJwks(keys=[key])
    release, entered = threading.Event(), threading.Event()
    cache = make(held(fake, release, entered))
    found: list[object] = []
    threads = [threading.Thread(target=lambda: found.append(cache.get_key(URL, "k1", 600))) for _ in range(20)]
    try:
        for th in threads:
            th.start()
        assert entered.wait(timeout=5)
        # The fetch stays held until all 20 requests wait on it: the overlap is certain.
        assert wait_for(lambda: waiting_future.waiting == 20)
    finally:
        release.set()
        for th in threads:
            th.join(timeout=30)
    assert fake.fetches == 1
    assert len(found) == 20 and all(k is found[0] for k in found)


def test_unknown_kid_triggers_one_refetch_then_a_cooldown(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=10)
    cache.get_key(URL, "k1", 600)
    clock.now += 11
    for _ in range(100):
        with pytest.raises(UnknownKey):
            cache.get_key(URL, "random-kid", 600)
    assert fake.fetches == 2


def test_an_unknown_kid_is_refused_at_once_until_the_refetch_interval_passes(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=10)
    cache.get_key(URL, "k1", 600)
    clock.now += 11
    with pytest.raises(UnknownKey) as first:
        cache.get_key(URL, "new", 600)
    with pytest.raises(UnknownKey) as second:
        cache.get_key(URL, "new", 600)
    assert (first.value.detail, second.value.detail) == ("kid not in JWKS (refetched)", "kid not in JWKS")
    assert fake.fetches == 2


def test_an_unknown_kid_is_looked_for_again_as_soon_as_the_interval_allows(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=10)
    cache.get_key(URL, "k1", 600)  # fetch at 0 s
    clock.now += 9
    with pytest.raises(UnknownKey):
        cache.get_key(URL, "next", 600)  # too soon: refused without a fetch
    fake.keys.append(t.rsa_key("next"))
    clock.now += 1.5  # 10.5 s: the interval since the last fetch has passed
    assert cache.get_key(URL, "next", 600) is not None
    assert fake.fetches == 2


def test_an_unknown_kid_is_refetched_during_a_failure_back_off_and_finds_a_recovered_idp(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=2, retry_backoff=(30.0,))
    cache.get_key(URL, "k1", 600)
    fake.failing = True
    clock.now += 2
    with pytest.raises(UnknownKey):
        cache.get_key(URL, "rotated", 600)  # the refetch fails: 30 s of back-off for the refresher
    fake.failing = False
    fake.keys.append(t.rsa_key("rotated"))
    clock.now += 2
    assert cache.get_key(URL, "rotated", 600) is not None
    assert fake.fetches == 3


def test_no_unknown_kid_refetch_runs_before_the_endpoint_s_retry_after_ends(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=1)
    cache.get_key(URL, "k1", 600)
    fetcher = cache._fetcher
    cache._fetcher = lambda *args: (_ for _ in ()).throw(FetchError("HTTP 429", retry_after=30))
    clock.now += 2
    with pytest.raises(UnknownKey):
        cache.get_key(URL, "a", 600)  # asked to wait 30 s
    cache._fetcher = fetcher
    for step in range(25):
        clock.now += 1
        with pytest.raises(UnknownKey):
            cache.get_key(URL, f"b{step}", 600)
    assert fake.fetches == 1
    clock.now += 5
    with pytest.raises(UnknownKey):
        cache.get_key(URL, "c", 600)
    assert fake.fetches == 2


def test_random_unknown_kids_never_exceed_one_fetch_per_interval(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=10)
    for i in range(1000):
        clock.now += 0.1  # 100 s in all
        with pytest.raises(UnknownKey):
            cache.get_key(URL, f"kid-{i}", 600)
    assert fake.fetches <= 11


def test_rotated_key_is_found_by_refetching_on_unknown_kid(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=10)
    cache.get_key(URL, "k1", 600)
    fake.keys.append(t.rsa_key("k2"))
    clock.now += 11
    assert cache.get_key(URL, "k2", 600) is not None


def test_last_good_keys_keep_serving_when_the_idp_is_down(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, max_stale=3600)
    cache.get_key(URL, "k1", 60)
    fake.failing = True
    clock.now += 600  # well past the TTL
    refresh(cache)
    assert cache.get_key(URL, "k1", 60) is not None
    assert cache.ready()


def test_keys_older_than_max_stale_are_dropped(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, max_stale=100)
    cache.get_key(URL, "k1", 60)
    fake.failing = True
    clock.now += 1000
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 60)
    assert not cache.ready()


def test_max_stale_is_counted_from_the_end_of_the_ttl_not_from_the_fetch(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, max_stale=100)
    fetched_at = clock.now
    loaded = cache.get_key(URL, "k1", 60)
    fake.failing = True
    clock.now = fetched_at + 60 + 100 - 1  # past the TTL by less than max-stale
    assert cache.get_key(URL, "k1", 60) is loaded
    assert cache.ready()
    clock.now = fetched_at + 60 + 100 + 1  # past the TTL by more than max-stale
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 60)
    assert not cache.ready()


def test_background_refresh_happens_before_the_ttl_runs_out(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, refresh_ahead=0.2, min_refetch_interval=1)
    cache.get_key(URL, "k1", 100)
    clock.now += 50
    refresh(cache)
    assert fake.fetches == 1
    clock.now += 35  # 85 s: inside the last 20 %
    refresh(cache)
    assert fake.fetches == 2


def test_a_ttl_shorter_than_the_refetch_interval_is_still_refreshed_before_it_runs_out(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, refresh_ahead=0.2, min_refetch_interval=10)
    cache.get_key(URL, "k1", 5)
    clock.now += 4.5  # inside the last 20 % of a 5 s TTL, 4.5 s after the last fetch
    refresh(cache)
    assert fake.fetches == 2


def test_a_retry_after_longer_than_the_backoff_is_honoured():
    clock = Clock()
    calls: list[float] = []

    def limited(url: str, timeout: float, max_bytes: int) -> bytes:
        calls.append(clock.now)
        raise FetchError("HTTP 429", retry_after=60 if len(calls) == 1 else None)

    cache = make(limited, clock, retry_backoff=(1.0, 2.0))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    for _ in range(70):
        clock.now += 1
        refresh(cache)
    assert [at - calls[0] for at in calls[:3]] == [0, 60, 62]  # then the backoff alone paces them


def test_a_retry_after_is_capped():
    clock = Clock()
    calls: list[float] = []

    def limited(url: str, timeout: float, max_bytes: int) -> bytes:
        calls.append(clock.now)
        raise FetchError("HTTP 503", retry_after=10**9)

    cache = make(limited, clock, retry_backoff=(1.0,), max_retry_after=100)
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    clock.now += 100
    refresh(cache)
    assert len(calls) == 2


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), (" 7 ", 7.0), ("soon", None), ("", None), (None, None),
                                                 ("-5", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0)])
def test_retry_after_reads_seconds_or_an_http_date(header, seconds):
    now = lambda: 1445412450.0  # noqa: E731 - 07:27:30 GMT that day
    assert jwks_module.retry_after(header, now=now) == seconds


NOW = 1_700_000_000.0


def test_a_429_without_retry_after_waits_until_the_x_ratelimit_reset_auth0_sends():
    assert jwks_module.server_wait(429, {"X-RateLimit-Reset": str(int(NOW) + 12)}, now=lambda: NOW) == 12.0


def test_a_retry_after_wins_over_x_ratelimit_reset():
    headers = {"Retry-After": "3", "X-RateLimit-Reset": str(int(NOW) + 12)}
    assert jwks_module.server_wait(429, headers, now=lambda: NOW) == 3.0


def test_x_ratelimit_reset_is_read_only_on_a_429():
    assert jwks_module.server_wait(503, {"X-RateLimit-Reset": str(int(NOW) + 12)}, now=lambda: NOW) is None


@pytest.mark.parametrize("header", ["12", "soon", "", " ", "-5", str(int(NOW) + 12) + ".5"])
def test_an_x_ratelimit_reset_that_is_not_a_unix_time_asks_no_wait(header):
    assert jwks_module.server_wait(429, {"X-RateLimit-Reset": header}, now=lambda: NOW) is None


def test_an_x_ratelimit_reset_already_past_asks_no_longer_than_the_backoff():
    assert jwks_module.server_wait(429, {"X-RateLimit-Reset": str(int(NOW) - 5)}, now=lambda: NOW) == 0.0


def test_a_key_set_no_api_uses_any_more_is_dropped_and_stops_counting_for_readiness(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, max_stale=100, idle_after=1000)
    cache.get_key(URL, "k1", 60)
    generation = cache.generation
    fake.failing = True  # the tenant is gone, and so is every API that used it
    clock.now += 1001
    assert cache.ready()
    refresh(cache)
    assert cache.current_key(URL, "k1") is None
    assert cache.generation == generation + 1  # what its keys verified is checked again
    fetches = fake.fetches
    for _ in range(100):
        clock.now += 60
        refresh(cache)
    assert fake.fetches == fetches
    assert cache.ready()


def test_a_key_set_in_use_is_kept(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, idle_after=1000)
    cache.get_key(URL, "k1", 600)
    for _ in range(10):
        clock.now += 500
        cache.get_key(URL, "k1", 600)
        refresh(cache)
    assert cache.current_key(URL, "k1") is not None


def test_a_key_set_whose_tokens_are_served_from_cache_is_kept(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, idle_after=1000)
    cache.get_key(URL, "k1", 600)
    for _ in range(10):
        clock.now += 500
        cache.touch(URL)  # what a verified-token cache hit does
        refresh(cache)
    assert cache.current_key(URL, "k1") is not None


def test_a_required_key_set_is_never_dropped(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, idle_after=1000)
    assert cache.prefetch(URL, 600, required=True)
    clock.now += 5000
    refresh(cache)
    assert cache.current_key(URL, "k1") is not None


def test_failed_refreshes_back_off(key):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=0, retry_backoff=(5.0, 10.0))
    cache.get_key(URL, "k1", 10)
    fake.failing = True
    for _ in range(30):
        clock.now += 1
        refresh(cache)
    assert fake.fetches == 4  # the load, then failures at 8 s (refresh due), 13 s (+5), 23 s (+10)


def test_a_successful_fetch_starts_the_back_off_over_from_its_first_step(key):
    fake = t.FakeJwks(keys=[key], failing=True)
    clock = Clock()
    cache = make(fake, clock, retry_backoff=(5.0, 60.0))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k0", 600)  # first failure: 5 s
    fake.failing = False
    clock.now += 5
    cache.get_key(URL, "k1", 600)  # success
    fake.failing = True
    clock.now += 600  # the set is due; the refresh fails: the first step again, 5 s, not 60 s
    refresh(cache)
    fake.failing = False
    clock.now += 5
    refresh(cache)
    assert fake.fetches == 4
    assert cache.current_key(URL, "k1") is not None


def test_each_fetch_is_counted_once_as_ok_or_failed(key):
    fake = t.FakeJwks(keys=[key], failing=True)
    clock = Clock()
    cache = make(fake, clock, retry_backoff=(5.0,))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    fake.failing = False
    clock.now += 5
    cache.get_key(URL, "k1", 600)
    assert (cache.stats.ok, cache.stats.failed) == (1, 1)


def test_cold_fetch_failure_is_keys_unavailable():
    cache = make(t.FakeJwks(failing=True))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)


def test_a_tenant_that_never_loaded_is_not_asked_again_on_every_request(key):
    fake = t.FakeJwks(keys=[key], failing=True)
    clock = Clock()
    cache = make(fake, clock, retry_backoff=(5.0, 10.0))
    for _ in range(50):
        with pytest.raises(KeysUnavailable):
            cache.get_key(URL, "k1", 600)
    assert fake.fetches == 1


def test_a_tenant_that_never_loaded_is_retried_once_its_backoff_ends(key):
    fake = t.FakeJwks(keys=[key], failing=True)
    clock = Clock()
    cache = make(fake, clock, retry_backoff=(5.0, 10.0))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    fake.failing = False
    clock.now += 5
    assert cache.get_key(URL, "k1", 600) == cache.current_key(URL, "k1")
    assert fake.fetches == 2


def test_the_refresher_retries_on_the_backoff_schedule_not_the_refetch_interval(key):
    fake = t.FakeJwks(keys=[key], failing=True)
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=10, retry_backoff=(1.0, 2.0))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    clock.now += 1
    refresh(cache)
    assert fake.fetches == 2


def test_an_unexpected_fetch_error_leaves_the_tenant_fetchable(key):
    calls = []

    def breaks_once(url: str, timeout: float, max_bytes: int) -> bytes:
        calls.append(url)
        if len(calls) == 1:
            raise RuntimeError("connection dropped mid-body")
        return t.FakeJwks(keys=[key])(url, timeout, max_bytes)

    clock = Clock()
    cache = make(breaks_once, clock, retry_backoff=(1.0,))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    clock.now += 1
    assert cache.get_key(URL, "k1", 600) is not None
    assert len(calls) == 2


def test_only_rsa_and_ec_signing_keys_are_used(key):
    enc = dict(t.rsa_key("enc").jwk(), use="enc")
    oct_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"}
    body = json.dumps({"keys": [key.jwk(), enc, oct_key, t.ec_key("ec1").jwk(), "junk"]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k1", "ec1"}


def test_a_jwks_of_exactly_the_key_limit_is_used_and_one_more_key_is_refused(key):
    keys = [dict(key.jwk(), kid=f"k{n}") for n in range(3)]
    assert len(parse_jwks(json.dumps({"keys": keys}).encode(), max_keys=3)) == 3
    with pytest.raises(FetchError, match="more than the limit of 3"):
        parse_jwks(json.dumps({"keys": [*keys, key.jwk()]}).encode(), max_keys=3)


def test_an_ec_key_on_a_curve_jose_does_not_name_is_never_used(key):
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    k256 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256K1()).public_key(), as_dict=True)
    body = json.dumps({"keys": [key.jwk(), dict(k256, kid="k256", use="sig")]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k1"}


def test_an_rsa_key_under_1024_bits_is_never_used(key):
    weak = RSAAlgorithm.to_jwk(rsa.RSAPublicNumbers(65537, (1 << 767) | 0x12345).public_key(), as_dict=True)
    body = json.dumps({"keys": [key.jwk(), dict(weak, kid="weak", use="sig")]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k1"}


def test_an_rsa_key_of_exactly_1024_bits_is_used(key):
    smallest = RSAAlgorithm.to_jwk(rsa.RSAPublicNumbers(65537, (1 << 1023) | 0x12345).public_key(), as_dict=True)
    body = json.dumps({"keys": [key.jwk(), dict(smallest, kid="smallest", use="sig")]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k1", "smallest"}


def test_an_rsa_key_with_the_largest_exponent_go_takes_is_used(key):
    n = key.private.public_key().public_numbers().n
    largest = RSAAlgorithm.to_jwk(rsa.RSAPublicNumbers(2**31 - 1, n).public_key(), as_dict=True)
    body = json.dumps({"keys": [key.jwk(), dict(largest, kid="largest", use="sig")]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k1", "largest"}


def test_an_rsa_key_with_an_exponent_go_refuses_is_never_used(key):
    n = key.private.public_key().public_numbers().n
    huge = RSAAlgorithm.to_jwk(rsa.RSAPublicNumbers(2**31 + 1, n).public_key(), as_dict=True)
    body = json.dumps({"keys": [key.jwk(), dict(huge, kid="huge", use="sig")]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k1"}


def test_an_entry_publishing_a_private_key_is_skipped_without_building_it(key, monkeypatch):
    # Building a private JWK recovers its primes, which a crafted entry can make take minutes.
    leaked = dict(RSAAlgorithm.to_jwk(t.rsa_key("leaked").private, as_dict=True), kid="leaked")
    built: list[str] = []
    original = RSAAlgorithm.from_jwk
    monkeypatch.setattr(RSAAlgorithm, "from_jwk", staticmethod(lambda jwk: built.append(jwk["kid"]) or original(jwk)))
    assert set(parse_jwks(json.dumps({"keys": [key.jwk(), leaked]}).encode(), max_keys=10)) == {"k1"}
    assert built == ["k1"]


def test_a_replaced_key_is_in_place_before_the_generation_moves(key):
    # A verification records the generation first and then looks its key up without a lock, so a
    # reader that sees the new generation must find the new key, or it would cache an old-key token
    # as current.
    replaced = t.rsa_key("k1")
    seen_at_bump: list[object] = []

    class Watched(JwksCache):
        def __setattr__(self, name: str, value: object) -> None:
            if name == "generation" and "generation" in self.__dict__:
                seen_at_bump.append(self.current_key(URL, "k1"))
            super().__setattr__(name, value)

    fake = t.FakeJwks(keys=[key])
    cache = Watched(JwksSettings(), fetcher=fake)
    cache.get_key(URL, "k1", 600)
    fake.keys = [replaced]
    assert cache.prefetch(URL, 600)
    assert seen_at_bump == [cache.get_key(URL, "k1", 600)]
    assert seen_at_bump[0] != key.public


def test_jwks_with_too_many_keys_is_refused(key):
    body = json.dumps({"keys": [key.jwk()] * 11}).encode()
    with pytest.raises(FetchError):
        parse_jwks(body, max_keys=10)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"keys": 5}', b'{"keys": []}'])
def test_unusable_jwks_documents_are_fetch_errors(body):
    with pytest.raises(FetchError):
        parse_jwks(body, max_keys=10)


def test_a_required_tenant_without_keys_makes_the_cache_unready(key):
    fake = t.FakeJwks(keys=[key], failing=True)
    cache = make(fake)
    assert not cache.prefetch(URL, 600, required=True)
    assert not cache.ready()
    fake.failing = False
    cache._entries[URL].last_attempt = float("-inf")
    assert cache.prefetch(URL, 600, required=True)
    assert cache.ready()


def test_one_api_with_an_unreachable_jwks_does_not_make_the_server_unready(key):
    cache = make(t.FakeJwks(failing=True))
    with pytest.raises(KeysUnavailable):
        cache.get_key("https://typo.example.com/jwks.json", "k1", 600)
    assert cache.ready()


def test_requests_arriving_during_a_refetch_wait_for_it_instead_of_failing(key, waiting_future):
    fake = t.FakeJwks(keys=[key])
    cache = make(fake, min_refetch_interval=10)
    cache.get_key(URL, "k1", 600)
    waiting_future.waiting = 0  # the load above was waited for too
    cache._entries[URL].last_attempt = float("-inf")
    fake.keys.append(t.rsa_key("k2"))
    release, entered = threading.Event(), threading.Event()
    cache._fetcher = held(fake, release, entered)
    results: list[object] = []

    def lookup() -> None:
        try:
            results.append(cache.get_key(URL, "k2", 600))
        except UnknownKey as exc:
            results.append(exc)

    first = threading.Thread(target=lookup)  # its unknown kid starts the refetch, held until released
    later = [threading.Thread(target=lookup) for _ in range(9)]
    try:
        first.start()
        assert entered.wait(timeout=5)
        for th in later:
            th.start()
        # The refetch stays held until all 10 requests wait on it: the 9 later ones arrived during it.
        assert wait_for(lambda: waiting_future.waiting == 10)
    finally:
        release.set()
        for th in [first, *later]:
            th.join(timeout=30)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert len(results) == 10 and all(r is cache.current_key(URL, "k2") for r in results)
    assert fake.fetches == 2


def test_beyond_the_waiters_limit_an_unknown_kid_waits_only_while_the_refetch_is_young(key, waiting_future):
    # A slow IdP and a flood of random kids must not hold every call thread of the server.
    fake = t.FakeJwks(keys=[key])
    cache = make(fake, min_refetch_interval=10, waiters=2, overflow_wait=0.3)
    cache.get_key(URL, "k1", 600)
    waiting_future.waiting = 0  # the load above was waited for too
    cache._entries[URL].last_attempt = float("-inf")
    fake.keys.append(t.rsa_key("k2"))
    release, entered = threading.Event(), threading.Event()
    cache._fetcher = held(fake, release, entered)
    waited: list[object] = []
    waiters = [threading.Thread(target=lambda: waited.append(cache.get_key(URL, "k2", 600))) for _ in range(2)]
    try:
        waiters[0].start()
        assert entered.wait(timeout=5)
        waiters[1].start()
        assert wait_for(lambda: waiting_future.waiting == 2)
        time.sleep(0.3)  # the refetch is no longer young
        started = time.monotonic()
        for _ in range(9):
            with pytest.raises(UnknownKey):
                cache.get_key(URL, "k2", 600)
        assert time.monotonic() - started < 1.0
        assert cache.get_key(URL, "k1", 600) is not None  # a published kid never waits
    finally:
        release.set()
        for th in waiters:
            th.join(timeout=30)
    assert len(waited) == 2 and all(k is cache.current_key(URL, "k2") for k in waited)
    assert fake.fetches == 2


def test_beyond_the_waiters_limit_a_request_still_gets_what_a_quick_fetch_brings(key):
    fake = t.FakeJwks(keys=[key])
    cache = make(fake, min_refetch_interval=10, waiters=0, overflow_wait=5.0)
    cache.get_key(URL, "k1", 600)
    cache._entries[URL].last_attempt = float("-inf")
    fake.keys.append(t.rsa_key("k2"))
    release, entered = threading.Event(), threading.Event()
    cache._fetcher = held(fake, release, entered)
    threading.Timer(0.2, release.set).start()  # the IdP answers in 0.2 s
    assert cache.get_key(URL, "k2", 600) is not None


def test_beyond_the_waiters_limit_a_cold_request_waits_only_while_the_fetch_is_young(key):
    fake = t.FakeJwks(keys=[key])
    release, entered = threading.Event(), threading.Event()
    # The young time is counted from the fetch's start, before this thread's clock starts: 1 s of it
    # leaves a loaded machine room, and stays far below the 7 s fetch deadline a counted waiter gets.
    cache = make(held(fake, release, entered), waiters=1, overflow_wait=1.0)
    first: list[object] = []
    holder = threading.Thread(target=lambda: first.append(cache.get_key(URL, "k1", 600)))
    try:
        holder.start()
        assert entered.wait(timeout=5)
        assert wait_for(lambda: cache._waiting == 1)  # the holder takes the one waiter's place first
        started = time.monotonic()
        with pytest.raises(KeysUnavailable):
            cache.get_key(URL, "k1", 600)  # the one call thread left is given back within the young time
        assert 0.1 < time.monotonic() - started < 4.0
    finally:
        release.set()
        holder.join(timeout=30)
    assert first == [cache.current_key(URL, "k1")] and first[0] is not None


def test_beyond_the_waiters_limit_a_request_does_not_wait_on_the_retry_of_a_url_whose_last_fetch_failed(key):
    # An IdP that hangs on every retry must not hold the last call thread (the other APIs') each time.
    fake = t.FakeJwks(keys=[key], failing=True)
    now = [1000.0]
    release, entered = threading.Event(), threading.Event()
    # A young time far above the bound below, so a loaded machine cannot blur the two.
    cache = make(held(fake, release, entered), clock=lambda: now[0], waiters=1, overflow_wait=5.0)
    release.set()
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)  # the first fetch fails
    release.clear()
    now[0] += 60  # past the back-off: the next request fetches again, and the retry hangs
    fake.failing = False
    first: list[object] = []
    holder = threading.Thread(target=lambda: first.append(cache.get_key(URL, "k1", 600)))
    try:
        entered.clear()
        holder.start()
        assert entered.wait(timeout=5)
        assert wait_for(lambda: cache._waiting == 1)  # the holder takes the one waiter's place first
        started = time.monotonic()
        with pytest.raises(KeysUnavailable):
            cache.get_key(URL, "k1", 600)
        assert time.monotonic() - started < 2.0
    finally:
        release.set()
        holder.join(timeout=30)
    assert first == [cache.current_key(URL, "k1")] and first[0] is not None


def test_with_no_waiters_allowed_nor_young_time_an_unknown_kid_never_waits(key):
    fake = t.FakeJwks(keys=[key])
    cache = make(fake, min_refetch_interval=10, waiters=0, overflow_wait=0)
    assert cache.prefetch(URL, 600)  # not a request: start-up and the refresher wait on their own
    cache._entries[URL].last_attempt = float("-inf")
    fake.keys.append(t.rsa_key("k2"))
    release, entered = threading.Event(), threading.Event()
    cache._fetcher = held(fake, release, entered)  # the refetch cannot land before the refusal
    try:
        with pytest.raises(UnknownKey):
            cache.get_key(URL, "k2", 600)  # refused at once, but the refetch it started goes on
    finally:
        release.set()
    cache.settle()
    assert cache.get_key(URL, "k2", 600) is not None
    assert fake.fetches == 2


def test_a_fetch_whose_thread_cannot_start_fails_with_its_back_off_and_is_retried(key, monkeypatch):
    fake = t.FakeJwks(keys=[key])
    clock = Clock()
    cache = make(fake, clock, retry_backoff=(5.0,))

    def refuse(self):
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        with pytest.raises(KeysUnavailable):
            cache.get_key(URL, "k1", 600)
        with pytest.raises(KeysUnavailable):
            cache.get_key(URL, "k1", 600)  # during the back-off: refused at once, nothing stuck
    clock.now += 5
    assert cache.get_key(URL, "k1", 600) is not None
    assert fake.fetches == 1


def test_the_back_off_is_counted_from_the_failure_not_the_start(key):
    clock = Clock()
    calls: list[float] = []

    def slow_failure(url: str, timeout: float, max_bytes: int) -> bytes:
        calls.append(clock.now)
        clock.now += 1.5  # longer to fail than the first back-off step
        raise FetchError("timed out")

    cache = make(slow_failure, clock, retry_backoff=(1.0, 2.0))
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)  # failed at 1.5 s: refused until 2.5 s without a fetch
    assert calls == [1000.0]
    clock.now += 1.0
    with pytest.raises(KeysUnavailable):
        cache.get_key(URL, "k1", 600)
    assert calls == [1000.0, 1002.5]


def test_a_request_stops_waiting_on_a_fetch_at_the_deadline(key):
    release, entered = threading.Event(), threading.Event()
    cache = make(held(t.FakeJwks(keys=[key]), release, entered), fetch_timeout=0.1)  # deadline 1.2 s
    try:
        started = time.monotonic()
        with pytest.raises(KeysUnavailable):
            cache.get_key(URL, "k1", 600)
        assert 1.0 < time.monotonic() - started < 3.0
        started = time.monotonic()
        with pytest.raises(KeysUnavailable):  # the overdue fetch is still running: nobody waits on it again
            cache.get_key(URL, "k1", 600)
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
    cache.settle()
    assert cache.get_key(URL, "k1", 600) is not None  # the late answer is kept


def test_a_fetch_that_outlives_its_deadline_is_not_started_twice(key):
    fake = t.FakeJwks(keys=[key])
    release, entered = threading.Event(), threading.Event()
    clock = Clock()
    cache = make(held(fake, release, entered), clock, fetch_timeout=0.01, min_refetch_interval=0)
    try:
        with pytest.raises(KeysUnavailable):
            cache.get_key(URL, "k1", 600)
        for _ in range(5):
            clock.now += 60
            cache.refresh_due()
            with pytest.raises(KeysUnavailable):
                cache.get_key(URL, "k1", 600)
    finally:
        release.set()
    cache.settle()
    assert fake.fetches == 1


def test_a_slow_key_set_does_not_delay_the_refresh_of_another(key):
    slow = "https://slow.example.com/jwks.json"
    fake = t.FakeJwks(keys=[key])
    release, entered = threading.Event(), threading.Event()
    clock = Clock()
    cache = make(fake, clock, min_refetch_interval=0)
    cache.get_key(URL, "k1", 100)
    cache.get_key(slow, "k1", 100)
    cache._fetcher = lambda url, *rest: (held(fake, release, entered) if url == slow else fake)(url, *rest)
    try:
        clock.now += 90
        cache.refresh_due()  # both due: the slow one is held, the other must still be refreshed
        assert wait_for(lambda: fake.fetches == 3)
        assert entered.wait(5)  # its thread may start after the other fetch is done
    finally:
        release.set()
    cache.settle()
    assert fake.fetches == 4


def test_key_sets_whose_urls_differ_only_in_the_query_show_the_oldest_age(key):
    clock = Clock()
    cache = make(t.FakeJwks(keys=[key]), clock)
    cache.get_key("https://idp.example.com/keys?p=policy_a", "k1", 600)
    clock.now += 500
    cache.get_key("https://idp.example.com/keys?p=policy_b", "k1", 600)
    clock.now += 1
    assert cache.ages() == {"https://idp.example.com/keys?***": 501}


def test_credentials_in_a_jwks_url_never_reach_logs_or_metric_labels(key, caplog):
    import logging

    from plugin.logs import shown_url

    secret_url = "https://user:s3cret@idp.example.com/.well-known/jwks.json"
    cache = make(t.FakeJwks(keys=[key]))
    with caplog.at_level(logging.INFO, logger="plugin.jwks"):
        cache.get_key(secret_url, "k1", 600)
    assert "s3cret" not in caplog.text
    assert list(cache.ages()) == ["https://***@idp.example.com/.well-known/jwks.json"]
    assert shown_url(URL) == URL


@pytest.fixture(scope="module")
def certified() -> tuple[object, object]:
    """Two keys published as Auth0 publishes them: n and e, and the key's certificate in x5c."""
    from plugin.devstack.idp import SigningKey

    return SigningKey.generate(), SigningKey.generate()


def test_a_key_whose_certificate_names_another_key_is_never_used(certified):
    first, second = certified
    mismatched = dict(first.jwk(), x5c=second.jwk()["x5c"])
    assert parse_jwks(json.dumps({"keys": [first.jwk()]}).encode(), max_keys=10) != {}
    with pytest.raises(FetchError):
        parse_jwks(json.dumps({"keys": [mismatched]}).encode(), max_keys=10)


@pytest.mark.parametrize("x5c", [["@@@"], "not a list", [5]])
def test_a_key_whose_x5c_is_not_a_list_of_base64_certificates_is_never_used(certified, x5c):
    first, second = certified
    body = json.dumps({"keys": [dict(first.jwk(), x5c=x5c), second.jwk()]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {second.kid}


def test_an_x5c_of_base64_pem_text_is_read_as_the_gateway_s_fallback_reads_it(certified):
    from cryptography.hazmat.primitives import serialization

    first, _ = certified
    pem = base64.b64encode(first.certificate.public_bytes(serialization.Encoding.PEM)).decode()
    assert set(parse_jwks(json.dumps({"keys": [dict(first.jwk(), x5c=[pem])]}).encode(), max_keys=10)) == {first.kid}


def test_a_line_break_in_a_key_number_is_skipped_as_go_skips_it(key):
    n = key.jwk()["n"]
    body = json.dumps({"keys": [dict(key.jwk(), n=n[:40] + "\r\n" + n[40:])]}).encode()
    assert parse_jwks(body, max_keys=10)["k1"] == key.public


def test_a_key_number_in_the_standard_base64_alphabet_makes_its_key_unused(key):
    n = key.public.public_numbers().n
    standard = base64.b64encode(n.to_bytes(256, "big")).decode().rstrip("=")
    assert "+" in standard or "/" in standard
    body = json.dumps({"keys": [dict(key.jwk(), n=standard), dict(t.rsa_key("k2").jwk())]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k2"}


def usable_kids(*entries: Any) -> set[str]:
    try:
        return set(parse_jwks(json.dumps({"keys": list(entries)}).encode(), max_keys=10))
    except FetchError:
        return set()


@pytest.mark.parametrize("member", ["alg", "crv", "x5u", "x5t", "x5t#S256", "kid"])
@pytest.mark.parametrize("value", [5, True, ["RS256"], {"a": "b"}])
def test_a_member_go_jose_reads_as_a_string_that_is_of_another_type_makes_its_key_unused(key, member, value):
    other = t.rsa_key("k2")
    assert usable_kids(dict(key.jwk(), **{member: value}), other.jwk()) == {"k2"}


@pytest.mark.parametrize("member", ["alg", "crv", "x5u", "x5t", "x5t#S256"])
def test_a_string_member_set_to_null_counts_as_absent(key, member):
    assert usable_kids(dict(key.jwk(), **{member: None})) == {"k1"}


@pytest.mark.parametrize(("entry", "member"), [("rsa", "x"), ("rsa", "y"), ("rsa", "k"), ("ec", "n"), ("ec", "e")])
@pytest.mark.parametrize("value", ["@@@", "A", "+/+/", 5])
def test_a_key_number_its_key_type_does_not_use_that_is_not_base64url_makes_its_key_unused(entry, member, value):
    signing = t.rsa_key("k1") if entry == "rsa" else t.ec_key("k1")
    assert usable_kids(dict(signing.jwk(), **{member: "AAAA"})) == {"k1"}
    assert usable_kids(dict(signing.jwk(), **{member: value}), t.rsa_key("k2").jwk()) == {"k2"}


def test_an_entry_naming_a_member_twice_is_never_used(key):
    entry = json.dumps(key.jwk())
    repeated = entry[:-1] + ', "kid": ' + json.dumps(key.kid) + "}"
    body = ('{"keys": [' + repeated + ", " + json.dumps(t.rsa_key("k2").jwk()) + "]}").encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k2"}


def test_a_member_named_twice_inside_an_unknown_member_leaves_the_entry_used(key):
    entry = json.dumps(key.jwk())[:-1] + ', "ext": {"a": 1, "a": 2}}'
    assert set(parse_jwks(('{"keys": [' + entry + "]}").encode(), max_keys=10)) == {"k1"}


def test_a_document_naming_keys_twice_takes_the_last(key):
    body = ('{"keys": [], "keys": [' + json.dumps(key.jwk()) + "]}").encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k1"}


def test_a_key_with_kid_null_answers_the_empty_kid_as_a_key_without_kid(key):
    assert set(parse_jwks(json.dumps({"keys": [dict(key.jwk(), kid=None)]}).encode(), max_keys=10)) == {""}


def test_the_keys_member_is_found_in_any_letter_case_the_last_one_winning(key):
    other = t.rsa_key("k2")
    body = json.dumps({"keys": [key.jwk()], "KEYS": [other.jwk()]}).encode()
    assert set(parse_jwks(body, max_keys=10)) == {"k2"}
    assert set(parse_jwks(json.dumps({"Keys": [key.jwk()]}).encode(), max_keys=10)) == {"k1"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("place", ["document", "entry", "nested"])
def test_a_nan_or_infinity_literal_anywhere_makes_a_key_set_not_json(key, literal, place):
    """Python's json reads these literals; Go's decoder refuses the whole body."""
    entry = json.dumps(key.jwk())
    text = {"document": '{"keys": [' + entry + '], "n": ' + literal + "}",
            "entry": '{"keys": [' + entry[:-1] + ', "n2": ' + literal + "}]}",
            "nested": '{"keys": [' + entry[:-1] + ', "ext": {"a": [1, ' + literal + "]}}]}"}[place]
    assert set(parse_jwks(text.replace(literal, "1").encode(), max_keys=10)) == {"k1"}
    with pytest.raises(FetchError, match="not JSON"):
        parse_jwks(text.encode(), max_keys=10)


@pytest.mark.parametrize("encode", [lambda text: b"\xef\xbb\xbf" + text.encode(), lambda text: text.encode("utf-16")])
def test_a_key_set_with_a_byte_order_mark_or_in_utf16_is_not_json(key, encode):
    with pytest.raises(FetchError, match="not JSON"):
        parse_jwks(encode(json.dumps({"keys": [key.jwk()]})), max_keys=10)
