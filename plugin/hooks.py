"""Dispatch by hook name; the single place where a typed refusal becomes the gateway's reply.

The reply is always the received Object, edited in place: the gateway reads the
request's url, method and body back from it, so nothing may be dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from plugin.coprocess import HookType, Object
from plugin.errors import AuthError, UnknownHook
from plugin.logs import exception_site

log = logging.getLogger("plugin.hooks")

Hook = Callable[[Object], None]
_AUTH = HookType.CustomKeyCheck  # resolved once: enum attribute lookups cost on the hot path


class RefusalLog:
    """One INFO line per interval summing refusals by reason; each one at DEBUG.

    A line per refusal would let a flood of forged tokens cost as much in logging as in checking.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._counts: Counter[tuple[str, int, str]] = Counter()
        self._lock = threading.Lock()
        self._since = float("-inf")  # the first refusal is logged at once

    def record(self, api: str, status: int, reason: str, request_id: str = "") -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("auth denied api=%s status=%d reason=%s request_id=%s", api, status, reason, request_id or "-")
        with self._lock:
            self._counts[(api, status, reason)] += 1
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Write the pending sums once the interval has passed (or now, with ``force``); the server
        calls this every second too, so a burst followed by silence is still reported."""
        now = self._clock()
        with self._lock:
            if not self._counts or (not force and now - self._since < self.interval):
                return
            counts, self._counts, since, self._since = self._counts, Counter(), self._since, now
        summary = " ".join(f"api={a} status={s} reason={r} count={n}" for (a, s, r), n in counts.most_common())
        window = f"in the last {now - since:.0f} s" if since != float("-inf") else "(first)"
        log.info("auth denied %s: %s", window, summary)


def slim_auth_reply(obj: Object) -> None:
    """Drop what the gateway never reads back from an auth reply, to halve the bytes on the wire.

    After an auth call the gateway applies raw_body, url, method, set/delete headers and params,
    return_overrides, session and metadata (ObjectPostProcess and the auth decision in
    gateway/coprocess.go). The request headers (the token among them), params, the string copy of
    the body and the spec map are sent to the plugin but not read from its reply.
    """
    request = obj.request
    request.ClearField("headers")
    request.ClearField("params")
    request.ClearField("body")
    obj.ClearField("spec")


def api_id(obj: Object) -> str:
    """For log lines only: read when something is logged, never on an accepted call."""
    return obj.spec.get("APIID", "-")


def refuse(obj: Object, error: AuthError) -> None:
    overrides = obj.request.return_overrides
    overrides.response_code = error.status
    overrides.response_error = error.message


class HookRouter:
    def __init__(self, auth_hook: str, authenticate: Hook, hooks: Mapping[str, Hook] | None = None) -> None:
        self.auth_hook = auth_hook
        self._authenticate = authenticate
        self._hooks = dict(hooks or {})
        self.refusals = RefusalLog()
        self.crashes = 0  # unexpected exceptions in the auth check; always 0 in a healthy build

    def dispatch(self, obj: Object) -> Object:
        if obj.hook_type == _AUTH:
            if obj.hook_name != self.auth_hook:
                log.warning("auth call for unknown hook api=%s hook=%r: refused", api_id(obj), obj.hook_name[:64])
                refuse(obj, UnknownHook())
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
            slim_auth_reply(obj)
            return obj
        hook = self._hooks.get(obj.hook_name)
        if hook is not None:
            hook(obj)
        return obj

