"""A throwaway Redis for the gateway: loopback only, no persistence, gone when stopped."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from plugin.devstack.procs import LOOPBACK, ManagedProcess, StackError, free_port, wait_until

DEFAULT_BINARY = "/usr/bin/redis-server"


def find_redis_server() -> str:
    found = shutil.which("redis-server") or (DEFAULT_BINARY if Path(DEFAULT_BINARY).exists() else None)
    if not found:
        raise StackError("redis-server not found (Debian/Ubuntu: apt-get install redis-server)")
    return found


class RedisServer:
    """``redis-server`` on a loopback port in its own temp dir.

    The port is fixed at first start so ``restart()`` brings Redis back where the
    gateway expects it (chaos tests kill and revive it under a running gateway).
    """

    def __init__(
        self,
        port: int = 0,
        host: str = LOOPBACK,
        binary: str | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.binary = binary or find_redis_server()
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="devstack-redis-"))
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, timeout: float = 15.0) -> RedisServer:
        if self._proc is not None and self._proc.running:
            return self
        if self.port == 0:
            self.port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--databases", "16",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._proc = ManagedProcess("redis-server", argv, self.log_path, cwd=self.workdir)
        self._proc.start()
        wait_until(
            self.ping,
            timeout=timeout,
            what=f"redis-server on {self.host}:{self.port}",
            abort=self._proc.exit_reason,
        )
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop and start again on the same port, optionally staying down a while."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    def close(self) -> None:
        """Stop and remove the temp dir (if we made it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    def ping(self) -> bool:
        try:
            return bool(self.command("PING") == "PONG")
        except OSError:
            return False

    def command(self, *args: str | bytes | int, timeout: float = 5.0) -> Any:
        """Send one command and decode the RESP reply (enough for tests: FLUSHALL, KEYS, GET...)."""
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(payload)
            reader = sock.makefile("rb")
            return _read_reply(reader)

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_reply(reader: Any) -> Any:
    line = reader.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise StackError(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read_reply(reader) for _ in range(count)]
    raise StackError(f"unexpected redis reply {line!r}")
