"""Small process, port and HTTP helpers shared by the devstack pieces.

Everything here is loopback-only plumbing; none of it is on the plugin's request path.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, TypeVar

from plugin.httpthread import ServerThread

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    """A devstack component could not be built, started or reached."""


def free_port(host: str = LOOPBACK) -> int:
    """Ask the kernel for an unused TCP port (racy by nature: bind soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def pick_port(preferred: int, host: str = LOOPBACK) -> tuple[int, bool]:
    """Return ``(port, is_preferred)``: the preferred port when free, else any free one.

    ``preferred == 0`` means "any free port" and counts as preferred.
    """
    if preferred == 0:
        return free_port(host), True
    if port_is_free(preferred, host):
        return preferred, True
    return free_port(host), False


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_answers(port: int, host: str = LOOPBACK, path: str = "/healthz", timeout: float = 0.5) -> bool:
    """An HTTP server answers here. A port merely open is not enough: another process may hold it,
    and the kernel completes connects to any listening socket whether or not anyone reads them."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode("ascii"))
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def socket_open(path: Path | str, timeout: float = 0.2) -> bool:
    """A server accepts on this unix socket (a file left by a stopped one refuses the connect)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy.

    ``abort`` lets the caller stop early (e.g. the child exited) with a reason instead
    of burning the whole timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001 - probes talk to half-started processes
            last_exc = exc
            value = None
        if value:
            return value
        if abort is not None:
            reason = abort()
            if reason:
                raise StackError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass(frozen=True)
class HTTPResult:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def http_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> HTTPResult:
    """One HTTP request that never raises on 4xx/5xx and never follows proxies.

    urllib honours *_proxy env vars and raises on error statuses; tests want neither.
    A mapping body is sent as JSON.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    hdrs = dict(headers or {})
    payload: bytes | None
    if isinstance(body, Mapping):
        payload = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        payload = body.encode()
    else:
        payload = body
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        conn.request(method, target, body=payload, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return HTTPResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def _set_pdeathsig() -> None:
    """Have the kernel SIGTERM the child if the parent dies without cleaning up."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class ManagedProcess:
    """A child process in its own session whose output goes to a log file.

    Stopping signals the whole process group so grandchildren cannot outlive us.
    On Linux the child is also bound to the lifetime of the *thread* that starts it.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_set_pdeathsig if sys.platform.startswith("linux") else None,
            )
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_reason(self) -> str | None:
        """Why the process is gone, or None while it runs (for ``wait_until(abort=...)``)."""
        if self.proc is None:
            return "not started"
        code = self.proc.poll()
        if code is None:
            return None
        return f"{self.name} exited with status {code}; log tail:\n{self.log_tail()}"

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, not a shutdown (for fault injection)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5.0)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Reap group members that ignored SIGTERM after the leader exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler base: HTTP/1.1 keep-alive, no per-request stderr noise."""

    protocol_version = "HTTP/1.1"
    server_version = "devstack"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(obj, indent=2).encode() + b"\n", headers=headers)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class BackgroundHTTPServer:
    """A ThreadingHTTPServer on a daemon thread with start/stop and a ``url``.

    Subclasses provide the handler class; the handler reaches its owner via
    ``self.server.owner``.
    """

    handler_class: type[BaseHTTPRequestHandler] = QuietHandler

    def __init__(self, host: str = LOOPBACK, port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self._serving: ServerThread | None = None

    def start(self) -> Self:
        if self._serving is not None:
            return self
        httpd = ThreadingHTTPServer((self.host, self.requested_port), self.handler_class)
        httpd.daemon_threads = True
        httpd.owner = self  # type: ignore[attr-defined]
        self._serving = ServerThread(httpd, name=f"{type(self).__name__}:{httpd.server_address[1]}",
                                     poll_interval=0.1)
        return self

    def stop(self) -> None:
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.stop(timeout=5)

    @property
    def running(self) -> bool:
        return self._serving is not None

    @property
    def port(self) -> int:
        if self._serving is None:
            raise StackError(f"{type(self).__name__} is not started")
        return self._serving.port

    @property
    def url(self) -> str:
        """Base URL with a trailing slash."""
        host = LOOPBACK if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_signal(
    stop: Callable[[], None],
    *,
    banner: str = "",
    check: Callable[[], str | None] | None = None,
) -> int:
    """Block the main thread until SIGINT/SIGTERM, then run ``stop``.

    ``check`` is polled; a reason from it (a child died) ends the wait with status 1.
    """
    done = threading.Event()
    failure: str | None = None

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if banner:
            print(banner, flush=True)
        while not done.wait(0.5):
            failure = check() if check else None
            if failure:
                print(f"stopping: {failure}", file=sys.stderr, flush=True)
                break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stop()
    return 1 if failure else 0
