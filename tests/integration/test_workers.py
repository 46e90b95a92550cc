"""serve --workers: several processes behind one DNS name; a round-robin client reaches them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from plugin.coprocess import object_pb2_grpc
from tests.integration.conftest import ROOT, free_port
from tests.support.objects import auth_object


def test_two_workers_share_the_calls_of_one_round_robin_client(tmp_path):
    port, dns_port = free_port(), free_port()
    log = (tmp_path / "workers.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin", "serve", "--workers", "2", "--listen", f"tcp://127.0.0.1:{port}",
         "--dns-listen", f"127.0.0.1:{dns_port}", "--log-level", "DEBUG"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        target = f"dns://127.0.0.1:{dns_port}/tyk-auth0-plugin.internal:{port}"
        channel = grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])
        grpc.channel_ready_future(channel).result(timeout=20)
        stub = object_pb2_grpc.DispatcherStub(channel)
        deadline = time.time() + 20
        while time.time() < deadline:
            reply = stub.Dispatch(auth_object("Bearer garbage"), timeout=5)
            assert reply.request.return_overrides.response_code == 403
            log.flush()
            # Each worker's own denials: its start-up lines name it too, before the channel reaches it.
            denied = [line for line in (tmp_path / "workers.log").read_text().splitlines() if "auth denied" in line]
            if any("[127.0.0.1]" in line for line in denied) and any("[127.0.0.2]" in line for line in denied):
                break
            time.sleep(0.05)
        assert any("[127.0.0.1]" in line for line in denied) and any("[127.0.0.2]" in line for line in denied)
        channel.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log.close()


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def test_pinned_workers_each_hold_to_one_core_round_robin(tmp_path):
    port, dns_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin", "serve", "--workers", "2", "--pin-workers",
         "--listen", f"tcp://127.0.0.1:{port}", "--dns-listen", f"127.0.0.1:{dns_port}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cpus = sorted(os.sched_getaffinity(0))
        deadline = time.time() + 20
        while time.time() < deadline and len(_children(proc.pid)) < 2:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) == 2
        for host in ("127.0.0.1", "127.0.0.2"):  # each worker serving, its threads started
            with grpc.insecure_channel(f"{host}:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=20)
        assert sorted(tuple(os.sched_getaffinity(pid)) for pid in workers) == sorted((cpus[i % len(cpus)],) for i in range(2))
        for pid in workers:
            for task in os.listdir(f"/proc/{pid}/task"):
                assert len(os.sched_getaffinity(int(task))) == 1
        assert os.sched_getaffinity(proc.pid) == set(cpus)  # the supervisor itself stays free
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_a_single_pinned_server_holds_to_the_first_allowed_core(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin", "serve", "--pin-workers", "--listen", f"tcp://127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=20)  # serving, so SIGTERM is handled
        assert os.sched_getaffinity(proc.pid) == {min(os.sched_getaffinity(0))}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_a_worker_refusing_its_settings_stops_the_supervisor_with_exit_2(tmp_path):
    port, dns_port = free_port(), free_port()
    result = subprocess.run(
        [sys.executable, "-m", "plugin", "serve", "--workers", "2", "--listen", f"tcp://127.0.0.1:{port}",
         "--dns-listen", f"127.0.0.1:{dns_port}", "--manifest", str(tmp_path / "missing.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refused its settings" in result.stderr
    assert "restarting" not in result.stderr


def _two_free_ports_in_a_row() -> int:
    import socket

    for _ in range(50):
        first = free_port()
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", first))
                b.bind(("127.0.0.1", first + 1))
            except OSError:
                continue
        return first
    raise RuntimeError("no two free ports in a row")


def test_each_worker_serves_metrics_on_its_own_port(tmp_path):
    import urllib.request

    port, dns_port, metrics_port = free_port(), free_port(), _two_free_ports_in_a_row()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin", "serve", "--workers", "2", "--listen", f"tcp://127.0.0.1:{port}",
         "--dns-listen", f"127.0.0.1:{dns_port}", "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        answered = set()
        deadline = time.time() + 30
        while time.time() < deadline and len(answered) < 2:
            for candidate in (metrics_port, metrics_port + 1):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{candidate}/healthz", timeout=2) as response:
                        if response.status == 200:
                            answered.add(candidate)
                except OSError:
                    pass
            time.sleep(0.2)
        assert answered == {metrics_port, metrics_port + 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whichever process adopts it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_stop_when_their_supervisor_is_killed():
    port, dns_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin", "serve", "--workers", "2", "--listen", f"tcp://127.0.0.1:{port}",
         "--dns-listen", f"127.0.0.1:{dns_port}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline and len(_children(proc.pid)) < 2:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) == 2
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.time() + 30
    while time.time() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if _running(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive


class Supervised:
    """``serve --workers 2`` with its log in a file, for tests that signal it and its workers."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, dns_port = free_port(), free_port()
        self.log = tmp_path / "supervisor.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plugin", "serve", "--workers", "2", "--listen", f"tcp://127.0.0.1:{self.port}",
             "--dns-listen", f"127.0.0.1:{dns_port}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log.open("w"))

    def workers(self) -> list[int]:
        return [pid for pid in _children(self.proc.pid) if _running(pid)]

    def wait_for(self, condition, what: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline and not condition():
            time.sleep(0.02)
        assert condition(), what

    def logged(self, text: str) -> int:
        return self.log.read_text().count(text)

    def serving(self) -> bool:
        for host in ("127.0.0.1", "127.0.0.2"):
            with grpc.insecure_channel(f"{host}:{self.port}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=10)
                except grpc.FutureTimeoutError:
                    return False
        return True

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def test_a_reload_as_the_workers_start_reloads_them_instead_of_killing_them(tmp_path):
    supervised = Supervised(tmp_path)
    try:
        supervised.wait_for(lambda: len(supervised.workers()) == 2, "two workers started")
        supervised.proc.send_signal(signal.SIGHUP)  # while the workers are still importing
        assert supervised.serving()
        supervised.wait_for(lambda: supervised.logged("reloaded") == 2, "both workers reloaded")
        assert supervised.logged("exited with") == 0
    finally:
        assert supervised.stop() == 0


def test_a_worker_waiting_for_its_restart_leaves_the_others_watched(tmp_path):
    supervised = Supervised(tmp_path)
    try:
        supervised.wait_for(lambda: len(supervised.workers()) == 2 and supervised.serving(), "two workers serving")
        first, second = supervised.workers()
        os.kill(first, signal.SIGKILL)
        supervised.wait_for(lambda: supervised.logged("restarting in 1.0 s") == 1, "first worker's death seen")
        os.kill(second, signal.SIGKILL)
        supervised.wait_for(lambda: supervised.logged("exited with -9") == 2, "second worker's death seen")
        assert supervised.workers() == []  # seen while the first still waits out its 1 s, not after it
        supervised.wait_for(lambda: len(supervised.workers()) == 2, "both restarted")
    finally:
        assert supervised.stop() == 0


def test_stopping_while_a_worker_waits_for_its_restart_exits_0(tmp_path):
    supervised = Supervised(tmp_path)
    supervised.wait_for(lambda: len(supervised.workers()) == 2 and supervised.serving(), "two workers serving")
    os.kill(supervised.workers()[0], signal.SIGKILL)
    supervised.wait_for(lambda: supervised.logged("restarting in") == 1, "the death seen")
    assert supervised.stop() == 0


def test_workers_refuse_listen_port_zero_which_each_would_take_differently():
    """Each worker would bind another free port, and the tyk.conf line printed would name port 0."""
    done = subprocess.run([sys.executable, "-m", "plugin", "serve", "--workers", "2", "--listen", "tcp://127.0.0.1:0",
                           "--dns-listen", "127.0.0.1:0"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--workers needs a fixed --listen port" in done.stderr


def _stack_with_workers(tmp_path: Path, **env: str):
    from plugin.devstack.stack import Stack, free_port_range

    stack = Stack(workdir=tmp_path / "stack", with_gateway=False,
                  plugin_args=["--workers", "2", "--dns-listen", f"127.0.0.1:{free_port()}"],
                  plugin_env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", **env})
    stack.ports = {"plugin": free_port(), "metrics": free_port_range(2)}  # worker 2 serves metrics on PORT+1
    return stack


def test_the_stack_waits_for_every_worker_not_only_the_first(tmp_path):
    # Worker 127.0.0.2 starts two seconds late: a gateway started once 127.0.0.1 listens would meet
    # one refusing address (harmless) -- or none listening at all if the first is late (calls fail).
    (tmp_path / "sitecustomize.py").write_text(
        "import os, time\nif os.environ.get('TYK_AUTH0_WORKER') == '127.0.0.2':\n    time.sleep(2)\n")
    stack = _stack_with_workers(tmp_path)
    try:
        stack.start_plugin(timeout=30)
        from plugin.devstack.procs import port_open

        assert port_open(stack.ports["plugin"], "127.0.0.2")
        assert port_open(stack.ports["metrics"] + 1)
    finally:
        stack.stop_plugin()


def test_the_stack_reports_workers_that_stop_after_the_first_listens(tmp_path):
    # Worker 127.0.0.2's metrics port (PORT+1) is taken: it exits 2 after its gRPC port listened, and
    # the supervisor stops every worker. The stack must say so, not hand a dead plugin to the gateway.
    import socket

    from plugin.devstack.procs import StackError

    stack = _stack_with_workers(tmp_path)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", stack.ports["metrics"] + 1))
        taken.listen()
        try:
            with pytest.raises(StackError, match="every worker on 127.0.0.2.*status 2"):
                stack.start_plugin(timeout=30)
        finally:
            stack.stop_plugin()
