"""The Dispatcher service's registration, with request decoding that never raises.

grpc answers a request that does not parse as INTERNAL and logs "Exception deserializing
message!" with a traceback at ERROR, for every such call: anything that reaches the port could
flood the log. Here the deserializer returns an ``Undecodable`` marker instead, which the
servicer answers INVALID_ARGUMENT, and such calls are summed into one log line per interval.
A valid request is parsed exactly once, where grpc parses it, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, TypeVar

import grpc

from plugin.coprocess import Event, EventReply, Object, object_pb2

log = logging.getLogger("plugin.decoding")

SERVICE = object_pb2.DESCRIPTOR.services_by_name["Dispatcher"].full_name  # "coprocess.Dispatcher"

Message = TypeVar("Message")


class Undecodable:
    """What a handler gets in place of a request whose bytes are not the method's message."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def decoder(parse: Callable[[bytes], Message]) -> Callable[[bytes], Message | Undecodable]:
    def decode(raw: bytes) -> Message | Undecodable:
        try:
            return parse(raw)
        except Exception:  # noqa: BLE001 - whatever the parser raises, these bytes are not the message
            return Undecodable(len(raw))

    return decode


class UndecodableLog:
    """One WARNING line per interval summing undecodable calls by method; each one at DEBUG.

    The request's bytes are never logged: they are whatever a stranger sent.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._since = float("-inf")  # the first one is logged at once

    def record(self, method: str, size: int) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("undecodable call method=%s bytes=%d", method, size)
        with self._lock:
            self._counts[method] += 1
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Write the pending sums once the interval has passed (or now, with ``force``)."""
        now = self._clock()
        with self._lock:
            if not self._counts or (not force and now - self._since < self.interval):
                return
            counts, self._counts, since, self._since = self._counts, Counter(), self._since, now
        summary = " ".join(f"method={m} count={n}" for m, n in counts.most_common())
        window = f"in the last {now - since:.0f} s" if since != float("-inf") else "(first)"
        log.warning("undecodable calls %s: %s; answered INVALID_ARGUMENT (a client other than the gateway, "
                    "or a gateway speaking another coprocess protocol?)", window, summary)


def refuse_undecodable(context: Any, what: str) -> NoReturn:
    """End the call with INVALID_ARGUMENT: grpc logs nothing for a call its handler aborted."""
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {what}")
    raise AssertionError("grpc's context.abort() raises")  # for the type checker


class Dispatcher(Protocol):
    def Dispatch(self, request: Object | Undecodable, context: Any) -> Object: ...  # noqa: N802

    def DispatchEvent(self, request: Event | Undecodable, context: Any) -> EventReply: ...  # noqa: N802


def add_dispatcher(servicer: Dispatcher, server: grpc.Server) -> None:
    """``object_pb2_grpc.add_DispatcherServicer_to_server``, with decoders that never raise."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Dispatch": grpc.unary_unary_rpc_method_handler(
            servicer.Dispatch, request_deserializer=decoder(Object.FromString),
            response_serializer=Object.SerializeToString),
        "DispatchEvent": grpc.unary_unary_rpc_method_handler(
            servicer.DispatchEvent, request_deserializer=decoder(Event.FromString),
            response_serializer=EventReply.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
