"""Several server processes behind one name, so every core serves the gateway's calls.

The gateway keeps one HTTP/2 connection to its plugin, so processes sharing a port
(SO_REUSEPORT) would not share its calls. With ``grpc_round_robin_load_balancing`` and a
``dns://`` target, the gateway's gRPC client opens one connection per address the name
resolves to and spreads calls across them. Here each worker binds its own loopback address
(127.0.0.1, 127.0.0.2, ...) on the same port, and a tiny DNS responder on loopback answers
the name with those addresses:

    coprocess_grpc_server: "dns://127.0.0.1:5554/tyk-auth0-plugin.internal:5555"

In Kubernetes a headless Service gives the same effect with one pod per address.

With ``--pin-workers`` each worker is held to one core (worker N to the Nth allowed core,
round robin): a worker's gRPC threads then never hand its GIL across cores, which is worth
most on a host whose cores are the plugin's own and still pays beside the gateway. Separate
``serve --pin-workers`` processes on one host each take the first core, so pin one of them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("plugin.workers")

DEFAULT_DNS_NAME = "tyk-auth0-plugin.internal"
WORKER_CPU_ENV = "TYK_AUTH0_WORKER_CPU"  # set by the supervisor for each pinned worker
SUPERVISOR_PID_ENV = "TYK_AUTH0_SUPERVISOR_PID"  # a worker stops once its parent is no longer this process
EXIT_USAGE = 2  # what serve exits with when a setting is wrong
RESTART_WINDOW = 10.0  # a worker that dies sooner than this after its start restarts with a growing delay
POLL_INTERVAL = 0.25  # how often the supervisor looks at its workers
_TYPE_A = 1
_CLASS_IN = 1


def worker_addresses(host: str, count: int) -> list[str]:
    """Consecutive loopback addresses starting at ``host`` (which must be loopback IPv4)."""
    try:
        first = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"--workers needs an IPv4 loopback --listen host, not {host!r}") from None
    if not first.is_loopback:
        raise ValueError("--workers needs a loopback --listen host; across hosts, run one process per host or pod "
                         "behind a DNS name (see deploy/kubernetes)")
    addresses = [str(first + i) for i in range(count)]
    if not all(ipaddress.IPv4Address(a).is_loopback for a in addresses):
        raise ValueError("--workers runs past 127.255.255.255")
    return addresses


def dns_answer(query: bytes, name: str, addresses: Sequence[str], ttl: int = 30) -> bytes | None:
    """A DNS response for ``query``: A records for ``name``, empty for its other types, NXDOMAIN otherwise."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1 or flags & 0x8000:
        return None
    labels, offset = [], 12
    while True:
        if offset >= len(query):
            return None
        length = query[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0 or offset + 1 + length > len(query):
            return None
        labels.append(query[offset + 1: offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    if offset + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[offset: offset + 4])
    question = query[12: offset + 4]
    asked = ".".join(labels).lower().rstrip(".")
    matched = asked == name.lower().rstrip(".")
    answers = b""
    count = 0
    if matched and qtype == _TYPE_A and qclass == _CLASS_IN:
        for address in addresses:
            answers += struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, ttl, 4) + socket.inet_aton(address)
            count += 1
    rcode = 0 if matched else 3
    out_flags = 0x8000 | 0x0400 | (flags & 0x7900) | rcode  # QR, AA, opcode+RD copied
    return struct.pack("!HHHHHH", ident, out_flags, 1, count, 0, 0) + question + answers


class DnsResponder:
    """Answers one name with the workers' addresses, on a loopback UDP port."""

    def __init__(self, host: str, port: int, name: str, addresses: Sequence[str]) -> None:
        self.name = name
        self.addresses = list(addresses)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
        self._stop = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = dns_answer(query, self.name, self.addresses)
            if answer is None:
                continue
            try:
                self.sock.sendto(answer, peer)
            except OSError as exc:  # one peer's lost reply (a firewall, a spoofed source); never the responder
                log.debug("dns reply to %s not sent: %s", peer[0] if peer else "-", exc.strerror or type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin_this_process(environ: Mapping[str, str], pin: bool) -> int | None:
    """Hold this process (and every thread it starts later) to one core.

    A worker takes the core its supervisor chose; a lone ``serve --pin-workers`` the first
    core it may use. Returns the core, or None when nothing asks for pinning.
    """
    chosen = environ.get(WORKER_CPU_ENV, "")
    if not chosen and not pin:
        return None
    cpu = int(chosen) if chosen else allowed_cpus()[0]
    os.sched_setaffinity(0, {cpu})
    return cpu


@dataclass
class Supervisor:
    """Starts one ``serve`` process per address, restarts any that die, stops them all on a signal."""

    addresses: list[str]
    port: int
    argv: list[str]  # serve flags other than --listen/--workers, passed to every worker
    cpus: list[int] | None = None  # with --pin-workers: the cores to hold workers to, round robin
    metrics: tuple[str, int] | None = None  # --metrics-listen HOST:PORT: worker i serves PORT+i

    def __post_init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._restarts: dict[str, int] = {}  # fast restarts in a row, for the backoff
        self._started: dict[str, float] = {}

    def _spawn(self, address: str) -> None:
        index = self.addresses.index(address)
        cmd = [sys.executable, "-m", "plugin", "serve", "--listen", f"tcp://{address}:{self.port}", *self.argv]
        if self.metrics is not None:
            cmd += ["--metrics-listen", f"{self.metrics[0]}:{self.metrics[1] + index}"]
        env = dict(os.environ, TYK_AUTH0_WORKER=address, **{SUPERVISOR_PID_ENV: str(os.getpid())})
        if self.cpus:
            env[WORKER_CPU_ENV] = str(self.cpus[index % len(self.cpus)])
        # The worker starts with SIGHUP held, so a reload passed on before its handler is set waits
        # for it instead of killing the worker (serve releases it).
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            self.procs[address] = subprocess.Popen(cmd, env=env)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        self._started[address] = time.monotonic()

    def run(self) -> int:
        """Until stopped; 2 when a worker refuses its settings (exit 2), which no restart can mend."""
        for address in self.addresses:
            self._spawn(address)
        code = 0
        restart_at: dict[str, float] = {}  # dead workers and when each starts again: the others stay watched
        while not self._stopping.wait(POLL_INTERVAL):
            now = time.monotonic()
            for address, proc in list(self.procs.items()):
                if address in restart_at:
                    if now >= restart_at[address]:
                        del restart_at[address]
                        self._spawn(address)
                    continue
                if proc.poll() is None:
                    continue
                if proc.returncode == EXIT_USAGE:
                    log.error("worker %s refused its settings (exit 2): stopping every worker", address)
                    code = EXIT_USAGE
                    self._stopping.set()
                    break
                fast = now - self._started[address] < RESTART_WINDOW
                self._restarts[address] = self._restarts.get(address, 0) + 1 if fast else 0
                delay = min(0.5 * 2 ** self._restarts[address], 30.0)
                log.warning("worker %s exited with %s: restarting in %.1f s", address, proc.returncode, delay)
                restart_at[address] = now + delay
        # A worker waiting for its restart already died and was reported; the stop is judged by the rest.
        live = [proc for address, proc in self.procs.items() if address not in restart_at]
        for proc in live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait() for proc in live]
        if code:
            return code
        return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1

    def stop(self) -> None:
        self._stopping.set()

    def reload(self) -> None:
        """Pass SIGHUP on: every worker re-reads its configuration."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGHUP)
