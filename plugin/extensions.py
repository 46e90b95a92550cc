"""Custom hooks for Tyk Python users, written the way Tyk's embedded Python plugins are written.

A user file defines ``hooks = Hooks()`` and decorates functions with
``@hooks.pre("Name")``, ``@hooks.post(...)``, ``@hooks.post_key_auth(...)`` or
``@hooks.response(...)``. Handlers get ``(request, session, metadata, spec)``
(``(request, response, session, metadata, spec)`` for response hooks), as in the
embedded runtime, so a plugin moves from the embedded driver to this gRPC server
with new imports and decorators and its bodies mostly unchanged (``TykGateway``
stands in for ``tyk.log``). Names must match the bundle manifest's hook names:
the gateway calls hooks by name.

The gateway reads back only request edits and ``return_overrides`` from Pre,
Post and PostKeyAuth replies (and only the response from Response replies);
session and metadata edits are ignored outside the auth check. A hook that
raises never leaks its error: the client gets what the gateway itself answers
for a failed hook, 500 ``{"error": "Middleware error"}``.

Also here: the built-in post-auth hook that copies verified claims into
upstream request headers (``claims_to_headers``, ``strip_authorization``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from plugin.config import HeaderRules, header_fold, parse_header_rules
from plugin.coprocess import (
    HookType,
    Object,
    SessionState,
    mini_request_object_pb2,
    response_object_pb2,
)
from plugin.dpop import DPOP_HEADER
from plugin.errors import AuthError, ConfigurationError
from plugin.logs import SummedLog, exception_site
from plugin.session import CLAIM_METADATA_PREFIX, metadata_value

log = logging.getLogger("plugin.extensions")
_tyk_log = logging.getLogger("plugin.extensions.tyk")  # what ported hooks log through TykGateway

MIDDLEWARE_ERROR = "Middleware error"
MIDDLEWARE_ERROR_STATUS = 500
# The gateway's error template renders {"error": msg} with this layout; a failed response hook mirrors it.
_TEMPLATE_BODY = '{\n    "error": "%s"\n}'

KINDS: Mapping[str, int] = {
    "pre": HookType.Pre,
    "post": HookType.Post,
    "post_key_auth": HookType.PostKeyAuth,
    "response": HookType.Response,
}
_KIND_BY_TYPE = {v: k for k, v in KINDS.items()}

Handler = Callable[..., Any]
RouterHook = Callable[[Object], None]
OutcomeObserver = Callable[[str, str], None]


class HookError(Exception):
    """A hook cannot be registered or loaded; raised at startup, never on the request path."""


class Refuse(Exception):
    """Raise in a hook to answer the client ``{"error": message}`` with ``status`` (>= 400)."""

    def __init__(self, status: int, message: str) -> None:
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError("Refuse status must be a 4xx or 5xx int")
        self.status = status
        self.message = _LONE_SURROGATE.sub("\ufffd", str(message))
        super().__init__(f"{status} {message}")


# -- wrappers ---------------------------------------------------------------------------------------


class _Appended:
    """The names already in a repeated string field, so that appending each once stays linear.

    A hook may delete every spelling of a header a client sent (thousands of them): a scan of the
    field per deletion would make that quadratic. The set is rebuilt whenever the field's length
    differs from what this object last saw, i.e. after code edited the field directly.
    """

    __slots__ = ("_names", "_length")

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._length = -1  # nothing seen yet: read the field on first use

    def add(self, field: MutableSequence[str], name: str) -> None:
        """Append ``name`` to ``field`` unless it is there, keeping the field's order."""
        if len(field) != self._length:
            self._names = set(field)
        if name not in self._names:
            field.append(name)
            self._names.add(name)
        self._length = len(field)


