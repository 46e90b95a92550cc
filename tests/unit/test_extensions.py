"""Custom hooks: Tyk's embedded-Python idiom over gRPC, failures answered as the gateway answers them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc
import grpc_testing
import pytest

from plugin import extensions as ext
from plugin.coprocess import HookType, Object, SessionState, object_pb2
from plugin.errors import AuthError, ConfigurationError, NoMatchingPolicy
from plugin.hooks import HookRouter
from plugin.manifest import HookNames
from plugin.server import DispatcherService
from plugin.session import claim_metadata
from tests.support import tokens as t
from tests.support.objects import AUTH_HOOK, auth_object, config_data

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "hooks_example.py"


def hook_object(name: str, hook_type: HookType, **kwargs) -> Object:
    obj = auth_object("Bearer abc.def.ghi", hook_name=name, hook_type=hook_type, **kwargs)
    if hook_type != HookType.Pre:
        obj.session.alias = "client-abc@clients"
        obj.session.metadata["scope"] = "read:things"
        obj.metadata["scope"] = "read:things"  # the gateway mirrors session metadata here for non-auth hooks
    if hook_type == HookType.Response:
        obj.response.status_code = 200
        obj.response.raw_body = b'{"ok":true}'
        obj.response.headers["Server"] = "nginx"
        obj.response.headers["Content-Type"] = "application/json"
        obj.response.multivalue_headers.add(key="Server", values=["nginx"])
        obj.response.multivalue_headers.add(key="Content-Type", values=["application/json"])
    return obj


def route(*sets: ext.Hooks, **kwargs) -> HookRouter:
    def no_auth(obj: Object) -> None:
        raise AssertionError("auth must not run")

    return HookRouter(AUTH_HOOK, no_auth, hooks=ext.as_router_hooks(*sets, **kwargs))


def overrides(obj: Object) -> tuple[int, str]:
    return obj.request.return_overrides.response_code, obj.request.return_overrides.response_error


# -- decorators and registration -------------------------------------------------------------------------

def test_decorators_register_by_name_and_kind():
    hooks = ext.Hooks()

    @hooks.pre("A")
    def a(request, session, metadata, spec): ...

    @hooks.post("B")
    def b(request, session, spec): ...

    @hooks.post_key_auth
    def c(request, session, metadata, spec): ...

    @hooks.response("D")
    def d(request, response, session, metadata, spec): ...

    assert [(r.name, r.kind, r.arity) for r in hooks] == [
        ("A", "pre", 4), ("B", "post", 3), ("c", "post_key_auth", 4), ("D", "response", 5)]
    assert hooks.names("pre") == ("A",) and "D" in hooks and len(hooks) == 4
    assert a.__name__ == "a"  # the decorator returns the function itself, still callable in unit tests


def test_duplicate_names_and_wrong_signatures_fail_at_startup():
    hooks = ext.Hooks()
    hooks.pre("A")(lambda request, session, metadata, spec: None)
    with pytest.raises(ext.HookError, match="twice"):
        hooks.post("A")(lambda request, session, metadata, spec: None)
    with pytest.raises(ext.HookError, match="must take"):
        hooks.pre("B")(lambda request: None)
    with pytest.raises(ext.HookError, match="response"):
        hooks.response("C")(lambda request, session, metadata, spec: None)
    other = ext.Hooks()
    other.post("A")(lambda request, session, metadata, spec: None)
    with pytest.raises(ext.HookError, match="more than once"):
        ext.as_router_hooks(hooks, other)


# -- wrappers and edits -------------------------------------------------------------------------------------

def test_request_wrapper_reads_and_edits_like_tyk_embedded_request():
    hooks = ext.Hooks()
    seen = {}

    @hooks.pre("Edit")
    def edit(request, session, metadata, spec):
        seen.update(url=request.url, method=request.method, body=request.body, params=dict(request.params),
                    agent=request.get_header("user-agent"), api=spec["APIID"], raw=type(request.object).__name__)
        request.add_header("X-Added", "1")
        request.delete_header("X-Forwarded-For")
        request.add_param("y", "2")
        request.delete_param("x")
        request.url = "/auth0-plugin/other"
        request.method = "POST"
        request.body = "new body"

    obj = route(hooks).dispatch(hook_object("Edit", HookType.Pre))
    assert seen == {"url": "/auth0-plugin/get?x=1", "method": "GET", "body": "hello body", "params": {"x": "1"},
                    "agent": "curl/8.5.0", "api": "auth0-plugin", "raw": "MiniRequestObject"}
    request = obj.request
    assert dict(request.set_headers) == {"X-Added": "1"}
    assert list(request.delete_headers) == ["X-Forwarded-For"]
    assert dict(request.add_params) == {"y": "2"} and list(request.delete_params) == ["x"]
    assert (request.url, request.method, request.raw_body) == ("/auth0-plugin/other", "POST", b"new body")
    assert overrides(obj) == (-1, "")


def test_delete_after_add_wins_because_the_gateway_deletes_before_it_sets():
    request = ext.Request(hook_object("X", HookType.Pre).request)
    request.add_header("X-A", "1")
    request.delete_header("X-A")
    request.delete_header("X-A")
    assert "X-A" not in request.object.set_headers and list(request.object.delete_headers) == ["X-A"]


def test_many_deletions_list_each_name_once_in_the_order_first_deleted():
    request = ext.Request(hook_object("X", HookType.Pre).request)
    names = [f"X-Spelling-{i}" for i in range(5000)]
    for name in names + names[::-1] + names:
        request.delete_header(name)
        request.delete_param(name.lower())
    assert list(request.object.delete_headers) == names
    assert list(request.object.delete_params) == [name.lower() for name in names]


def test_a_deletion_already_in_the_message_is_not_listed_again():
    message = hook_object("X", HookType.Pre).request
    message.delete_headers.append("X-Before")
    request = ext.Request(message)
    request.delete_header("X-Before")
    request.object.delete_headers.append("X-Direct")  # a hook may edit the message itself, too
    request.delete_header("X-Direct")
    request.delete_header("X-After")
    assert list(message.delete_headers) == ["X-Before", "X-Direct", "X-After"]


def test_returned_tuple_replaces_session_and_metadata_like_tyk():
    hooks = ext.Hooks()

    @hooks.post_key_auth("Tag")
    def tag(request, session, metadata, spec):
        new_session = SessionState(alias="someone-else")
        metadata["tier"] = {"level": 2}
        return request, new_session, metadata

    obj = route(hooks).dispatch(hook_object("Tag", HookType.PostKeyAuth))
    assert obj.session.alias == "someone-else"
    assert dict(obj.metadata) == {"scope": "read:things", "tier": '{"level":2}'}


def test_three_argument_hooks_get_request_session_spec():
    hooks = ext.Hooks()

    @hooks.post("Three")
    def three(request, session, spec):
        request.add_header("X-Alias", session.alias)
        return request, session

    obj = route(hooks).dispatch(hook_object("Three", HookType.Post))
    assert obj.request.set_headers["X-Alias"] == "client-abc@clients"


def test_response_hook_edits_status_headers_and_body():
    hooks = ext.Hooks()

    @hooks.response("Resp")
    def resp(request, response, session, metadata, spec):
        assert response.status_code == 200 and session.alias == "client-abc@clients"
        response.delete_header("Server")
        response.add_header("X-Seen", "yes")
        response.body = '{"ok":false}'
        response.status_code = 202
        return response

    obj = route(hooks).dispatch(hook_object("Resp", HookType.Response))
    assert obj.response.status_code == 202
    assert dict(obj.response.headers) == {"Content-Type": "application/json", "X-Seen": "yes"}
    assert obj.response.raw_body == b'{"ok":false}'


def test_response_multivalue_headers_are_the_message_s_own_list_as_in_tyk():
    hooks = ext.Hooks()

    @hooks.response("Cookies")
    def cookies(request, response, session, metadata, spec):
        response.multivalue_headers.add(key="Set-Cookie", values=["a=1", "b=2"])

    obj = route(hooks).dispatch(hook_object("Cookies", HookType.Response))
    assert [(h.key, list(h.values)) for h in obj.response.multivalue_headers][-1] == ("Set-Cookie", ["a=1", "b=2"])


@pytest.mark.parametrize(("level", "expected"), [
    ("info", logging.INFO), ("debug", logging.DEBUG), ("warning", logging.WARNING), ("error", logging.ERROR),
    ("anything else", logging.INFO)])
def test_tyk_log_goes_to_python_logging_at_tyks_level(level, expected, caplog):
    with caplog.at_level(logging.DEBUG, logger="plugin.extensions.tyk"):
        ext.TykGateway.log("from a ported hook", level)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("plugin.extensions.tyk", expected, "from a ported hook")]


def test_tyk_log_error_logs_at_error_and_the_gateway_only_calls_have_no_stand_in(caplog):
    with caplog.at_level(logging.DEBUG, logger="plugin.extensions.tyk"):
        ext.TykGateway.log_error("broken")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.ERROR, "broken")]
    for missing in ("store_data", "get_data", "trigger_event"):  # they need the embedded gateway's Redis and events
        assert not hasattr(ext.TykGateway, missing)


# -- replies carry what the gateway reads back, and nothing else -----------------------------------------

@pytest.mark.parametrize("hook_type", [HookType.Pre, HookType.Post, HookType.PostKeyAuth])
def test_a_request_hook_reply_keeps_what_the_gateway_reads_and_drops_the_rest(hook_type):
    hooks = ext.Hooks()

    def edit(request, session, metadata, spec):
        request.add_header("X-Added", "1")
        request.delete_header("X-Forwarded-For")
        request.add_param("y", "2")
        request.delete_param("x")
        request.url = "/auth0-plugin/other"
        request.method = "POST"
        request.raw_body = b"new body"
        request.refuse(409, "busy")
        metadata["seen"] = "yes"

    hooks.add({HookType.Pre: "pre", HookType.Post: "post", HookType.PostKeyAuth: "post_key_auth"}[hook_type],
              "Edit", edit)
    obj = route(hooks).dispatch(hook_object("Edit", hook_type))
    request = obj.request
    # ObjectPostProcess, then return_overrides, session and metadata (gateway/coprocess.go)
    assert (dict(request.set_headers), list(request.delete_headers)) == ({"X-Added": "1"}, ["X-Forwarded-For"])
    assert (dict(request.add_params), list(request.delete_params)) == ({"y": "2"}, ["x"])
    assert (request.url, request.method, request.raw_body) == ("/auth0-plugin/other", "POST", b"new body")
    assert overrides(obj) == (409, "busy")
    assert obj.metadata["seen"] == "yes"
    if hook_type != HookType.Pre:
        assert obj.session.alias == "client-abc@clients"
    # sent to the plugin, never read from its reply
    assert not request.headers and not request.params and request.body == "" and not obj.spec


def test_the_builtin_claims_to_headers_reply_does_not_echo_the_clients_headers():
    sent = post_auth_object(t.claims(), client_headers={"X-Big": "x" * 100_000})
    obj = route(ext.builtin_hooks()).dispatch(sent)
    assert obj.request.set_headers["X-User-Id"] == "client-abc@clients"
    assert "Authorization" in obj.request.delete_headers
    assert not obj.request.headers and not obj.spec
    assert obj.ByteSize() < 1000


def test_a_large_body_goes_back_to_the_gateway_once():
    hooks = ext.Hooks()
    hooks.pre("Pass")(lambda request, session, metadata, spec: None)
    sent = hook_object("Pass", HookType.Pre)
    body = "é" * (1024 * 1024)  # 2 MiB of UTF-8: the gateway sends it as raw_body and as the string body
    sent.request.raw_body, sent.request.body = body.encode(), body
    size = sent.ByteSize()
    reply = route(hooks).dispatch(sent)
    assert reply.request.raw_body == body.encode()
    assert reply.ByteSize() < size / 2 + 1000  # under the gateway's default 4 MiB receive limit


def test_a_call_for_a_request_hook_with_no_handler_is_passed_through_slimmed():
    obj = route(ext.Hooks()).dispatch(hook_object("NotServedHere", HookType.Post))
    assert obj.request.raw_body == b"hello body" and overrides(obj) == (-1, "")
    assert not obj.request.headers and not obj.spec


def test_a_response_hook_reply_keeps_only_the_response():
    hooks = ext.Hooks()

    @hooks.response("Resp")
    def resp(request, response, session, metadata, spec):
        response.add_header("X-Seen", "yes")
        response.body = '{"ok":false}'
        response.status_code = 202

    obj = route(hooks).dispatch(hook_object("Resp", HookType.Response))
    response = obj.response
    # HandleResponse reads status, headers, multivalue headers and raw_body (gateway/coprocess.go)
    assert (response.status_code, response.raw_body) == (202, b'{"ok":false}')
    assert dict(response.headers) == {"Server": "nginx", "Content-Type": "application/json", "X-Seen": "yes"}
    assert [h.key for h in response.multivalue_headers] == ["Server", "Content-Type"]
    # sent to the plugin, never read from its reply
    assert response.body == ""
    assert not obj.HasField("request") and not obj.HasField("session") and not obj.metadata and not obj.spec


def test_a_reply_of_an_unknown_hook_type_is_left_whole():
    sent = hook_object("Odd", HookType.Unknown)
    assert route(ext.Hooks()).dispatch(Object.FromString(sent.SerializeToString())) == sent


# -- failures are answered the gateway's way -------------------------------------------------------------

@pytest.mark.parametrize("hook_type", [HookType.Pre, HookType.Post, HookType.PostKeyAuth])
def test_a_raising_request_hook_answers_500_middleware_error_without_internals(hook_type, caplog):
    hooks = ext.Hooks()
    kind = {HookType.Pre: "pre", HookType.Post: "post", HookType.PostKeyAuth: "post_key_auth"}[hook_type]

    def broken(request, session, metadata, spec):
        request.url = "::not a url::"
        request.add_header("X-Half", "done")
        raise KeyError("secret-header-value")

    hooks.add(kind, "Broken", broken)
    outcomes = []
    with caplog.at_level(logging.INFO, logger="plugin.extensions"):
        obj = route(hooks, on_outcome=lambda k, o: outcomes.append((k, o))).dispatch(hook_object("Broken", hook_type))
    assert overrides(obj) == (500, "Middleware error")
    assert obj.request.url == "/auth0-plugin/get?x=1" and obj.request.method == "GET"
    assert "secret-header-value" not in obj.SerializeToString().decode("latin-1")
    assert "KeyError" in caplog.text and "secret-header-value" not in caplog.text
    assert outcomes == [(kind, "hook_error")]


@pytest.mark.parametrize("exit_with", [SystemExit(3), KeyboardInterrupt()])
def test_a_hook_that_exits_still_gets_the_gateway_its_answer(exit_with):
    hooks = ext.Hooks()

    def leaves(request, session, metadata, spec):
        raise exit_with

    hooks.add("pre", "Leaves", leaves)
    assert overrides(route(hooks).dispatch(hook_object("Leaves", HookType.Pre))) == (500, "Middleware error")


@pytest.mark.parametrize("status", [None, 403.5, "403", True])
def test_a_refusal_with_a_status_that_is_not_an_int_is_a_hook_error(status):
    hooks = ext.Hooks()

    def refuses(request, session, metadata, spec):
        raise ext.Refuse(status, "no")

    hooks.add("pre", "Refuses", refuses)
    assert overrides(route(hooks).dispatch(hook_object("Refuses", HookType.Pre))) == (500, "Middleware error")


def test_a_refusal_message_is_always_text():
    assert ext.Refuse(403, None).message == "None"
    assert ext.Refuse(403, "bad \ud800").message == "bad \ufffd"


def test_an_auth_error_with_a_bad_status_raised_by_a_hook_is_a_hook_error():
    class Odd(AuthError):
        status = "403"

    hooks = ext.Hooks()

    def refuses(request, session, metadata, spec):
        raise Odd()

    hooks.add("pre", "Odd", refuses)
    assert overrides(route(hooks).dispatch(hook_object("Odd", HookType.Pre))) == (500, "Middleware error")


def test_a_raising_response_hook_answers_a_500_json_response():
    hooks = ext.Hooks()

    @hooks.response("Broken")
    def broken(request, response, session, metadata, spec):
        raise RuntimeError("boom")

    obj = route(hooks).dispatch(hook_object("Broken", HookType.Response))
    assert obj.response.status_code == 500
    assert json.loads(obj.response.raw_body) == {"error": "Middleware error"}
    assert dict(obj.response.headers) == {"Content-Type": "application/json"}
    assert [(h.key, list(h.values)) for h in obj.response.multivalue_headers] == [("Content-Type", ["application/json"])]


def test_refuse_and_auth_errors_answer_with_their_own_status_and_text():
    hooks = ext.Hooks()

    @hooks.post_key_auth("NeedsScope")
    def needs_scope(request, session, metadata, spec):
        raise ext.Refuse(403, "write:things scope required")

    @hooks.post_key_auth("NoPolicy")
    def no_policy(request, session, metadata, spec):
        raise NoMatchingPolicy()

    router = route(hooks)
    assert overrides(router.dispatch(hook_object("NeedsScope", HookType.PostKeyAuth))) == (
        403, "write:things scope required")
    assert overrides(router.dispatch(hook_object("NoPolicy", HookType.PostKeyAuth))) == (
        403, "key not authorized: no matching policy found")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _hook_lines(caplog, title: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "plugin.extensions" and r.getMessage().startswith(title)]


def test_a_flood_of_hook_refusals_is_one_info_line_per_interval(caplog):
    hooks = ext.Hooks()
    hooks.pre("Blocks")(lambda request, session, metadata, spec: (_ for _ in ()).throw(ext.Refuse(403, "blocked")))
    clock = _Clock()
    router = route(hooks, logs=ext.HookLog(interval=10.0, clock=clock))
    with caplog.at_level(logging.INFO, logger="plugin.extensions"):
        for _ in range(500):
            assert overrides(router.dispatch(hook_object("Blocks", HookType.Pre))) == (403, "blocked")
        clock.now += 10
        router.dispatch(hook_object("Blocks", HookType.Pre))
    lines = _hook_lines(caplog, "hook refused")
    assert len(lines) == 2
    assert "hook=Blocks" in lines[0] and "status=403" in lines[0] and "count=1" in lines[0]
    assert "count=500" in lines[1]


def test_a_hook_failing_on_every_call_is_one_error_line_per_interval(caplog):
    hooks = ext.Hooks()
    hooks.pre("Broken")(lambda request, session, metadata, spec: {}["missing"])
    logs = ext.HookLog(interval=10.0, clock=_Clock())
    router = route(hooks, logs=logs)
    with caplog.at_level(logging.INFO, logger="plugin.extensions"):
        for _ in range(200):
            assert overrides(router.dispatch(hook_object("Broken", HookType.Pre))) == (500, "Middleware error")
        logs.flush(force=True)
    lines = _hook_lines(caplog, "hook failed")
    assert len(lines) == 2
    assert all(r.levelno == logging.ERROR for r in caplog.records if r.getMessage().startswith("hook failed"))
    assert "error=KeyError" in lines[1] and "count=199" in lines[1] and "missing" not in lines[1]


def test_each_hook_refusal_is_logged_at_debug_with_its_reason(caplog):
    hooks = ext.Hooks()
    hooks.post_key_auth("NoPolicy")(lambda request, session, metadata, spec: (_ for _ in ()).throw(NoMatchingPolicy()))
    router = route(hooks)
    with caplog.at_level(logging.DEBUG, logger="plugin.extensions"):
        for _ in range(3):
            router.dispatch(hook_object("NoPolicy", HookType.PostKeyAuth))
    each = [r for r in caplog.records if r.levelno == logging.DEBUG and r.getMessage().startswith("hook refused")]
    assert len(each) == 3 and f"reason={NoMatchingPolicy.reason}" in each[0].getMessage()


def test_a_bad_return_value_is_a_hook_error():
    hooks = ext.Hooks()
    hooks.post("Bad")(lambda request, session, metadata, spec: "nope")
    assert overrides(route(hooks).dispatch(hook_object("Bad", HookType.Post))) == (500, "Middleware error")


def test_a_hook_called_in_the_wrong_slot_fails_closed():
    hooks = ext.Hooks()
    hooks.post_key_auth("Slot")(lambda request, session, metadata, spec: None)
    assert overrides(route(hooks).dispatch(hook_object("Slot", HookType.Pre))) == (500, "Middleware error")


def test_hooks_run_through_the_grpc_servicer():
    hooks = ext.Hooks()
    hooks.pre("Hello")(lambda request, session, metadata, spec: request.add_header("X-Hello", "1"))
    service = object_pb2.DESCRIPTOR.services_by_name["Dispatcher"]
    server = grpc_testing.server_from_dictionary({service: DispatcherService(route(hooks))},
                                                 grpc_testing.strict_real_time())
    call = server.invoke_unary_unary(service.methods_by_name["Dispatch"], (), hook_object("Hello", HookType.Pre), None)
    reply, _, code, _ = call.termination()
    assert code is grpc.StatusCode.OK and reply.request.set_headers["X-Hello"] == "1"


# -- loading user files ------------------------------------------------------------------------------------

def test_the_example_hook_file_loads_and_its_hooks_work():
    hooks = ext.load_module(str(EXAMPLE))
    assert {(r.name, r.kind) for r in hooks} == {
        ("AddRequestId", "pre"), ("RequireWriteScopeForWrites", "post_key_auth"), ("HideUpstreamServer", "response")}
    router = route(hooks)
    pre = router.dispatch(hook_object("AddRequestId", HookType.Pre))
    assert len(pre.request.set_headers["X-Request-Id"]) == 32
    write = hook_object("RequireWriteScopeForWrites", HookType.PostKeyAuth)
    write.request.method = "POST"
    assert overrides(router.dispatch(write)) == (403, "write:things scope required")
    read = router.dispatch(hook_object("RequireWriteScopeForWrites", HookType.PostKeyAuth))
    assert overrides(read) == (-1, "") and read.request.set_headers["X-Scopes"] == "read:things"
    resp = router.dispatch(hook_object("HideUpstreamServer", HookType.Response))
    assert "Server" not in resp.response.headers


def test_load_module_by_module_name_and_attribute(tmp_path, monkeypatch):
    (tmp_path / "my_hooks_pkg.py").write_text(
        "from plugin.extensions import Hooks\nmine = Hooks()\nmine.pre('P')(lambda r, s, m, sp: None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ext.load_module("my_hooks_pkg:mine").names() == ("P",)


@pytest.mark.parametrize("content, match", [
    ("x = 1\n", "defines no hooks"),
    ("raise RuntimeError('at import')\n", "RuntimeError at bad_hooks.py:1"),
    ("x = 1\ndef broken(:\n", "SyntaxError at bad_hooks.py:2"),
])
def test_load_module_reports_bad_files(tmp_path, content, match):
    path = tmp_path / "bad_hooks.py"
    path.write_text(content)
    with pytest.raises(ext.HookError, match=match):
        ext.load_module(str(path))


def test_an_import_failure_names_its_type_and_line_but_never_its_message(tmp_path):
    path = tmp_path / "leaky_hooks.py"
    path.write_text("import os\n\nraise RuntimeError('secret-in-import-error')\n")
    with pytest.raises(ext.HookError) as raised:
        ext.load_module(str(path))
    assert str(raised.value) == (f"cannot load hooks from {path}: RuntimeError at leaky_hooks.py:3 "
                                 "(message not logged)")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_import_failure_inside_a_library_also_names_the_hooks_files_own_line(tmp_path):
    path = tmp_path / "parsing_hooks.py"
    path.write_text("import json\n\nSETTINGS = json.loads('{secret-in-json')\n")
    with pytest.raises(ext.HookError, match=r"JSONDecodeError at decoder\.py:\d+ \(from parsing_hooks\.py:3\)") as raised:
        ext.load_module(str(path))
    assert "secret" not in str(raised.value)


def test_a_module_that_cannot_be_found_is_named(tmp_path, monkeypatch):
    (tmp_path / "needs_dep_hooks.py").write_text("import not_installed_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ext.HookError, match="ModuleNotFoundError for module 'not_installed_dependency' at "
                                            r"needs_dep_hooks\.py:1"):
        ext.load_module("needs_dep_hooks")
    with pytest.raises(ext.HookError, match=r"ModuleNotFoundError for module 'no_such_hooks_module' \(message"):
        ext.load_module("no_such_hooks_module")


def test_load_module_reports_a_missing_file():
    with pytest.raises(ext.HookError, match="does not exist"):
        ext.load_module("/nonexistent/hooks.py")


def test_manifest_problems_name_missing_and_mismatched_hooks():
    hooks = ext.load_module(str(EXAMPLE))
    manifest = HookNames(auth_check=AUTH_HOOK, pre=("AddRequestId", "Missing"), post=("HideUpstreamServer",))
    problems = ext.manifest_problems([ext.builtin_hooks(), hooks], manifest)
    assert not any(ext.CLAIMS_TO_HEADERS_HOOK in p for p in problems)  # built-ins are optional
    assert any("'Missing' has no handler" in p for p in problems)
    assert any("'HideUpstreamServer' under post but it is registered as response" in p for p in problems)
    assert any("'RequireWriteScopeForWrites' is not in the manifest" in p for p in problems)


def test_hook_targets_prefer_flags_over_the_environment():
    class Args:
        hooks = None

    assert ext.hook_targets(Args(), {"TYK_AUTH0_HOOKS": "a.py, b "}) == ["a.py", "b"]
    Args.hooks = ["c.py"]
    assert ext.hook_targets(Args(), {"TYK_AUTH0_HOOKS": "a.py"}) == ["c.py"]


# -- built-in: claims to upstream headers ---------------------------------------------------------------

CLAIMS_CONFIG = config_data(claims_to_headers={"sub": "X-User-Id", "https://example.com/org": "X-Org",
                                               "org.team": "X-Team"}, strip_authorization=True)


def post_auth_object(claims: dict, config: str = CLAIMS_CONFIG, client_headers: dict | None = None) -> Object:
    obj = hook_object(ext.CLAIMS_TO_HEADERS_HOOK, HookType.PostKeyAuth, config=config)
    obj.request.headers.update(client_headers or {})
    for key, value in claim_metadata(claims, ["sub", "https://example.com/org", "org.team"]).items():
        obj.session.metadata[key] = value
    return obj


def test_strip_authorization_removes_the_configured_token_header_and_parameter_not_authorization():
    config = config_data(claims_to_headers={"sub": "X-User-Id"}, strip_authorization=True,
                         auth_header_name="x-auth0-token", use_param=True, param_name="at")
    obj = route(ext.builtin_hooks()).dispatch(post_auth_object(t.claims(), config=config))
    request = obj.request
    assert set(request.delete_headers) == {"X-Auth0-Token", "X-User-Id"}
    assert list(request.delete_params) == ["at"]


def test_strip_authorization_on_a_dpop_api_removes_the_proof_header_too():
    config = config_data(claims_to_headers={"sub": "X-User-Id"}, strip_authorization=True, dpop="required")
    obj = route(ext.builtin_hooks()).dispatch(post_auth_object(t.claims(), config=config))
    assert set(obj.request.delete_headers) == {"Authorization", "Dpop", "X-User-Id"}


def test_strip_authorization_without_dpop_leaves_a_dpop_header_alone():
    config = config_data(claims_to_headers={"sub": "X-User-Id"}, strip_authorization=True, dpop="disabled")
    obj = route(ext.builtin_hooks()).dispatch(post_auth_object(t.claims(), config=config))
    assert set(obj.request.delete_headers) == {"Authorization", "X-User-Id"}


def test_claim_metadata_uses_the_claim_prefix_literal_names_and_dotted_paths():
    claims = t.claims(**{"https://example.com/org": "acme", "org": {"team": ["a", "b"]}})
    assert claim_metadata(claims, ["sub", "https://example.com/org", "org.team", "absent"]) == {
        "claim:sub": "client-abc@clients", "claim:https://example.com/org": "acme", "claim:org.team": '["a","b"]'}


def test_claims_become_headers_and_client_copies_are_always_removed():
    router = route(ext.builtin_hooks())
    obj = router.dispatch(post_auth_object(t.claims(**{"https://example.com/org": "acme"}),
                                           client_headers={"X-Team": "spoofed", "X-User-Id": "admin"}))
    request = obj.request
    assert dict(request.set_headers) == {"X-User-Id": "client-abc@clients", "X-Org": "acme"}
    assert set(request.delete_headers) == {"Authorization", "X-User-Id", "X-Org", "X-Team"}
    assert overrides(obj) == (-1, "")


def test_client_headers_spelled_with_underscores_are_removed_too():
    sent = {"X_User_Id": "admin", "x-user_id": "admin", "X_TEAM": "spoofed", "X-Other_Thing": "kept"}
    obj = route(ext.builtin_hooks()).dispatch(post_auth_object(t.claims(), client_headers=sent))
    deleted = set(obj.request.delete_headers)
    assert {"X_User_Id", "x-user_id", "X_TEAM"} <= deleted
    assert "X-Other_Thing" not in deleted


def test_two_headers_that_fold_to_one_name_are_a_config_error():
    with pytest.raises(ConfigurationError) as info:
        ext.parse_header_rules({"claims_to_headers": {"sub": "X-A", "azp": "X_A"}})
    assert info.value.key == "claims_to_headers" and "named twice" in info.value.problem


def test_claims_to_headers_does_nothing_without_configuration():
    obj = route(ext.builtin_hooks()).dispatch(post_auth_object(t.claims(), config=config_data()))
    assert not obj.request.set_headers and not obj.request.delete_headers


def test_a_claim_over_8_kib_of_utf8_is_not_forwarded():
    obj = post_auth_object(t.claims())
    obj.session.metadata["claim:sub"] = "\u00e9" * 5000  # 5,000 characters, 10,000 bytes
    reply = route(ext.builtin_hooks()).dispatch(obj)
    assert "X-User-Id" not in reply.request.set_headers


def test_a_claim_with_control_characters_is_not_forwarded():
    obj = post_auth_object(t.claims())
    obj.session.metadata["claim:sub"] = "evil\r\nX-Admin: true"
    reply = route(ext.builtin_hooks()).dispatch(obj)
    assert "X-User-Id" not in reply.request.set_headers and "X-User-Id" in reply.request.delete_headers


@pytest.mark.parametrize("data, key", [
    ({"claims_to_headers": ["sub"]}, "claims_to_headers"),
    ({"claims_to_headers": {"sub": "Bad Header"}}, "claims_to_headers"),
    ({"claims_to_headers": {"sub": "Host"}}, "claims_to_headers"),
    ({"claims_to_headers": {"sub": "Authorization"}}, "claims_to_headers"),
    ({"claims_to_headers": {"sub": "X-A", "azp": "x-a"}}, "claims_to_headers"),
    ({"strip_authorization": "yes"}, "strip_authorization"),
])
def test_bad_header_rules_name_the_key(data, key):
    with pytest.raises(ConfigurationError) as info:
        ext.parse_header_rules(data)
    assert info.value.key == key


def test_a_bad_header_rule_answers_500_naming_the_key():
    obj = post_auth_object(t.claims(), config=config_data(claims_to_headers={"sub": "Bad Header"}))
    code, message = overrides(route(ext.builtin_hooks()).dispatch(obj))
    assert code == 500 and message == "Auth plugin misconfigured: claims_to_headers"


def test_a_bad_header_rule_is_logged_once_with_its_problem(caplog):
    router = route(ext.builtin_hooks())
    config = config_data(claims_to_headers={"sub": "Bad Header"})
    with caplog.at_level(logging.ERROR, logger="plugin.extensions"):
        for _ in range(3):
            router.dispatch(post_auth_object(t.claims(), config=config))
    problems = [r for r in caplog.records if "bad header rules" in r.getMessage()]
    assert len(problems) == 1
    assert "key=claims_to_headers" in problems[0].getMessage()


def test_hooks_guide_documents_the_api_and_the_builtin_hook():
    text = (ROOT / "docs" / "hooks.md").read_text()
    for fragment in ("@hooks.pre(", "@hooks.post_key_auth(", "@hooks.post(", "@hooks.response(", "Refuse(",
                     "examples/hooks_example.py", ext.CLAIMS_TO_HEADERS_HOOK, ext.CLAIM_METADATA_PREFIX,
                     "claims_to_headers", "strip_authorization", "Middleware error", "--hooks", "TYK_AUTH0_HOOKS",
                     "## Moving a Tyk Python plugin", "TykGateway as tyk", "multivalue_headers",
                     "tests/support/tyk_style_hooks.py", "tests/unit/test_tyk_style_hooks.py"):
        assert fragment in text, fragment
    assert (ROOT / "docs" / "examples" / "hooks_example.py").is_file()


@pytest.mark.parametrize("target", ["", "  "])
def test_an_empty_hooks_target_is_named_as_empty_not_as_an_import_failure(target):
    with pytest.raises(ext.HookError, match="an empty name"):
        ext.load_module(target)
