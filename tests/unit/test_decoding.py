"""A request that does not parse is answered INVALID_ARGUMENT and summed in the log, never traced."""

from __future__ import annotations

import logging

import grpc
import grpc_testing
import pytest

from plugin.coprocess import Object, object_pb2
from plugin.decoding import Undecodable, UndecodableLog, decoder
from plugin.hooks import HookRouter
from plugin.server import DispatcherService
from tests.support.objects import AUTH_HOOK, auth_object

# hook_type Pre, then hook_name "secret\xff": a string field that is not UTF-8
NOT_AN_OBJECT = b"\x08\x01\x12\x07secret\xff"


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """This module's records only: grpc_testing logs from its own threads, into whichever test runs."""
    return [r for r in caplog.records if r.name == "plugin.decoding"]


def test_a_valid_request_decodes_to_its_message():
    sent = auth_object("Bearer x")
    assert decoder(Object.FromString)(sent.SerializeToString()) == sent


@pytest.mark.parametrize("raw", [NOT_AN_OBJECT, b"\xff\xff\xff", b"\x12\x05ab"])
def test_bytes_that_are_not_the_message_decode_to_a_marker_with_their_size(raw, caplog):
    with caplog.at_level(logging.DEBUG):
        decoded = decoder(Object.FromString)(raw)
    assert isinstance(decoded, Undecodable) and decoded.size == len(raw)
    assert not [r for r in caplog.records if r.name.startswith(("plugin", "grpc._common"))]


def test_an_undecodable_call_is_answered_invalid_argument_and_never_reaches_the_router():
    def must_not_run(obj: Object) -> None:
        raise AssertionError("the router must not see an undecodable call")

    service = object_pb2.DESCRIPTOR.services_by_name["Dispatcher"]
    server = grpc_testing.server_from_dictionary({service: DispatcherService(HookRouter(AUTH_HOOK, must_not_run))},
                                                 grpc_testing.strict_real_time())
    for method, what in (("Dispatch", "coprocess.Object"), ("DispatchEvent", "coprocess.Event")):
        call = server.invoke_unary_unary(service.methods_by_name[method], (), Undecodable(9), None)
        _, _, code, details = call.termination()
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {what}")


def test_undecodable_calls_are_summed_into_one_log_line_per_interval(caplog):
    now = [0.0]
    undecodable = UndecodableLog(interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="plugin.decoding"):
        for _ in range(500):
            undecodable.record("Dispatch", 9)
            now[0] += 0.01
        now[0] += 10
        undecodable.record("DispatchEvent", 4)
    records = logged(caplog)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 2
    assert "(first): method=Dispatch count=1;" in lines[0]
    assert "method=Dispatch count=499 method=DispatchEvent count=1;" in lines[1]
    assert all(r.levelno == logging.WARNING for r in records)


def test_pending_undecodable_calls_are_written_at_shutdown(caplog):
    undecodable = UndecodableLog(interval=10, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="plugin.decoding"):
        undecodable.record("Dispatch", 9)
        undecodable.record("Dispatch", 9)
        undecodable.flush(force=True)
    records = logged(caplog)
    assert len(records) == 2
    assert "method=Dispatch count=1;" in records[-1].getMessage()


def test_each_undecodable_call_is_logged_at_debug_by_method_and_size_only(caplog):
    with caplog.at_level(logging.DEBUG, logger="plugin.decoding"):
        UndecodableLog().record("Dispatch", len(NOT_AN_OBJECT))
    assert f"undecodable call method=Dispatch bytes={len(NOT_AN_OBJECT)}" in caplog.text
    assert "secret" not in caplog.text
