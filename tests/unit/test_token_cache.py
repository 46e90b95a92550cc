"""Verified tokens are remembered by hash until exp, and forgotten when their key leaves the JWKS."""

from __future__ import annotations

import time

from plugin.auth import STAMP_MEMO_SIZE, Authenticator, CachedAuth, ConfigStore, TokenCache
from plugin.jwks import JwksCache
from plugin.verify import Verifier
from tests.support import tokens as t
from tests.support.objects import auth_object, config_data


def test_a_repeated_token_is_served_from_the_verified_cache(plugin, signing_key):
    token = "Bearer " + t.sign(signing_key)
    first = plugin.dispatch(auth_object(token))
    second = plugin.dispatch(auth_object(token))
    assert plugin.authenticator.misses == 1
    assert plugin.authenticator.hits == 1
    assert first.session.apply_policies == second.session.apply_policies
    assert first.metadata["token"] == second.metadata["token"]


def test_the_cache_never_holds_the_token_itself(plugin, signing_key):
    token = t.sign(signing_key)
    plugin.dispatch(auth_object("Bearer " + token))
    for key in plugin.authenticator._cache.keys():  # noqa: SIM118 - TokenCache.keys(), not a dict
        assert token.encode() not in repr(key).encode()
        assert isinstance(key[-1], bytes) and len(key[-1]) == 32


def test_failures_are_never_cached(plugin, signing_key):
    token = "Bearer " + t.sign(signing_key, t.claims(pol=t.DROP))
    plugin.dispatch(auth_object(token))
    plugin.dispatch(auth_object(token))
    assert plugin.authenticator.hits == 0


def test_a_cached_token_is_refused_once_it_expires(make_plugin, signing_key):
    now = [time.time()]
    plugin = make_plugin(clock=lambda: now[0])
    token = "Bearer " + t.sign(signing_key, t.claims(exp=int(now[0]) + 60))
    assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    now[0] += 120
    reply = plugin.dispatch(auth_object(token))
    assert reply.request.return_overrides.response_error == "Key not authorized: token has expired"


def test_a_cached_token_is_refused_at_the_second_it_expires(make_plugin, signing_key):
    start = float(int(time.time()))
    now = [start]
    plugin = make_plugin(clock=lambda: now[0])
    token = "Bearer " + t.sign(signing_key, t.claims(exp=int(start) + 60))
    assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    now[0] = start + 60
    reply = plugin.dispatch(auth_object(token))
    assert reply.request.return_overrides.response_error == "Key not authorized: token has expired"


def test_a_cached_token_is_served_from_the_cache_through_the_exp_skew(make_plugin, signing_key):
    start = float(int(time.time()))
    now = [start]
    plugin = make_plugin(clock=lambda: now[0])
    token = "Bearer " + t.sign(signing_key, t.claims(exp=int(start) + 60))
    config = config_data(jwt_expires_at_validation_skew=30)
    for offset in (0, 80):
        now[0] = start + offset
        assert plugin.dispatch(auth_object(token, config=config)).request.return_overrides.response_code == -1
    assert (plugin.authenticator.misses, plugin.authenticator.hits) == (1, 1)


def test_a_token_without_exp_is_verified_afresh_after_300_seconds(make_plugin, signing_key):
    start = float(int(time.time()))
    now = [start]
    plugin = make_plugin(clock=lambda: now[0])
    token = "Bearer " + t.sign(signing_key, t.claims(exp=t.DROP))
    for offset in (0, 299.5, 300):
        now[0] = start + offset
        assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    assert (plugin.authenticator.misses, plugin.authenticator.hits) == (2, 1)


def test_the_cache_holds_as_many_tokens_as_its_size_and_drops_the_oldest_first():
    cache = TokenCache(size=2)
    entry = CachedAuth(reply=b"", policies=(), base_policy=None, jwks_url=None, kid=None, key=None,
                       generation=0, exp=None, expires_at=float("inf"))
    keys = [(1, "org", bytes([n]) * 32) for n in range(3)]
    for key in keys:
        cache.put(key, entry)
    assert cache.keys() == keys[1:]


def test_the_serialized_deadlines_are_remembered_for_a_bounded_number_of_seconds(make_plugin, signing_key):
    now = [float(int(time.time()))]
    plugin = make_plugin(clock=lambda: now[0])
    token = "Bearer " + t.sign(signing_key, t.claims(exp=t.DROP))
    for _ in range(STAMP_MEMO_SIZE + 1):  # one more second than the memo holds, each a new deadline
        now[0] += 1
        plugin.dispatch(auth_object(token))
    assert len(plugin.authenticator._stamps) <= STAMP_MEMO_SIZE


def test_a_cache_of_one_token_serves_that_token_from_the_cache(idp, signing_key):
    authenticator = Authenticator(Verifier(JwksCache(fetcher=idp)), ConfigStore(defaults={}), cache_size=1)
    token = "Bearer " + t.sign(signing_key)
    for _ in range(2):
        obj = auth_object(token)
        authenticator.authenticate(obj)
        assert obj.session.alias == t.claims()["sub"]
    assert (authenticator.misses, authenticator.hits) == (1, 1)


