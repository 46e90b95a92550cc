from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.support import tokens as t
from tests.support.jwks_server import JwksServer

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m plugin serve`` in a child process, as an operator would start it."""

    def __init__(self, listen: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.listen = listen
        self.target = listen.replace("tcp://", "") if listen.startswith("tcp://") else listen
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugin", "serve", "--listen", listen, *args],
            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.channel = grpc.insecure_channel(self.target)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=15)
        except grpc.FutureTimeoutError:
            self.proc.kill()
            _, stderr = self.proc.communicate()
            raise RuntimeError("plugin server did not start: " + stderr) from None

    def stop(self) -> tuple[int, str]:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


@pytest.fixture()
def keys() -> tuple[t.SigningKey, t.SigningKey]:
    return t.rsa_key("cur"), t.rsa_key("next")


@pytest.fixture()
def jwks_server(keys) -> Iterator[JwksServer]:
    with JwksServer(*keys) as server:
        yield server


@pytest.fixture()
def server(jwks_server) -> Iterator[ServerProcess]:
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}")
    yield proc
    proc.stop()


Handler = Callable[[socketserver.BaseRequestHandler], None]


@pytest.fixture()
def endpoint() -> Iterator[Callable[[Handler], str]]:
    """A raw TCP server answering each connection with ``handle``, for endpoints that misbehave."""
    servers: list[socketserver.ThreadingTCPServer] = []

    def serve(handle: Handler) -> str:
        handler = type("H", (socketserver.BaseRequestHandler,), {"handle": handle})
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def dripping(head: bytes, drop: bytes, times: int) -> Handler:
    """A handler that sends ``head``, then ``drop`` every 0.1 s, ``times`` times: each socket wait
    is short, only the whole exchange is long."""

    def handle(self: socketserver.BaseRequestHandler) -> None:
        self.request.recv(65536)
        try:
            self.request.sendall(head)
            for _ in range(times):
                time.sleep(0.1)
                self.request.sendall(drop)
        except OSError:
            pass

    return handle
