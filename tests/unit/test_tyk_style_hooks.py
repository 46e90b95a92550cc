"""A hooks file written as a Tyk embedded-Python plugin does here what it does in Tyk's runtime.

The fixture is tests/support/tyk_style_hooks.py. Each expectation is what Tyk's runtime
(coprocess/python/tyk/) would leave in the reply the gateway reads back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import pytest

from plugin import extensions as ext
from plugin.coprocess import HookType, Object
from plugin.hooks import HookRouter
from tests.support.objects import AUTH_HOOK, auth_object

FIXTURE = Path(__file__).resolve().parents[1] / "support" / "tyk_style_hooks.py"
SUBJECT = "client-abc@clients"
SIGNED_IN = {"sub": SUBJECT, "plan": json.dumps({"tier": "gold"}), "region": "eu"}
UPSTREAM_BODY = b'{"ok":true}'


@pytest.fixture(scope="module")
def hooks() -> ext.Hooks:
    return ext.load_module(str(FIXTURE))


def gateway_call(hook_type: HookType, name: str, *, metadata: Mapping[str, str] = SIGNED_IN, url: str | None = None,
                 method: str | None = None, headers: Mapping[str, str] | None = None, body: bytes | None = None,
                 params: Mapping[str, str] | None = None) -> Object:
    """The object the gateway sends for hook ``name``: session metadata after auth, a response for response hooks."""
    obj = auth_object(None, hook_name=name, hook_type=hook_type)
    if hook_type != HookType.Pre:
        obj.session.alias = SUBJECT
        obj.session.metadata.update(metadata)
        obj.metadata.update(metadata)  # the gateway copies the session's metadata here too
    if url is not None:
        obj.request.url = url
    if method is not None:
        obj.request.method = method
    obj.request.headers.update(headers or {})
    obj.request.params.update(params or {})
    if body is not None:
        obj.request.raw_body = body
        try:  # the gateway sends the text only when the bytes are UTF-8
            obj.request.body = body.decode("utf-8")
        except UnicodeDecodeError:
            obj.request.body = ""
    if hook_type == HookType.Response:
        obj.response.status_code = 200
        obj.response.raw_body = UPSTREAM_BODY
        obj.response.headers["Content-Type"] = "application/json"
        obj.response.multivalue_headers.add(key="Content-Type", values=["application/json"])
    return obj


def run(hooks: ext.Hooks, obj: Object) -> Object:
    """The reply the hook router gives the gateway for ``obj``."""
    def no_auth(obj: Object) -> None:
        raise AssertionError("only the auth hook authenticates")

    return HookRouter(AUTH_HOOK, no_auth, hooks=ext.as_router_hooks(hooks)).dispatch(obj)


def refusal(obj: Object) -> tuple[int, str]:
    overrides = obj.request.return_overrides
    return overrides.response_code, overrides.response_error


PASSED = (-1, "")


# -- loading ---------------------------------------------------------------------------------------


def test_the_file_loads_with_each_hook_in_its_slot_and_its_argument_count(hooks):
    assert [(r.name, r.kind, r.arity) for r in hooks] == [
        ("StampRequest", "pre", 3), ("TidyRequest", "pre", 4), ("CheckUploadBody", "pre", 4),
        ("AnswerFromQuery", "pre", 3), ("GreetCaller", "post_key_auth", 3), ("RequireEuPlan", "post_key_auth", 4),
        ("RerouteLegacyOrders", "post", 3), ("TagResponse", "response", 5), ("SetTwoCookies", "response", 5),
        ("ReplaceUpstreamBody", "response", 5)]


# -- request helpers and Tyk's return tuples -------------------------------------------------------


def test_a_three_argument_hook_returning_request_and_session_sets_its_header(hooks):
    obj = run(hooks, gateway_call(HookType.Pre, "StampRequest"))
    assert dict(obj.request.set_headers) == {"X-Stamped-By": "tyk-style-hooks"} and refusal(obj) == PASSED


def test_a_four_argument_hook_uses_every_request_helper_and_returns_request_session_metadata(hooks):
    obj = run(hooks, gateway_call(HookType.Pre, "TidyRequest", headers={"X-Debug-Token": "t0k"}, params={"debug": "1"}))
    request = obj.request
    assert dict(request.set_headers) == {"X-Debug-Token-Removed": "true"}
    assert list(request.delete_headers) == ["X-Debug-Token"]
    assert dict(request.add_params) == {"via": "gateway"} and list(request.delete_params) == ["debug"]
    assert refusal(obj) == PASSED


def test_get_header_finds_nothing_when_the_header_is_absent(hooks):
    obj = run(hooks, gateway_call(HookType.Pre, "TidyRequest"))
    assert dict(obj.request.set_headers) == {} and list(obj.request.delete_headers) == []


# -- body and raw_body -----------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("application/json", b'{"id": 7}', PASSED),
    ("application/json", b"", (400, "a JSON body is required")),
    ("application/json", b"[7]", (400, "the body must be a JSON object")),
    ("application/json", b"{not json", (400, "the body must be a JSON object")),
    ("image/png", b"\x89PNG\r\n\x1a\n\x00", PASSED),
    ("image/png", b"GIF89a", (415, "only PNG images are accepted")),
    ("text/plain", b"anything", PASSED),
])
def test_a_hook_reads_text_from_body_and_bytes_from_raw_body(hooks, content_type, body, expected):
    obj = run(hooks, gateway_call(HookType.Pre, "CheckUploadBody", headers={"Content-Type": content_type}, body=body))
    assert refusal(obj) == expected


# -- return_overrides ------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "expected"), [
    ({}, (200, "answered as a body", "", False)),
    ({"code": "403"}, (403, "answered as a body", "", False)),
    ({"code": "403", "as": "error"}, (403, "", "answered as an error", False)),
    ({"code": "401", "as": "error", "raw": "yes"}, (401, "", "answered as an error", True)),
])
def test_return_overrides_carry_code_body_error_override_flag_and_headers(hooks, params, expected):
    obj = run(hooks, gateway_call(HookType.Pre, "AnswerFromQuery", params=params))
    overrides = obj.request.return_overrides
    assert (overrides.response_code, overrides.response_body, overrides.response_error, overrides.override_error) == expected
    assert dict(overrides.headers) == {"X-Answered-By": "AnswerFromQuery"}


# -- session metadata after authentication ---------------------------------------------------------


def test_a_post_key_auth_hook_passes_a_session_whose_json_metadata_fits(hooks):
    assert refusal(run(hooks, gateway_call(HookType.PostKeyAuth, "RequireEuPlan"))) == PASSED


@pytest.mark.parametrize(("metadata", "reason"), [
    ({"sub": SUBJECT, "region": "eu"}, "the token carries no plan"),
    ({"sub": SUBJECT, "plan": "{}", "region": "eu"}, "the plan names no tier"),
    ({**SIGNED_IN, "region": "us"}, "this API serves the eu region only"),
    ({"sub": SUBJECT, "plan": json.dumps({"tier": "gold"})}, "this API serves the eu region only"),
])
def test_a_post_key_auth_hook_refuses_through_return_overrides_on_session_metadata(hooks, metadata, reason):
    obj = run(hooks, gateway_call(HookType.PostKeyAuth, "RequireEuPlan", metadata=metadata))
    assert refusal(obj) == (403, reason)


# -- url and method rewrite ------------------------------------------------------------------------


def test_a_post_hook_leaves_other_paths_alone(hooks):
    obj = run(hooks, gateway_call(HookType.Post, "RerouteLegacyOrders"))
    assert (obj.request.url, obj.request.method) == ("/auth0-plugin/get?x=1", "GET") and refusal(obj) == PASSED


def test_a_post_hook_rewrites_url_and_method(hooks):
    obj = run(hooks, gateway_call(HookType.Post, "RerouteLegacyOrders", url="/legacy/orders", method="POST"))
    assert (obj.request.url, obj.request.method) == ("tyk://orders-api/orders", "PUT") and refusal(obj) == PASSED


def test_a_post_hook_refuses_the_wrong_method_without_rewriting(hooks):
    obj = run(hooks, gateway_call(HookType.Post, "RerouteLegacyOrders", url="/legacy/orders", method="GET"))
    assert refusal(obj) == (405, "the legacy orders path takes POST only")
    assert (obj.request.url, obj.request.method) == ("/legacy/orders", "GET")


# -- response hooks --------------------------------------------------------------------------------


def test_a_response_hook_that_returns_the_response_adds_its_header(hooks):
    obj = run(hooks, gateway_call(HookType.Response, "TagResponse"))
    assert dict(obj.response.headers) == {"Content-Type": "application/json", "X-Upstream-Status": "200"}
    assert (obj.response.status_code, obj.response.raw_body) == (200, UPSTREAM_BODY)


def test_a_response_hook_sets_two_cookies_through_multivalue_headers_and_leaves_headers_alone(hooks):
    obj = run(hooks, gateway_call(HookType.Response, "SetTwoCookies"))
    assert [(h.key, list(h.values)) for h in obj.response.multivalue_headers] == [
        ("Content-Type", ["application/json"]), ("Set-Cookie", ["theme=dark; Path=/", "lang=fr; Path=/; Secure"])]
    assert dict(obj.response.headers) == {"Content-Type": "application/json"}  # so the gateway keeps the list as sent


def test_a_response_hook_that_returns_nothing_replaces_the_body_in_place(hooks):
    obj = run(hooks, gateway_call(HookType.Response, "ReplaceUpstreamBody"))
    assert (obj.response.status_code, obj.response.raw_body) == (200, b"replaced by ReplaceUpstreamBody")


# -- tyk.log and tyk.log_error ---------------------------------------------------------------------


def test_tyk_log_calls_reach_the_plugin_log_in_hook_order(hooks, caplog):
    with caplog.at_level(logging.INFO, logger="plugin.extensions.tyk"):
        run(hooks, gateway_call(HookType.Pre, "StampRequest"))
        run(hooks, gateway_call(HookType.PostKeyAuth, "GreetCaller"))
        run(hooks, gateway_call(HookType.Response, "TagResponse"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "StampRequest: stamping GET /auth0-plugin/get?x=1"),
        (logging.INFO, f"GreetCaller: {SUBJECT} is signed in"),
        (logging.INFO, "TagResponse: upstream answered 200")]


def test_tyk_log_error_records_a_refusal_at_error_level(hooks, caplog):
    with caplog.at_level(logging.INFO, logger="plugin.extensions.tyk"):
        run(hooks, gateway_call(HookType.PostKeyAuth, "RequireEuPlan", metadata={**SIGNED_IN, "region": "us"}))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, f"RequireEuPlan: refused {SUBJECT}: this API serves the eu region only")]