def test_a_cached_token_with_a_fractional_exp_is_refused_from_its_whole_second(make_plugin, signing_key):
    # exp is judged in whole seconds: 0.9 past a second is that second, for the cache as for a verify.
    start = float(int(time.time()))
    now = [start]
    plugin = make_plugin(clock=lambda: now[0])
    token = "Bearer " + t.sign(signing_key, t.claims(exp=start + 60.9))
    assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    now[0] = start + 60.5
    reply = plugin.dispatch(auth_object(token))
    assert reply.request.return_overrides.response_error == "Key not authorized: token has expired"


def test_a_cache_hit_marks_its_key_set_in_use(plugin, signing_key, monkeypatch):
    touched: list[str] = []
    monkeypatch.setattr(plugin.jwks, "touch", touched.append)
    token = "Bearer " + t.sign(signing_key)
    plugin.dispatch(auth_object(token))
    plugin.dispatch(auth_object(token))
    assert touched == list(plugin.jwks._entries)


def test_a_cached_token_is_refused_once_its_key_is_revoked(make_plugin, idp, signing_key, next_key):
    now = [time.time()]
    plugin = make_plugin(clock=lambda: now[0])
    token = "Bearer " + t.sign(next_key)
    assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    idp.keys.remove(next_key)
    _refetch(plugin)
    reply = plugin.dispatch(auth_object(token))
    assert reply.request.return_overrides.response_code == 403


def _refetch(plugin) -> None:
    url = next(iter(plugin.jwks._entries))
    plugin.jwks._entries[url].last_attempt = float("-inf")
    plugin.jwks.prefetch(url, 600)


def test_a_cached_token_is_refused_once_its_kid_names_another_key(plugin, idp, signing_key):
    token = "Bearer " + t.sign(signing_key)
    assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    idp.keys[0] = t.rsa_key(signing_key.kid)  # same kid, new key material
    _refetch(plugin)
    reply = plugin.dispatch(auth_object(token))
    assert reply.request.return_overrides.response_code == 403
    assert plugin.authenticator.hits == 0


def test_cached_tokens_of_other_keys_stay_cached_through_a_rotation(plugin, idp, signing_key, next_key):
    token = "Bearer " + t.sign(signing_key)
    plugin.dispatch(auth_object(token))
    idp.keys.remove(next_key)
    _refetch(plugin)
    assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    assert plugin.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    assert (plugin.authenticator.hits, plugin.authenticator.misses) == (2, 1)


def test_the_same_token_is_cached_separately_per_api_configuration(plugin, signing_key):
    from tests.support.objects import config_data

    token = "Bearer " + t.sign(signing_key)
    plugin.dispatch(auth_object(token))
    reply = plugin.dispatch(auth_object(token, config=config_data(audience="https://other-api")))
    assert reply.request.return_overrides.response_code == 401


def test_the_same_token_is_cached_separately_per_org(plugin, signing_key):
    token = "Bearer " + t.sign(signing_key)
    first = plugin.dispatch(auth_object(token, org_id="org-a", api_id="api-a"))
    second = plugin.dispatch(auth_object(token, org_id="org-b", api_id="api-b"))
    assert first.metadata["token"].startswith("org-a")
    assert second.metadata["token"].startswith("org-b")
    assert second.session.metadata["TykJWTSessionID"] == second.metadata["token"]
    assert plugin.authenticator.hits == 0


def _auth_check_with_max_stale_100(idp):
    from plugin.auth import Authenticator, ConfigStore
    from plugin.hooks import HookRouter
    from plugin.jwks import JwksCache, JwksSettings
    from plugin.verify import Verifier
    from tests.support.objects import AUTH_HOOK

    now = [1_000_000.0]
    jwks = JwksCache(JwksSettings(max_stale=100), fetcher=idp, clock=lambda: now[0])
    authenticator = Authenticator(Verifier(jwks), ConfigStore(defaults={}))
    return now, jwks, authenticator, HookRouter(AUTH_HOOK, authenticator.authenticate)


def test_cached_tokens_are_served_while_their_key_set_is_past_its_ttl_by_less_than_max_stale(idp, signing_key):
    now, jwks, authenticator, router = _auth_check_with_max_stale_100(idp)
    token = "Bearer " + t.sign(signing_key)
    assert router.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    idp.failing = True
    now[0] += 600 + 99  # past the key set's TTL (jwks_cache_ttl 600), not yet by max-stale
    jwks.refresh_due()
    assert router.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    assert (authenticator.hits, authenticator.misses) == (1, 1)


def test_cached_tokens_are_refused_once_their_key_set_is_past_max_stale(idp, signing_key):
    now, jwks, _, router = _auth_check_with_max_stale_100(idp)
    token = "Bearer " + t.sign(signing_key)
    assert router.dispatch(auth_object(token)).request.return_overrides.response_code == -1
    idp.failing = True
    now[0] += 600 + 101  # past the key set's TTL (jwks_cache_ttl 600) and max-stale
    jwks.refresh_due()
    reply = router.dispatch(auth_object(token))
    assert (reply.request.return_overrides.response_code, reply.request.return_overrides.response_error) == (
        403, "Key not authorized")