class Request:
    """The request as Tyk's embedded ``TykCoProcessRequest`` presents it, over the gRPC message.

    ``headers`` and ``params`` are what the client sent; edits go through
    ``add_header``/``delete_header``/``add_param``/``delete_param``, which the
    gateway applies after the hook (deletes first, then sets).
    """

    __slots__ = ("object", "_deleted_headers", "_deleted_params")

    def __init__(self, message: mini_request_object_pb2.MiniRequestObject) -> None:
        self.object = message
        self._deleted_headers = _Appended()
        self._deleted_params = _Appended()

    @property
    def headers(self) -> Mapping[str, str]:
        return self.object.headers

    @property
    def params(self) -> Mapping[str, str]:
        return self.object.params

    def get_header(self, key: str) -> str | None:
        """Case-insensitive: the gateway sends Go-canonical names (``X-User-Id``)."""
        headers = self.object.headers
        if key in headers:
            return headers[key]
        lowered = key.lower()
        for name, value in headers.items():
            if name.lower() == lowered:
                return value
        return None

    def add_header(self, key: str, value: str) -> None:
        self.object.set_headers[key] = value

    def delete_header(self, key: str) -> None:
        # The gateway deletes before it sets, so a pending set would survive a later delete.
        if key in self.object.set_headers:
            del self.object.set_headers[key]
        self._deleted_headers.add(self.object.delete_headers, key)

    def add_param(self, key: str, value: str) -> None:
        self.object.add_params[key] = value

    def delete_param(self, key: str) -> None:
        if key in self.object.add_params:
            del self.object.add_params[key]
        self._deleted_params.add(self.object.delete_params, key)

    @property
    def url(self) -> str:
        return self.object.url

    @url.setter
    def url(self, value: str) -> None:
        self.object.url = value

    @property
    def method(self) -> str:
        return self.object.method

    @method.setter
    def method(self, value: str) -> None:
        self.object.method = value

    @property
    def body(self) -> str:
        return self.object.body

    @body.setter
    def body(self, value: str) -> None:
        # The gateway forwards raw_body, so both must change together.
        self.object.body = value
        self.object.raw_body = value.encode("utf-8")

    @property
    def raw_body(self) -> bytes:
        return self.object.raw_body

    @raw_body.setter
    def raw_body(self, value: bytes) -> None:
        self.object.raw_body = value
        try:
            self.object.body = value.decode("utf-8")
        except UnicodeDecodeError:
            self.object.body = ""

    def refuse(self, status: int, message: str) -> None:
        """Answer the client ``{"error": message}`` with ``status`` instead of calling the upstream."""
        overrides = self.object.return_overrides
        overrides.response_code = status
        overrides.response_error = message


class Response:
    """The upstream response in a Response hook: status, headers and body, all editable."""

    __slots__ = ("object",)

    def __init__(self, message: response_object_pb2.ResponseObject) -> None:
        self.object = message

    @property
    def status_code(self) -> int:
        return self.object.status_code

    @status_code.setter
    def status_code(self, value: int) -> None:
        self.object.status_code = value

    @property
    def headers(self) -> MutableMapping[str, str]:
        """Single-valued view; the gateway re-syncs its multi-valued copy when this changes."""
        return self.object.headers

    @property
    def multivalue_headers(self) -> RepeatedCompositeFieldContainer[response_object_pb2.Header]:
        """Every value of each header (``Set-Cookie`` twice), as Tyk's ``response.multivalue_headers``.

        The gateway sends these on as they are unless ``headers`` changed too: then it rebuilds
        them from ``headers``, keeping only the names still there.
        """
        return self.object.multivalue_headers

    def add_header(self, key: str, value: str) -> None:
        self.object.headers[key] = value

    def delete_header(self, key: str) -> None:
        if key in self.object.headers:
            del self.object.headers[key]

    @property
    def body(self) -> str:
        return self.object.raw_body.decode("utf-8", errors="replace")

    @body.setter
    def body(self, value: str) -> None:
        self.object.raw_body = value.encode("utf-8")
        self.object.body = value

    @property
    def raw_body(self) -> bytes:
        return self.object.raw_body

    @raw_body.setter
    def raw_body(self, value: bytes) -> None:
        self.object.raw_body = value


class TykGateway:
    """``log`` and ``log_error`` of Tyk's embedded ``gateway`` module, so a ported hook keeps its log calls.

    Import it as ``from plugin.extensions import TykGateway as tyk``. Records go to Python logging
    (logger ``plugin.extensions.tyk``) at the level Tyk would use: ``"debug"``, ``"warning"`` and
    ``"error"`` as named, anything else at INFO. The message is the hook's own: this server logs
    it as given. ``store_data``, ``get_data`` and ``trigger_event`` reach into the embedded
    gateway's Redis and event bus and have no counterpart over gRPC, so they are absent: a hook
    calling one fails with an ``AttributeError`` at its own line.
    """

    _LEVELS: Mapping[str, int] = {"debug": logging.DEBUG, "warning": logging.WARNING, "error": logging.ERROR}

    @staticmethod
    def log(message: str, level: str = "info") -> None:
        _tyk_log.log(TykGateway._LEVELS.get(level, logging.INFO), "%s", message)

    @staticmethod
    def log_error(message: str) -> None:
        _tyk_log.error("%s", message)


