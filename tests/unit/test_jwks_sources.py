"""Several JWKS URLs for one API (Tyk OAS jwksURIs): the first key set publishing a token's kid verifies it."""

from __future__ import annotations

import base64
import json
import threading
import time

import grpc
import grpc_testing
import pytest

from plugin.auth import Authenticator, ConfigStore
from plugin.config import parse_config_data
from plugin.coprocess import Object, object_pb2
from plugin.errors import ConfigurationError, KeysUnavailable
from plugin.hooks import HookRouter
from plugin.jwks import FetchError, JwksCache, JwksSettings
from plugin.server import DispatcherService
from plugin.verify import Verifier
from tests.support import tokens as t
from tests.support.objects import AUTH_HOOK, auth_object, config_data

OLD = "https://old-tenant.example.auth0.com/.well-known/jwks.json"
NEW = "https://new-tenant.example.auth0.com/.well-known/jwks.json"
_SERVICE = object_pb2.DESCRIPTOR.services_by_name["Dispatcher"]


class KeySets:
    """JWKS endpoints by URL for JwksCache(fetcher=...); a URL set to None answers 503."""

    def __init__(self, **by_url: list[t.SigningKey] | None) -> None:
        self.by_url = dict(by_url)
        self.fetched: list[str] = []

    def __call__(self, url: str, timeout: float, max_bytes: int) -> bytes:
        self.fetched.append(url)
        keys = self.by_url.get(url)
        if keys is None:
            raise FetchError("HTTP 503")
        return json.dumps(t.jwks(*keys)).encode()


@pytest.fixture(scope="module")
def old_key() -> t.SigningKey:
    return t.rsa_key("old-tenant-key")


@pytest.fixture(scope="module")
def new_key() -> t.SigningKey:
    return t.rsa_key("new-tenant-key")


class Plugin:
    """The servicer behind grpcio-testing's mock channel, for an API listing several JWKS URLs."""

    def __init__(self, sets: KeySets, jwt_source: list[str]) -> None:
        self.jwks = JwksCache(JwksSettings(min_refetch_interval=10.0), fetcher=sets)
        self.authenticator = Authenticator(Verifier(self.jwks), ConfigStore(defaults={}), clock=time.time)
        self.server = grpc_testing.server_from_dictionary(
            {_SERVICE: DispatcherService(HookRouter(AUTH_HOOK, self.authenticator.authenticate))},
            grpc_testing.strict_real_time())
        self.config = config_data(jwt_source=jwt_source)

    def dispatch(self, token: str) -> Object:
        obj = auth_object(f"Bearer {token}", config=self.config)
        call = self.server.invoke_unary_unary(_SERVICE.methods_by_name["Dispatch"], (), obj, None)
        reply, _, code, _ = call.termination()
        assert code is grpc.StatusCode.OK
        return reply

    def refetch(self, url: str) -> None:
        self.jwks._entries[url].last_attempt = float("-inf")
        self.jwks.prefetch(url, 600)


def dispatch(sets: KeySets, token: str, jwt_source: list[str]) -> Object:
    return Plugin(sets, jwt_source).dispatch(token)


def refused(reply: Object) -> tuple[int, str]:
    return reply.request.return_overrides.response_code, reply.request.return_overrides.response_error


def test_a_token_from_the_second_key_set_is_verified_by_it(old_key, new_key):
    sets = KeySets(**{OLD: [old_key], NEW: [new_key]})
    reply = dispatch(sets, t.sign(new_key), [OLD, NEW])
    assert reply.session.alias == t.claims()["sub"] and refused(reply) == (-1, "")


def test_a_token_from_the_first_key_set_needs_no_other(old_key, new_key):
    sets = KeySets(**{OLD: [old_key], NEW: [new_key]})
    assert refused(dispatch(sets, t.sign(old_key), [OLD, NEW])) == (-1, "")
    assert sets.fetched == [OLD]


def test_tokens_from_the_second_key_set_never_refetch_the_first(old_key, new_key):
    sets = KeySets(**{OLD: [old_key], NEW: [new_key]})
    plugin = Plugin(sets, [OLD, NEW])
    clock_now = time.monotonic()
    for n in range(3):
        for entry in plugin.jwks._entries.values():  # as if the refetch interval had passed each time
            entry.last_attempt = clock_now - 3600
        assert refused(plugin.dispatch(t.sign(new_key, t.claims(sub=f"client-{n}")))) == (-1, "")
    assert sets.fetched == [OLD, NEW]


def test_a_kid_no_key_set_publishes_is_refused_as_with_one_set(old_key, new_key):
    sets = KeySets(**{OLD: [old_key], NEW: [new_key]})
    assert refused(dispatch(sets, t.sign(t.rsa_key("stranger")), [OLD, NEW])) == (403, "Key not authorized")


