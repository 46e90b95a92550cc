"""The Dispatcher service's registration, with request decoding that never raises.

grpc answers a request that does not parse as INTERNAL and logs "Exception deserializing
message!" with a traceback at ERROR, for every such call: anything that reaches the port could
flood the log. Here the deserializer returns an ``Undecodable`` marker instead, which the
servicer answers INVALID_ARGUMENT, and such calls are summed into one log line per interval.
A valid request is parsed exactly once, where grpc parses it, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, TypeVar

import grpc

from plugin.coprocess import Event, EventReply, Object, object_pb2
from plugin.logs import SummedLog

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


class UndecodableLog(SummedLog):
    """One WARNING line per interval summing undecodable calls by method; each one at DEBUG.

    The request's bytes are never logged: they are whatever a stranger sent.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(log, logging.WARNING, "undecodable calls",
                         note="; answered INVALID_ARGUMENT (a client other than the gateway, "
                              "or a gateway speaking another coprocess protocol?)",
                         interval=interval, clock=clock)

    def record(self, method: str, size: int) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("undecodable call method=%s bytes=%d", method, size)
        self.add(("method", method))


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