# -- registration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    name: str
    kind: str
    handler: Handler
    arity: int

    @property
    def hook_type(self) -> int:
        return KINDS[self.kind]


def _arity(handler: Handler, kind: str) -> int:
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        raise HookError(f"{kind} hook {handler!r} has no inspectable signature") from None
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 5 if kind == "response" else 4
    count = sum(1 for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                 inspect.Parameter.POSITIONAL_OR_KEYWORD))
    allowed = (5,) if kind == "response" else (3, 4)
    if count not in allowed:
        shape = ("(request, response, session, metadata, spec)" if kind == "response"
                 else "(request, session, metadata, spec) or (request, session, spec)")
        raise HookError(f"{kind} hook {getattr(handler, '__name__', handler)!r} must take {shape}")
    return count


class Hooks:
    """A set of named hooks; a user module exposes one as ``hooks``."""

    def __init__(self) -> None:
        self._by_name: dict[str, Registered] = {}

    def pre(self, name: str | Handler | None = None) -> Any:
        return self._decorator("pre", name)

    def post(self, name: str | Handler | None = None) -> Any:
        return self._decorator("post", name)

    def post_key_auth(self, name: str | Handler | None = None) -> Any:
        return self._decorator("post_key_auth", name)

    def response(self, name: str | Handler | None = None) -> Any:
        return self._decorator("response", name)

    def add(self, kind: str, name: str, handler: Handler) -> Handler:
        """Register without a decorator (e.g. a callable object)."""
        if kind not in KINDS:
            raise HookError(f"unknown hook kind {kind!r}; use one of {', '.join(KINDS)}")
        if not isinstance(name, str) or not name:
            raise HookError("a hook needs a non-empty name (the one in the bundle manifest)")
        if name in self._by_name:
            raise HookError(f"hook {name!r} is registered twice")
        self._by_name[name] = Registered(name=name, kind=kind, handler=handler, arity=_arity(handler, kind))
        return handler

    def _decorator(self, kind: str, name: str | Handler | None) -> Any:
        if callable(name):  # bare @hooks.pre: the function's name is the hook name, as in Tyk
            return self.add(kind, name.__name__, name)

        def register(handler: Handler) -> Handler:
            return self.add(kind, name or handler.__name__, handler)

        return register

    def __iter__(self) -> Iterator[Registered]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Registered | None:
        return self._by_name.get(name)

    def names(self, kind: str | None = None) -> tuple[str, ...]:
        return tuple(r.name for r in self._by_name.values() if kind is None or r.kind == kind)


# -- running a hook ---------------------------------------------------------------------------------


def _apply_result(obj: Object, result: Any, metadata: dict[str, str], original: dict[str, str],
                  arity: int) -> None:
    if result is not None:
        if not isinstance(result, tuple) or len(result) != arity - 1:
            shape = "(request, session, metadata)" if arity == 4 else "(request, session)"
            raise TypeError(f"hook returned {type(result).__name__}; return None or {shape}")
        returned_request, returned_session = result[0], result[1]
        if isinstance(returned_request, Request):
            returned_request = returned_request.object
        if returned_request is not obj.request:
            if not isinstance(returned_request, mini_request_object_pb2.MiniRequestObject):
                raise TypeError("hook returned a request that is neither the Request wrapper nor its message")
            obj.request.CopyFrom(returned_request)
        if returned_session is not obj.session:
            if not isinstance(returned_session, SessionState):
                raise TypeError("hook returned a session that is not a SessionState")
            obj.session.CopyFrom(returned_session)
        if arity == 4:
            if not isinstance(result[2], Mapping):
                raise TypeError("hook returned metadata that is not a mapping")
            metadata = dict(result[2])
    if metadata != original:
        obj.metadata.clear()
        for key, value in metadata.items():
            obj.metadata[str(key)] = metadata_value(value)


