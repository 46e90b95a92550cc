"""Dispatch by hook name; the single place where a typed refusal becomes the gateway's reply.

The reply is always the received Object, edited in place, then stripped of what the gateway
never reads back from that hook type's reply (it would otherwise carry the request twice).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from plugin.coprocess import HookType, Object
from plugin.errors import AuthError, UnknownHook
from plugin.logs import SummedLog, exception_site

log = logging.getLogger("plugin.hooks")

Hook = Callable[[Object], None]
_AUTH = HookType.CustomKeyCheck  # resolved once: enum attribute lookups cost on the hot path


class RefusalLog(SummedLog):
    """One INFO line per interval summing refusals by API, status and reason; each one at DEBUG."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(log, logging.INFO, "auth denied", interval=interval, clock=clock)

    def record(self, api: str, status: int, reason: str, request_id: str = "") -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("auth denied api=%s status=%d reason=%s request_id=%s", api, status, reason, request_id or "-")
        self.add(("api", api), ("status", status), ("reason", reason))


def slim_request_reply(obj: Object) -> None:
    """Drop what the gateway never reads back from an auth, Pre, PostKeyAuth or Post reply.

    After those calls the gateway applies raw_body, url, method, set/delete headers and params
    (ObjectPostProcess in gateway/coprocess.go), then reads return_overrides, and session and
    metadata (the session's token names the key in a refusal's log and event; the auth check
    builds the session from them). The request headers (the token among them), params, the
    string copy of the body and the spec map are sent to the plugin but not read from its reply.
    """
    request = obj.request
    request.ClearField("headers")
    request.ClearField("params")
    request.ClearField("body")
    obj.ClearField("spec")


def slim_response_reply(obj: Object) -> None:
    """Drop what the gateway never reads back from a Response hook's reply: all but the response.

    HandleResponse (gateway/coprocess.go) reads the response's status, headers, multivalue
    headers and raw_body; the request, session, metadata, spec and the response's string copy
    of its body are sent to the plugin but not read from its reply.
    """
    obj.ClearField("request")
    obj.ClearField("session")
    obj.ClearField("metadata")
    obj.ClearField("spec")
    obj.response.ClearField("body")


_SLIM_HOOK_REPLY: Mapping[int, Callable[[Object], None]] = {
    HookType.Pre: slim_request_reply,
    HookType.Post: slim_request_reply,
    HookType.PostKeyAuth: slim_request_reply,
    HookType.Response: slim_response_reply,
}  # an unknown hook type's reply is left whole


def api_id(obj: Object) -> str:
    """For log lines only: read when something is logged, never on an accepted call."""
    return obj.spec.get("APIID", "-")


def refuse(obj: Object, error: AuthError) -> None:
    overrides = obj.request.return_overrides
    overrides.response_code = error.status
    overrides.response_error = error.message
    headers = error.headers
    if headers:  # the gateway sets these on its error reply (a DPoP challenge)
        overrides.headers.update(headers)


class HookRouter:
    """``auth_hooks`` are the names an auth call may carry (one, or those of several manifests);
    replacing the attribute with another frozenset swaps them at once, as a reload does.

    ``on_outcome(hook, outcome)`` hears of auth calls refused before the auth check runs (a hook
    name this server does not serve), which an instrumented ``authenticate`` never sees."""

    def __init__(self, auth_hooks: str | Iterable[str], authenticate: Hook, hooks: Mapping[str, Hook] | None = None,
                 on_outcome: Callable[[str, str], None] | None = None) -> None:
        self.auth_hooks = frozenset((auth_hooks,) if isinstance(auth_hooks, str) else auth_hooks)
        self._authenticate = authenticate
        self._hooks = dict(hooks or {})
        self._on_outcome = on_outcome
        self.refusals = RefusalLog()
        self.crashes = 0  # unexpected exceptions in the auth check; always 0 in a healthy build

    def dispatch(self, obj: Object) -> Object:
        if obj.hook_type == _AUTH:
            if obj.hook_name not in self.auth_hooks:
                log.warning("auth call for unknown hook api=%s hook=%r: refused", api_id(obj), obj.hook_name[:64])
                refuse(obj, UnknownHook())
                if self._on_outcome is not None:
                    self._on_outcome("auth_check", UnknownHook.reason)
                return obj
            try:
                self._authenticate(obj)
            except AuthError as error:
                self.refusals.record(api_id(obj), error.status, error.reason,
                                     obj.request.headers.get("X-Request-Id", "")[:64])
                obj.ClearField("session")
                refuse(obj, error)
            except Exception as exc:  # noqa: BLE001 - fail closed, and say where without request data
                self.crashes += 1
                log.error("auth check crashed api=%s error=%s at %s", api_id(obj), type(exc).__name__,
                          exception_site(exc))
                obj.ClearField("session")
                refuse(obj, UnknownHook())
            slim_request_reply(obj)
            return obj
        hook = self._hooks.get(obj.hook_name)
        if hook is not None:
            hook(obj)
        slim = _SLIM_HOOK_REPLY.get(obj.hook_type)
        if slim is not None:
            slim(obj)
        return obj