def test_a_key_set_that_cannot_be_fetched_does_not_stop_the_others(new_key):
    sets = KeySets(**{OLD: None, NEW: [new_key]})
    assert refused(dispatch(sets, t.sign(new_key), [OLD, NEW])) == (-1, "")


def test_while_a_key_set_that_failed_is_fetched_again_tokens_of_another_set_do_not_wait_for_it(new_key):
    # As native JWT moves a set it could not fetch behind the loaded ones: an outage of one tenant
    # must not hold the API's other tenant's tokens for a fetch deadline at each of its retries.
    sets = KeySets(**{OLD: None, NEW: [new_key]})
    plugin = Plugin(sets, [OLD, NEW])
    plugin.jwks.settings = JwksSettings(min_refetch_interval=10.0, fetch_timeout=30.0)
    assert refused(plugin.dispatch(t.sign(new_key))) == (-1, "")
    retrying, release = threading.Event(), threading.Event()

    def hanging(url: str, timeout: float, max_bytes: int) -> bytes:
        if url == OLD:
            retrying.set()
            release.wait(timeout=60)
        return sets(url, timeout, max_bytes)

    plugin.jwks._fetcher = hanging
    plugin.jwks._entries[OLD].next_retry = 0.0
    plugin.jwks.refresh_due()  # the refresher retries the failed set; the endpoint now hangs
    assert retrying.wait(timeout=5)
    answered: list[tuple[int, str]] = []
    caller = threading.Thread(target=lambda: answered.append(refused(plugin.dispatch(t.sign(new_key, t.claims(sub="other"))))))
    try:
        caller.start()
        caller.join(timeout=20)  # before, the call waited out the retry: 61 s
        assert answered == [(-1, "")]
    finally:
        release.set()
        caller.join(timeout=60)


def test_with_the_only_publishing_set_unavailable_the_token_is_refused(old_key, new_key):
    sets = KeySets(**{OLD: None, NEW: [new_key]})
    assert refused(dispatch(sets, t.sign(old_key), [OLD, NEW])) == (403, "Key not authorized")


def test_a_kid_only_an_unavailable_set_may_publish_is_refused_as_keys_unavailable(old_key, new_key):
    # Not as an unknown kid: the set that could not be fetched may well publish it (the IdP is down).
    verifier = Verifier(JwksCache(JwksSettings(min_refetch_interval=10.0), fetcher=KeySets(**{OLD: None, NEW: [new_key]})))
    config = parse_config_data(config_data(jwt_source=[OLD, NEW]), environ={})
    with pytest.raises(KeysUnavailable):
        verifier.verify(t.sign(old_key), config)


def test_a_kid_published_twice_is_verified_by_the_first_set_listed(old_key):
    impostor = t.SigningKey(kid=old_key.kid, private=t.rsa_key().private, alg="RS256")
    sets = KeySets(**{OLD: [old_key], NEW: [impostor]})
    assert refused(dispatch(sets, t.sign(impostor), [OLD, NEW])) == (403, "Key not authorized")
    assert refused(dispatch(sets, t.sign(old_key), [OLD, NEW])) == (-1, "")


def test_a_cached_token_from_the_second_set_stays_cached_until_its_key_leaves_that_set(old_key, new_key):
    sets = KeySets(**{OLD: [old_key], NEW: [new_key]})
    plugin = Plugin(sets, [OLD, NEW])
    token = t.sign(new_key)
    assert refused(plugin.dispatch(token)) == (-1, "")
    plugin.refetch(OLD)  # another set's refresh keeps it
    assert refused(plugin.dispatch(token)) == (-1, "")
    assert plugin.authenticator.hits == 1
    sets.by_url[NEW] = [t.rsa_key("newer-tenant-key")]
    plugin.refetch(NEW)
    assert refused(plugin.dispatch(token)) == (403, "Key not authorized")


# -- configuration ------------------------------------------------------------------------------------

def parse(**data):
    return parse_config_data(json.dumps(data), environ={})


def test_jwt_source_takes_a_list_of_jwks_urls_plain_or_base64_in_order_without_repeats():
    encoded = base64.b64encode(NEW.encode()).decode()
    assert parse(jwt_source=[OLD, encoded, OLD]).key_source.jwks_urls == (OLD, NEW)


@pytest.mark.parametrize("listed", [[], [OLD, "not a url"], [OLD, 5], ["http://idp.example/jwks"]])
def test_a_list_that_is_not_only_usable_jwks_urls_is_refused_naming_jwt_source(listed):
    with pytest.raises(ConfigurationError) as info:
        parse(jwt_source=listed)
    assert info.value.key == "jwt_source"


def test_a_list_with_another_key_source_is_refused():
    with pytest.raises(ConfigurationError) as info:
        parse(jwt_source=[OLD], jwt_source_env="KEYS")
    assert info.value.key == "jwt_source_env"
