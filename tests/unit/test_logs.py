"""Log lines carry reasons and ids; an exception's own text, which may quote a secret, never reaches them."""

from __future__ import annotations

import json
import logging
import sys

from plugin.logs import JsonFormatter, TextFormatter, shown_url

SECRET = "S3cretGatewayKey"


def logged_failure(formatter: logging.Formatter) -> str:
    try:
        raise ValueError(f"Invalid header value b'{SECRET}\\n'")
    except ValueError:
        record = logging.LogRecord("plugin.test", logging.ERROR, __file__, 1, "refresher error", None,
                                   exc_info=sys.exc_info())
    return formatter.format(record)


def test_a_logged_exception_shows_its_frames_and_class_but_not_its_message():
    text = logged_failure(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    assert text.startswith("ERROR plugin.test: refresher error\nTraceback (most recent call last):")
    assert "test_logs.py" in text and "ValueError (message not logged)" in text
    assert SECRET not in text


def test_the_json_format_keeps_only_the_exception_class():
    entry = json.loads(logged_failure(JsonFormatter()))
    assert entry["exc"] == "ValueError" and entry["msg"] == "refresher error"
    assert SECRET not in json.dumps(entry)


def test_a_url_is_shown_without_its_credentials_or_query():
    assert shown_url("https://user:pw@idp.example.com/jwks.json?api_key=k") == "https://***@idp.example.com/jwks.json?***"
    assert shown_url("https://idp.example.com/.well-known/jwks.json") == "https://idp.example.com/.well-known/jwks.json"


def test_a_url_that_does_not_parse_is_not_shown_at_all():
    assert shown_url("https://user:pw@idp.example.com\uff0fjwks.json") == "<invalid URL>"