def _apply_response(obj: Object, result: Any) -> None:
    if result is None:
        return
    if isinstance(result, Response):
        result = result.object
    if not isinstance(result, response_object_pb2.ResponseObject):
        raise TypeError(f"response hook returned {type(result).__name__}; return None or the response")
    if result is not obj.response:
        obj.response.CopyFrom(result)



def _refuse_request(obj: Object, status: int, message: str, url: str, method: str) -> None:
    request = obj.request
    # A half-applied edit must not reach the gateway: a bad url alone turns any answer into its own 500.
    request.url = url
    request.method = method
    overrides = request.return_overrides
    overrides.headers.clear()
    overrides.override_error = False
    overrides.response_body = ""
    overrides.response_code = status
    overrides.response_error = message


def _refuse_response(obj: Object, status: int, message: str) -> None:
    response = obj.response
    body = (_TEMPLATE_BODY % json.dumps(message)[1:-1]).encode("utf-8")
    response.status_code = status
    response.raw_body = body
    response.body = body.decode("utf-8")
    response.headers.clear()
    response.headers["Content-Type"] = "application/json"
    del response.multivalue_headers[:]
    response.multivalue_headers.add(key="Content-Type", values=["application/json"])


def _is_status(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599


class HookLog:
    """Hook refusals (INFO) and failures (ERROR), summed into one line each per interval; every
    one at DEBUG. A hook that refuses hostile traffic, or one broken on every request, must not
    cost a log line per call, as auth refusals do not.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.refusals = SummedLog(log, logging.INFO, "hook refused", interval=interval, clock=clock)
        self.failures = SummedLog(log, logging.ERROR, "hook failed", interval=interval, clock=clock)

    def refused(self, hook: str, api: str, status: int, reason: str = "") -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("hook refused hook=%s api=%s status=%d reason=%s", hook, api, status, reason or "-")
        fields: tuple[tuple[str, object], ...] = (("hook", hook), ("api", api), ("status", status))
        self.refusals.add(*fields, *((("reason", reason),) if reason else ()))

    def failed(self, hook: str, api: str, exc: BaseException) -> None:
        error, site = type(exc).__name__, exception_site(exc)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("hook failed hook=%s api=%s error=%s at %s", hook, api, error, site, exc_info=exc)
        self.failures.add(("hook", hook), ("api", api), ("error", error), ("at", site))

    def flush(self, force: bool = False) -> None:
        self.refusals.flush(force)
        self.failures.flush(force)


def run_hook(registered: Registered, obj: Object, observe: OutcomeObserver | None = None,
             logs: HookLog | None = None) -> None:
    """Call one user hook on ``obj`` in place; any failure becomes the gateway's own hook-failure answer."""
    url, method = obj.request.url, obj.request.method
    actual = _KIND_BY_TYPE.get(obj.hook_type)
    outcome = "ok"
    try:
        if actual != registered.kind:
            raise HookError(f"hook {registered.name!r} is registered as {registered.kind} but the gateway "
                            f"called it as {actual or obj.hook_type}: fix the manifest or the decorator")
        request = Request(obj.request)
        spec = dict(obj.spec)
        if registered.kind == "response":
            original = dict(obj.metadata)
            result = registered.handler(request, Response(obj.response), obj.session, original, spec)
            _apply_response(obj, result)
        else:
            original = dict(obj.metadata)
            metadata = dict(original)
            if registered.arity == 4:
                result = registered.handler(request, obj.session, metadata, spec)
            else:
                result = registered.handler(request, obj.session, spec)
            _apply_result(obj, result, metadata, original, registered.arity)
    except BaseException as exc:  # noqa: BLE001 - logged by HookLog; a user hook must never take the answer down, even with sys.exit()
        api = obj.spec.get("APIID", "-")
        logs = logs or HookLog()
        if isinstance(exc, Refuse):
            status, message, outcome = exc.status, exc.message, "refused"
            logs.refused(registered.name, api, status)
        elif isinstance(exc, AuthError) and _is_status(exc.status) and isinstance(exc.message, str):
            status, message, outcome = exc.status, exc.message, "refused"
            logs.refused(registered.name, api, status, exc.reason)
        else:
            status, message, outcome = MIDDLEWARE_ERROR_STATUS, MIDDLEWARE_ERROR, "hook_error"
            logs.failed(registered.name, api, exc)
        if obj.hook_type == HookType.Response:
            _refuse_response(obj, status, message)
        else:
            _refuse_request(obj, status, message, url, method)
    if observe is not None:
        observe(registered.kind, outcome)


def as_router_hooks(*hook_sets: Hooks, on_outcome: OutcomeObserver | None = None,
                    logs: HookLog | None = None) -> dict[str, RouterHook]:
    """What ``HookRouter(auth_hook, authenticate, hooks=...)`` takes; names must be unique across sets.

    ``logs`` sums the hooks' refusals and failures; its owner flushes it now and then, so a burst
    followed by silence is reported too.
    """
    logs = logs or HookLog()
    routed: dict[str, RouterHook] = {}
    for hook_set in hook_sets:
        for registered in hook_set:
            if registered.name in routed:
                raise HookError(f"hook {registered.name!r} is defined more than once")

            def call(obj: Object, _registered: Registered = registered) -> None:
                run_hook(_registered, obj, on_outcome, logs)

            routed[registered.name] = call
    return routed


def manifest_problems(hook_sets: Iterable[Hooks], manifest: Any) -> list[str]:
    """Names the manifest and the loaded hooks disagree on (``manifest`` is a ``plugin.manifest.HookNames``)."""
    registered = {r.name: r.kind for s in hook_sets for r in s}
    problems = []
    for kind in KINDS:
        for name in getattr(manifest, kind, ()):
            if name not in registered:
                problems.append(f"manifest {kind} hook {name!r} has no handler: the gateway's calls pass through")
            elif registered[name] != kind:
                problems.append(f"manifest lists {name!r} under {kind} but it is registered as {registered[name]}")
    listed = {n for kind in KINDS for n in getattr(manifest, kind, ())}
    problems += [f"hook {name!r} is not in the manifest: the gateway never calls it"
                 for name in registered if name not in listed and name not in BUILTIN_HOOKS]
    return problems


# -- loading user hooks -----------------------------------------------------------------------------


_IMPORT_MACHINERY = (__file__, importlib.__file__)


def import_failure(exc: BaseException) -> str:
    """Why importing a hooks target failed, for the log: the exception's type and ``file.py:line``,
    never its message (it may quote a secret the file read); a missing module is named.

    A syntax error names its own line. Otherwise the innermost frame, and when that lies deeper
    than the imported file (in a library it called) also the file's own line that led there.
    """
    described = type(exc).__name__
    if isinstance(exc, ImportError) and exc.name:
        described += f" for module {exc.name!r}"
    if isinstance(exc, SyntaxError):
        return f"{described} at {Path(exc.filename or '?').name}:{exc.lineno or '?'}"
    innermost = exception_site(exc)
    tb = exc.__traceback__
    while tb is not None:  # the first frame past the import machinery is the target's own
        name = tb.tb_frame.f_code.co_filename
        if name not in _IMPORT_MACHINERY and not name.startswith("<frozen "):
            own = f"{Path(name).name}:{tb.tb_lineno}"
            if innermost == own or innermost.startswith("<frozen "):
                return f"{described} at {own}"
            return f"{described} at {innermost} (from {own})"
        tb = tb.tb_next
    return described  # raised by the import machinery itself: a module that cannot be found


def load_module(target: str, attribute: str = "hooks") -> Hooks:
    """The ``Hooks`` a user file or importable module defines (``path.py``, ``pkg.mod``, ``pkg.mod:name``)."""
    if not target.strip():  # `--hooks ""` or "$HOOKS" unset in a script: no file, no module
        raise HookError("an empty name; give a Python file or module defining hooks = Hooks()")
    if ":" in target and not Path(target).exists():
        target, attribute = target.rsplit(":", 1)
    path = Path(target)
    try:
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise HookError(f"hooks file {target} does not exist")
            name = "tyk_auth0_user_hooks_" + re.sub(r"\W", "_", path.stem)
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise HookError(f"cannot load {target} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look the module up by name
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            module = importlib.import_module(target)
    except HookError:
        raise
    except Exception as exc:  # startup: one line, with the hook-failure rule (type and site, never the message)
        log.debug("hooks %s import traceback", target, exc_info=exc)
        raise HookError(f"cannot load hooks from {target}: {import_failure(exc)} (message not logged)") from None
    found = getattr(module, attribute, None)
    if not isinstance(found, Hooks):
        raise HookError(f"{target} defines no {attribute} = Hooks() (got {type(found).__name__})")
    return found


# -- built-in: verified claims to upstream headers ----------------------------------------------------

CLAIMS_TO_HEADERS_HOOK = "Auth0ClaimsToHeaders"
BUILTIN_HOOKS = frozenset({CLAIMS_TO_HEADERS_HOOK})  # served always, used only when a manifest lists them
MAX_HEADER_VALUE = 8192  # bytes, as sent upstream
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ClaimsToHeaders:
    """Post-auth hook: configured claims (from session metadata) become upstream request headers.

    Every configured header is deleted first, so a client can never supply its
    own ``X-User-Id``; it is then set only when the verified token carried the claim.
    """

    def __init__(self, cache_size: int = 256) -> None:
        self._lock = threading.Lock()
        # A bad config is kept as (key, problem), logged once, and raised afresh on each request.
        self._rules: LRUCache[str, HeaderRules | tuple[str, str]] = LRUCache(maxsize=cache_size)

    def rules(self, raw: str | None) -> HeaderRules:
        if not raw:
            return HeaderRules()
        with self._lock:
            found = self._rules.get(raw)
        if found is None:
            found = self._parse(raw)
            with self._lock:
                self._rules[raw] = found
        if isinstance(found, tuple):
            raise ConfigurationError(*found)
        return found

    @staticmethod
    def _parse(raw: str) -> HeaderRules | tuple[str, str]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            problem = ("config_data", "is not valid JSON")
        else:
            try:
                return parse_header_rules(data if isinstance(data, dict) else {})
            except ConfigurationError as exc:
                problem = (exc.key, exc.problem)
        log.error("bad header rules key=%s problem=%s", *problem)
        return problem

    def __call__(self, request: Request, session: SessionState, metadata: dict[str, str],
                 spec: dict[str, str]) -> None:
        rules = self.rules(spec.get("config_data"))
        if not rules:
            return
        if rules.strip_authorization:  # wherever this API reads its tokens, but a cookie
            source = rules.token_source
            if source.header is not None:
                request.delete_header(source.header)
            if source.param is not None:
                request.delete_param(source.param)
            if rules.strip_dpop:
                request.delete_header(DPOP_HEADER)
        stored = session.metadata
        configured = {header_fold(header) for _, header in rules.claims_to_headers}
        for sent in list(request.headers):
            # Any spelling an upstream that folds '_' into '-' (CGI, PHP, nginx) reads as a configured header.
            if header_fold(sent) in configured:
                request.delete_header(sent)
        for claim, header in rules.claims_to_headers:
            request.delete_header(header)
            value = stored.get(CLAIM_METADATA_PREFIX + claim)
            if value is None:
                continue
            if len(value.encode("utf-8", "surrogatepass")) > MAX_HEADER_VALUE or _CONTROL.search(value):
                log.warning("claim not forwarded api=%s claim=%s: value too long or has control characters",
                            spec.get("APIID", "-"), claim[:64])
                continue
            request.add_header(header, value)


def builtin_hooks() -> Hooks:
    """The hooks this server always serves (add their names to the bundle manifest to use them)."""
    hooks = Hooks()
    hooks.add("post_key_auth", CLAIMS_TO_HEADERS_HOOK, ClaimsToHeaders())
    return hooks


def add_serve_arguments(parser: Any) -> None:
    """``serve --hooks``: user hook files or modules to load at startup."""
    parser.add_argument("--hooks", action="append", default=None, metavar="FILE_OR_MODULE",
                        help="Python file or module defining hooks = Hooks(); repeatable "
                             "(env TYK_AUTH0_HOOKS, comma-separated; flags replace the env)")


def hook_targets(args: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``--hooks`` values, else those of ``TYK_AUTH0_HOOKS``."""
    if getattr(args, "hooks", None):
        return list(args.hooks)
    env = os.environ if environ is None else environ
    return [t.strip() for t in env.get("TYK_AUTH0_HOOKS", "").split(",") if t.strip()]


def load_all(targets: Iterable[str]) -> list[Hooks]:
    """The built-in hooks followed by each user target's hooks."""
    return [builtin_hooks(), *(load_module(t) for t in targets)]
