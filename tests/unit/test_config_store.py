"""Each API's config_data is parsed once, and parsed afresh after a reload."""

from __future__ import annotations

import json
import logging

import pytest

from plugin import auth
from plugin.auth import ConfigStore
from plugin.errors import ConfigurationError

SPEC = {"config_data": json.dumps({"auth0_domain": "tenant.example.auth0.com"})}


def test_a_configuration_is_parsed_once():
    store = ConfigStore(defaults={})
    assert store.get(SPEC) is store.get(SPEC)


def test_a_gateway_with_a_thousand_apis_has_each_configuration_parsed_once():
    # Past the store's size, calls in turn over every API re-parsed each configuration on each
    # call: a new serial every time, so no verified token was ever found in the token cache again.
    store = ConfigStore(defaults={})
    specs = [{"config_data": json.dumps({"auth0_domain": f"tenant-{i}.example.auth0.com", "audience": "https://api"})}
             for i in range(1000)]
    first = [store.get(spec) for spec in specs]
    assert [store.get(spec) for spec in specs] == first


def test_a_reload_makes_the_next_request_parse_again():
    store = ConfigStore(defaults={})
    before = store.get(SPEC)
    store.clear()
    assert store.get(SPEC)[0] != before[0]


def test_a_parse_that_a_reload_overtakes_is_not_kept(monkeypatch):
    store = ConfigStore(defaults={})
    real_parse = auth.parse_config_data

    def parse_then_reload(raw, defaults):
        config = real_parse(raw, defaults)  # e.g. read jwt_source_file just before it was rewritten
        store.clear()  # SIGHUP lands while this request is still parsing
        return config

    monkeypatch.setattr(auth, "parse_config_data", parse_then_reload)
    overtaken = store.get(SPEC)
    monkeypatch.setattr(auth, "parse_config_data", real_parse)
    assert store.get(SPEC)[0] != overtaken[0]


def test_a_bad_configuration_is_logged_once_and_not_parsed_again(monkeypatch, caplog):
    bad = {"config_data": json.dumps({"audiance": "https://api.example.com"}), "APIID": "typo-api"}
    parses: list[object] = []
    real_parse = auth.parse_config_data
    monkeypatch.setattr(auth, "parse_config_data", lambda raw, defaults: parses.append(raw) or real_parse(raw, defaults))
    store = ConfigStore(defaults={})
    with caplog.at_level(logging.ERROR, logger="plugin.auth"):
        for _ in range(2):
            with pytest.raises(ConfigurationError):
                store.get(bad)
    assert [(r.name, r.levelno) for r in caplog.records] == [("plugin.auth", logging.ERROR)]
    assert "api=typo-api key=audiance" in caplog.records[0].getMessage()
    assert parses == [bad["config_data"]]


def test_a_configuration_without_an_audience_is_warned_about_once(caplog):
    store = ConfigStore(defaults={})
    with caplog.at_level(logging.WARNING, logger="plugin.auth"):
        store.get({**SPEC, "APIID": "orders"})
        store.get({**SPEC, "APIID": "orders"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "api=orders sets no audience" in warnings[0]


def test_a_configuration_with_an_audience_is_not_warned_about(caplog):
    spec = {"config_data": json.dumps({"auth0_domain": "tenant.example.auth0.com", "audience": "https://api"})}
    with caplog.at_level(logging.WARNING, logger="plugin.auth"):
        ConfigStore(defaults={}).get(spec)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def hmac_spec(path) -> dict[str, str]:
    return {"config_data": json.dumps({"auth0_domain": "tenant.example.auth0.com", "audience": "https://api",
                                       "jwt_signing_method": "hmac", "jwt_source_file": str(path)})}


def test_a_secret_file_mounted_after_the_first_request_is_used_once_the_retry_interval_has_passed(tmp_path, monkeypatch):
    monkeypatch.setattr(auth, "FILE_RETRY_SECONDS", 0.0)
    store = ConfigStore(defaults={})
    secret = tmp_path / "secret"
    with pytest.raises(ConfigurationError, match="jwt_source_file"):
        store.get(hmac_spec(secret))
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")
    assert store.get(hmac_spec(secret))[1].key_source.static_key is not None


def test_a_missing_secret_file_is_not_read_again_before_the_retry_interval(tmp_path):
    store = ConfigStore(defaults={})
    secret = tmp_path / "secret"
    with pytest.raises(ConfigurationError):
        store.get(hmac_spec(secret))
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")
    with pytest.raises(ConfigurationError, match="jwt_source_file"):
        store.get(hmac_spec(secret))
