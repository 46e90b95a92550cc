"""The token is read from the header, query parameter and cookie native JWT's auth_configs name."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from plugin.config import parse_config_data, parse_token_source
from plugin.coprocess import MiniRequestObject
from plugin.errors import ConfigurationError
from plugin.extract import DEFAULT_SOURCE, TokenSource, canonical_header, cookie_value
from tests.support import tokens as t
from tests.support.objects import auth_object, config_data


def request(headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> MiniRequestObject:
    message = MiniRequestObject()
    message.headers.update(headers or {})
    message.params.update(params or {})
    return message


def source(**settings: Any) -> TokenSource:
    return parse_token_source(settings)


# -- where the token is read -------------------------------------------------------------------------------

def test_without_settings_the_token_comes_from_the_authorization_header():
    assert parse_token_source({}) is DEFAULT_SOURCE
    assert DEFAULT_SOURCE.extract(request({"Authorization": "Bearer a.b.c"})) == "Bearer a.b.c"


def test_a_configured_header_name_is_looked_up_in_go_canonical_form():
    assert source(auth_header_name="x-api_token").header == "X-Api_token"
    assert source(auth_header_name="x-api_token").extract(request({"X-Api_token": "a.b.c"})) == "a.b.c"


def test_the_authorization_header_is_not_read_when_another_header_is_configured():
    assert source(auth_header_name="X-Token").extract(request({"Authorization": "Bearer a.b.c"})) == ""


def test_a_non_empty_query_parameter_wins_over_the_header():
    found = source(use_param=True, param_name="access_token")
    assert found.extract(request({"Authorization": "Bearer h.h.h"}, {"access_token": "p.p.p"})) == "p.p.p"


def test_an_empty_query_parameter_leaves_the_header_token():
    found = source(use_param=True, param_name="access_token")
    assert found.extract(request({"Authorization": "Bearer h.h.h"}, {"access_token": ""})) == "Bearer h.h.h"


def test_a_request_without_the_cookie_leaves_the_header_token():
    found = source(use_cookie=True, cookie_name="jwt")
    assert found.extract(request({"Authorization": "Bearer h.h.h", "Cookie": "theme=dark"}, {})) == "Bearer h.h.h"


def test_a_non_empty_cookie_wins_over_the_parameter_and_the_header():
    found = source(use_param=True, param_name="p", use_cookie=True, cookie_name="jwt")
    sent = request({"Authorization": "h.h.h", "Cookie": "theme=dark; jwt=c.c.c"}, {"p": "p.p.p"})
    assert found.extract(sent) == "c.c.c"


def test_parameter_and_cookie_names_default_to_the_header_name():
    found = source(auth_header_name="X-Token", use_param=True, use_cookie=True)
    assert (found.header, found.param, found.cookie) == ("X-Token", "X-Token", "X-Token")


def test_with_the_header_off_the_default_names_are_authorization_whatever_the_header_name():
    found = source(auth_header_name="X-Token", disable_header=True, use_param=True, use_cookie=True)
    assert (found.header, found.param, found.cookie) == (None, "Authorization", "Authorization")
    assert found.extract(request({"X-Token": "h.h.h"})) == ""


def test_describe_names_every_place_a_client_may_put_the_token():
    found = source(auth_header_name="X-Token", use_param=True, param_name="at", use_cookie=True, cookie_name="jwt")
    assert found.describe() == "the X-Token header or the query parameter 'at' or the cookie 'jwt'"


@pytest.mark.parametrize(("name", "canonical"), [
    ("authorization", "Authorization"), ("x-API-token", "X-Api-Token"), ("-x", "-X"), ("x--y", "X--Y"),
    ("x_y", "X_y"), ("X9-a.b", "X9-A.b"),
])
def test_canonical_header_follows_go_textproto(name: str, canonical: str):
    assert canonical_header(name) == canonical


# -- cookies, as Go's Request.Cookie reads them ---------------------------------------------------------------

@pytest.mark.parametrize(("header", "expected"), [
    ("jwt=a.b.c", "a.b.c"),
    ("  theme=dark ;  jwt=a.b.c  ; x=1", "a.b.c"),
    ('jwt="a.b.c"', "a.b.c"),
    ("jwt=a.b.c; jwt=d.e.f", "a.b.c"),
    ('jwt=""; jwt=d.e.f', ""),  # an empty quoted value is a valid cookie, and the first one wins
    ('jwt="; jwt=d.e.f', "d.e.f"),  # a lone quote is not a quoted value: invalid, skipped
    ('jwt="a.b.c; jwt=d.e.f', "d.e.f"),  # nor is a value that opens a quote and never closes it
    ('jwt=a.b.c"; jwt=d.e.f', "d.e.f"),  # or closes one it never opened
    ('jwt=a"b; jwt=d.e.f', "d.e.f"),  # an invalid value is skipped, the next one taken
    ("jwt=a\\b", ""),
    ("jwt=caf\u00e9", ""),
    ("JWT=a.b.c", ""),  # names are case-sensitive
    ("jwt =a.b.c", "a.b.c"),  # the name is trimmed
    ("jwt= a.b", " a.b"),  # the value is not
    ("jwt", ""),
    ("jwt=", ""),
    ("", ""),
])
def test_cookie_value_matches_go(header: str, expected: str):
    assert cookie_value(header, "jwt") == expected


def test_a_request_with_more_cookies_than_go_reads_has_none():
    many = "; ".join(["x=1"] * 2999 + ["jwt=a.b.c"])  # 3000 cookies: Go's net/http reads no more
    assert cookie_value(many, "jwt") == "a.b.c"
    assert cookie_value(many + "; y=2", "jwt") == ""


# -- bad settings name themselves ------------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "key"), [
    ({"disable_header": True}, "disable_header"),
    ({"auth_header_name": "X Token"}, "auth_header_name"),
    ({"auth_header_name": "X-Token\n"}, "auth_header_name"),
    ({"cookie_name": "a=b", "use_cookie": True}, "cookie_name"),
    ({"use_param": "yes"}, "use_param"),
    ({"use_cookie": 1}, "use_cookie"),
    ({"param_name": 5}, "param_name"),
])
def test_a_bad_token_location_setting_is_named(settings: dict[str, Any], key: str):
    with pytest.raises(ConfigurationError) as raised:
        parse_config_data(config_data(**settings))
    assert raised.value.key == key


# -- through the auth check ------------------------------------------------------------------------------------

def dispatch_with(plugin, signing_key, settings: dict[str, Any], *, headers: dict[str, str] | None = None,
                  params: dict[str, str] | None = None, authorization: str | None = None):
    obj = auth_object(authorization, config=config_data(**settings))
    token = t.sign(signing_key)
    obj.request.headers.update({k: v.replace("TOKEN", token) for k, v in (headers or {}).items()})
    obj.request.params.update({k: v.replace("TOKEN", token) for k, v in (params or {}).items()})
    return plugin.dispatch(obj)


def granted(reply) -> bool:
    return reply.request.return_overrides.response_code == -1 and list(reply.session.apply_policies) == ["auth0-policy"]


def test_a_token_in_the_configured_header_is_accepted(plugin, signing_key):
    assert granted(dispatch_with(plugin, signing_key, {"auth_header_name": "X-Auth0-Token"},
                                 headers={"X-Auth0-Token": "Bearer TOKEN"}))


def test_a_token_in_the_query_parameter_is_accepted(plugin, signing_key):
    assert granted(dispatch_with(plugin, signing_key, {"use_param": True, "param_name": "access_token"},
                                 params={"access_token": "TOKEN"}))


def test_a_token_in_the_cookie_is_accepted(plugin, signing_key):
    assert granted(dispatch_with(plugin, signing_key, {"use_cookie": True, "cookie_name": "at"},
                                 headers={"Cookie": "theme=dark; at=TOKEN"}))


def test_a_token_only_in_authorization_is_missing_when_another_header_is_configured(plugin, signing_key):
    reply = dispatch_with(plugin, signing_key, {"auth_header_name": "X-Auth0-Token"},
                          authorization="Bearer " + t.sign(signing_key))
    assert (reply.request.return_overrides.response_code, reply.request.return_overrides.response_error) == (
        400, "Authorization field missing")


def test_a_token_from_a_parameter_gets_the_same_session_key_as_from_the_header(plugin, signing_key):
    reply = dispatch_with(plugin, signing_key, {"use_param": True, "param_name": "at"}, params={"at": "TOKEN"})
    assert reply.metadata["token"] == "default" + hashlib.md5(b"client-abc@clients").hexdigest()


# -- several places and the gateway's ID extractor ------------------------------------------------------------

def test_with_one_token_source_the_extractor_deadline_bound_defaults_to_300_seconds():
    assert parse_config_data(config_data(auth_header_name="X-Token")).id_extractor_ttl == 300


def test_with_several_token_sources_the_extractor_deadline_bound_defaults_to_zero():
    assert parse_config_data(config_data(use_param=True)).id_extractor_ttl == 0


def test_with_several_token_sources_a_non_zero_extractor_bound_is_refused_by_name():
    with pytest.raises(ConfigurationError) as raised:
        parse_config_data(config_data(use_cookie=True, id_extractor_ttl=60))
    assert raised.value.key == "id_extractor_ttl"
    assert "the Authorization header or the cookie 'Authorization'" in raised.value.problem


def test_with_several_token_sources_the_session_deadline_is_now(make_plugin, signing_key):
    now = 1_800_000_000.25
    plugin = make_plugin(clock=lambda: now)
    token = t.sign(signing_key, t.claims(iat=int(now), exp=int(now) + 3600))
    reply = plugin.dispatch(auth_object("Bearer " + token, config=config_data(use_param=True)))
    assert reply.session.id_extractor_deadline == int(now)


def test_the_host_header_cannot_carry_the_token():
    with pytest.raises(ConfigurationError) as raised:
        parse_config_data(config_data(auth_header_name="host"))
    assert raised.value.key == "auth_header_name"
