"""Python stubs for Tyk's coprocess protocol, generated from ../proto by scripts/gen_proto.py."""

from . import (
    coprocess_common_pb2 as common_pb2,
    coprocess_mini_request_object_pb2 as mini_request_object_pb2,
    coprocess_object_pb2 as object_pb2,
    coprocess_object_pb2_grpc as object_pb2_grpc,
    coprocess_response_object_pb2 as response_object_pb2,
    coprocess_return_overrides_pb2 as return_overrides_pb2,
    coprocess_session_state_pb2 as session_state_pb2,
)

HookType = common_pb2.HookType
Object = object_pb2.Object
Event = object_pb2.Event
EventReply = object_pb2.EventReply
MiniRequestObject = mini_request_object_pb2.MiniRequestObject
SessionState = session_state_pb2.SessionState
AccessDefinition = session_state_pb2.AccessDefinition

__all__ = [
    "AccessDefinition",
    "Event",
    "EventReply",
    "HookType",
    "MiniRequestObject",
    "Object",
    "SessionState",
    "common_pb2",
    "mini_request_object_pb2",
    "object_pb2",
    "object_pb2_grpc",
    "response_object_pb2",
    "return_overrides_pb2",
    "session_state_pb2",
]
