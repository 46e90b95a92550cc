"""The benchmark's ceiling servicers answer on a real socket the way their ratios assume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from bench.servers import STUB_SESSION_KEY
from plugin.coprocess import Object, object_pb2_grpc
from tests.integration.conftest import ROOT, free_port
from tests.support.objects import auth_object


@contextmanager
def ceiling_server(*args: str) -> Iterator[object_pb2_grpc.DispatcherStub]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.servers", *args, "--listen", f"tcp://127.0.0.1:{port}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=20)
        yield object_pb2_grpc.DispatcherStub(channel)
    finally:
        channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_echo_returns_the_request_untouched() -> None:
    sent = auth_object("Bearer anything")
    with ceiling_server("echo") as stub:
        reply: Object = stub.Dispatch(sent, timeout=10)
    assert reply == sent


def test_stub_grants_its_fixed_session_without_reading_the_token() -> None:
    sent = auth_object("Bearer not-a-token")
    with ceiling_server("stub", "--policy", "auth0-policy") as stub:
        reply: Object = stub.Dispatch(sent, timeout=10)
    assert reply.request.return_overrides == sent.request.return_overrides  # no refusal
    assert list(reply.session.apply_policies) == ["auth0-policy"]
    assert reply.metadata["token"] == STUB_SESSION_KEY
    assert not reply.request.headers  # slimmed like the plugin's own reply


def test_stub_refuses_to_start_without_a_policy() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.servers", "stub", "--listen", "tcp://127.0.0.1:1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "--policy" in proc.stderr
