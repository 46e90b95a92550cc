"""max_token_lifetime: an API may refuse tokens minted to live longer than it allows (no native twin)."""

from __future__ import annotations

import time

import pytest

from plugin.config import parse_config_data
from plugin.errors import ConfigurationError
from tests.support import tokens as t
from tests.support.objects import auth_object, config_data

TOO_LONG = (401, "Key not authorized: token lifetime exceeds the maximum of 3600 seconds")
NO_EXP = (401, "Key not authorized: expiration time (exp) claim is required but not present in token")


def reply_error(reply) -> tuple[int, str]:
    overrides = reply.request.return_overrides
    return overrides.response_code, overrides.response_error


def dispatch(plugin, signing_key, limit: int | str | None, **claims):
    config = config_data() if limit is None else config_data(max_token_lifetime=limit)
    return plugin.dispatch(auth_object(f"Bearer {t.sign(signing_key, t.claims(**claims))}", config=config))


def test_without_the_setting_an_auth0_day_long_token_passes(plugin, signing_key):
    now = int(time.time())
    assert reply_error(dispatch(plugin, signing_key, None, iat=now, exp=now + 86400)) == (-1, "")


def test_a_token_minted_to_live_exactly_the_maximum_passes(plugin, signing_key):
    now = int(time.time())
    assert reply_error(dispatch(plugin, signing_key, 3600, iat=now - 10, exp=now - 10 + 3600)) == (-1, "")


def test_a_token_minted_to_live_longer_is_refused_however_fresh(plugin, signing_key):
    now = int(time.time())
    assert reply_error(dispatch(plugin, signing_key, 3600, iat=now, exp=now + 3601)) == TOO_LONG


def test_a_long_lived_token_near_its_end_is_still_refused(plugin, signing_key):
    now = int(time.time())
    assert reply_error(dispatch(plugin, signing_key, 3600, iat=now - 86000, exp=now + 400)) == TOO_LONG


def test_without_iat_the_time_left_counts(plugin, signing_key):
    now = int(time.time())
    assert reply_error(dispatch(plugin, signing_key, 3600, iat=t.DROP, exp=now + 3000)) == (-1, "")
    assert reply_error(dispatch(plugin, signing_key, 3600, iat=t.DROP, exp=now + 7200)) == TOO_LONG


@pytest.mark.parametrize("exp", [t.DROP, 0])
def test_a_token_that_never_expires_is_refused(plugin, signing_key, exp):
    assert reply_error(dispatch(plugin, signing_key, 3600, exp=exp)) == NO_EXP


def test_an_expired_token_keeps_the_gateway_s_expiry_message(plugin, signing_key):
    now = int(time.time())
    assert reply_error(dispatch(plugin, signing_key, 3600, iat=now - 90000, exp=now - 10)) == (
        401, "Key not authorized: token has expired")


def test_the_limit_is_read_as_whole_seconds_from_a_string_too(plugin, signing_key):
    now = int(time.time())
    assert reply_error(dispatch(plugin, signing_key, "3600", iat=now, exp=now + 3601)) == TOO_LONG


@pytest.mark.parametrize("value", [-1, 1.5, "an hour", True])
def test_a_limit_that_is_no_whole_number_of_seconds_is_refused_naming_the_key(value):
    with pytest.raises(ConfigurationError, match="max_token_lifetime"):
        parse_config_data(config_data(max_token_lifetime=value))
