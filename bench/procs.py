"""Child processes for benchmarks: started in their own process group, always stopped, CPU read from /proc."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Self

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parents[1]


def cores() -> int:
    return len(os.sched_getaffinity(0))


def clean_env() -> dict[str, str]:
    """This environment without the plugin's own settings, so every server runs with the flags given."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TYK_AUTH0_", "AUTH0_"))}


def pinned(argv: Sequence[str], core: int | None) -> list[str]:
    """``taskset -c CORE argv`` when pinning is possible, else argv unchanged."""
    if core is None or shutil.which("taskset") is None or cores() < 2:
        return list(argv)
    return ["taskset", "-c", str(core), *argv]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise RuntimeError(f"{what}: the process exited")
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a supervisor and its workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue.extend(int(c) for c in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    return found


def system_jiffies() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


class MachineLoad:
    """Cores the whole machine was busy over a window, to tell our load from everyone else's."""

    def __init__(self) -> None:
        self.busy0, self.steal0 = system_jiffies()

    def cores(self, wall: float) -> tuple[float, float]:
        """(busy cores, stolen cores) since construction."""
        busy, steal = system_jiffies()
        return (busy - self.busy0) / CLK_TCK / wall, (steal - self.steal0) / CLK_TCK / wall


def children_named(name: str) -> list[int]:
    """Direct children of this process whose executable name is ``name`` (e.g. the gateway's ``tyk``)."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            pids = [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ValueError):
            continue
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == name[:15]:
                    found.append(pid)
            except FileNotFoundError:
                continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in descendants(pid))


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


class Process:
    """A child in its own session (so its whole group can be killed), with output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path = REPO_ROOT) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONPATH", str(REPO_ROOT))
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Process:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.popen is not None:
            if self.popen.poll() is None:
                _signal_group(self.popen.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout)
            _signal_group(self.popen.pid, signal.SIGKILL)  # stragglers (workers) in the same group
            if self.popen.poll() is None:
                self.popen.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_clients(commands: Sequence[Sequence[str]], timeout: float) -> tuple[list[tuple[int, str]], float]:
    """Run load generators side by side to completion: [(exit code, output)] and their total CPU seconds.

    Client CPU comes from RUSAGE_CHILDREN, which grows only when a child is reaped; the
    servers stay unreaped while clients run, so the delta is the clients' alone.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True) for argv in commands]
    results: list[tuple[int, str]] = []
    try:
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=timeout)
                results.append((proc.returncode, out.decode(errors="replace")))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                results.append((-9, out.decode(errors="replace") + "\n(killed: timeout)"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return results, used
