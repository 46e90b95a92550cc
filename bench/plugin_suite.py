"""Plugin level: realistic Dispatch calls from h2load at fixed concurrency, against an echo baseline.

Cases (all on the same grpc server stack, thread count and options):
  echo         bench.servers echo: the ceiling any handler can reach
  warm         ``serve``: the same valid token every call, answered from the verified-token cache
  cold         ``serve --token-cache-size 0``: the same valid token, fully verified every call
  unknown_kid  ``serve``: a kid the JWKS lacks (negative cache; failures are never cached)
  bad_sig      ``serve``: a published kid, signed by another key (full RSA verify, then refused)

Repetitions are interleaved (echo, warm, cold, ... then again), and ratios are taken per
repetition before the median, so drift of the machine hits the case and its baseline alike.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.load import LoadResult, drive, median
from bench.payloads import api_config, forged_token, grpc_frame, request_object, rsa_token
from bench.procs import (
    Process,
    clean_env,
    cores,
    free_port,
    pinned,
    port_open,
    wait_for,
)
from plugin.coprocess import Object, object_pb2_grpc
from tests.support.jwks_server import JwksServer
from tests.support.tokens import SigningKey, rsa_key

Progress = Callable[[str], None]
SERVER_CORE, CLIENT_CORE = 0, 1


@dataclass
class Options:
    workdir: Path
    duration: float = 2.0
    warmup: float = 1.0
    reps: int = 3
    in_flight: int = 64
    threads: int = 4
    pin: bool = True
    progress: Progress = field(default=lambda line: None)

    @property
    def server_core(self) -> int | None:
        return SERVER_CORE if self.pin and cores() >= 2 else None

    @property
    def client_core(self) -> int | None:
        return CLIENT_CORE if self.pin and cores() >= 2 else None


@dataclass
class Case:
    name: str
    server: str  # key into the servers started for the suite
    obj: Object
    check: Callable[[Object, Object], str | None]  # (sent, reply) -> problem or None
    body: Path | None = None
    runs: list[LoadResult] = field(default_factory=list)


def serve_supports(flag: str) -> bool:
    out = subprocess.run([sys.executable, "-m", "plugin", "serve", "--help"], capture_output=True, text=True,
                         timeout=60, check=False)
    return flag in out.stdout


def _granted(sent: Object, reply: Object) -> str | None:
    if reply.request.return_overrides.response_code not in (-1, 0):
        return f"refused with {reply.request.return_overrides.response_code} {reply.request.return_overrides.response_error}"
    if not reply.metadata.get("token") or not reply.session.id_extractor_deadline:
        return "no session / metadata token in the reply"
    return None


def _refused(status: int) -> Callable[[Object, Object], str | None]:
    def check(sent: Object, reply: Object) -> str | None:
        code = reply.request.return_overrides.response_code
        return None if code == status else f"expected a {status} refusal, got {code}"
    return check


def _echoed(sent: Object, reply: Object) -> str | None:
    return None if reply == sent else "reply differs from the request"


def dispatch_once(port: int, obj: Object, host: str = "127.0.0.1") -> Object:
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = object_pb2_grpc.DispatcherStub(channel)
        reply: Object = stub.Dispatch(obj, timeout=15, wait_for_ready=True)
        return reply


def start_server(name: str, argv: Sequence[str], host: str, port: int, opts: Options, hosts: Sequence[str] = ()) -> Process:
    proc = Process(name, argv, opts.workdir / f"{name}.log", env=clean_env()).start()
    try:
        for h in (host, *hosts):
            wait_for(functools.partial(port_open, h, port), 30, f"{name} to listen on {h}:{port}", proc.alive)
    except (RuntimeError, KeyboardInterrupt) as exc:
        tail = proc.log_tail()
        proc.stop()
        raise RuntimeError(f"{name} did not start ({exc}):\n{tail}") from None
    return proc


@dataclass
class Fixture:
    """Keys, JWKS endpoint and the request objects every case sends."""

    key: SigningKey
    jwks: JwksServer
    config: str
    valid: Object
    unknown_kid: Object
    bad_sig: Object

    @classmethod
    def create(cls, jwks: JwksServer, key: SigningKey) -> Fixture:
        config = api_config(jwks.url)
        stranger = rsa_key("kEwYq0pV4sN7mT2zR9bL6d")  # never published
        return cls(
            key=key, jwks=jwks, config=config,
            valid=request_object(rsa_token(key), config),
            unknown_kid=request_object(rsa_token(stranger), config),
            bad_sig=request_object(forged_token(key, stranger), config),
        )


def summarise(runs: Sequence[LoadResult], baseline: Sequence[LoadResult] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "calls_per_s": median([r.calls_per_s for r in runs]),
        "p50_ms": median([r.p50_ms for r in runs]),
        "p90_ms": median([r.p90_ms for r in runs]),
        "p99_ms": median([r.p99_ms for r in runs]),
        "cpu_us_per_call": median([r.cpu_us_per_call for r in runs]),
        "server_cores": median([r.server_cores for r in runs]),
        "client_cpu_share": median([r.client_cpu_s / r.wall_s for r in runs]),
        "other_cores": median([r.other_cores for r in runs]),
        "steal_cores": median([r.steal_cores for r in runs]),
        "reply_bytes": median([r.reply_bytes for r in runs]),
        "failed_calls": sum(r.failed for r in runs),
        "calls_per_s_range": [min(r.calls_per_s for r in runs), max(r.calls_per_s for r in runs)],
        "runs": [r.as_dict() for r in runs],
    }
    if baseline is not None:
        out["ratio"] = median([r.calls_per_s / b.calls_per_s for r, b in zip(runs, baseline, strict=True)])
        out["p99_ratio"] = median([r.p99_ms / b.p99_ms for r, b in zip(runs, baseline, strict=True)])
        out["ratio_range"] = [min(r.calls_per_s / b.calls_per_s for r, b in zip(runs, baseline, strict=True)),
                              max(r.calls_per_s / b.calls_per_s for r, b in zip(runs, baseline, strict=True))]
    return out


def run_plugin_suite(opts: Options) -> dict[str, Any]:
    opts.workdir.mkdir(parents=True, exist_ok=True)
    key = rsa_key("rG3sWqY0aVn8o2uN1kLw4e")
    notes: list[str] = []
    cold_flag = serve_supports("--token-cache-size")
    if not cold_flag:
        notes.append("cold: `serve --token-cache-size` is not available in this checkout; case skipped")
    servers: dict[str, Process] = {}
    ports: dict[str, int] = {}
    threads = ["--threads", str(opts.threads)]
    specs = {
        "echo": [sys.executable, "-m", "bench.servers", "echo", *threads],
        "plugin": [sys.executable, "-m", "plugin", "serve", *threads],
    }
    if cold_flag:
        specs["plugin_nocache"] = [sys.executable, "-m", "plugin", "serve", *threads, "--token-cache-size", "0"]
    with JwksServer(key) as jwks:
        fx = Fixture.create(jwks, key)
        cases = [
            Case("echo", "echo", fx.valid, _echoed),
            Case("warm", "plugin", fx.valid, _granted),
            Case("cold", "plugin_nocache", fx.valid, _granted),
            Case("unknown_kid", "plugin", fx.unknown_kid, _refused(403)),
            Case("bad_sig", "plugin", fx.bad_sig, _refused(403)),
        ]
        cases = [c for c in cases if c.server in specs]
        try:
            for name, argv in specs.items():
                ports[name] = free_port()
                opts.progress(f"plugin: starting {name} server")
                servers[name] = start_server(
                    name, pinned([*argv, "--listen", f"tcp://127.0.0.1:{ports[name]}"], opts.server_core),
                    "127.0.0.1", ports[name], opts)
            for case in cases:
                reply = dispatch_once(ports[case.server], case.obj)
                problem = case.check(case.obj, reply)
                if problem:
                    raise RuntimeError(f"plugin/{case.name}: sanity call failed: {problem}")
                case.body = opts.workdir / f"{case.name}.bin"
                case.body.write_bytes(grpc_frame(case.obj))
            for rep in range(opts.reps):
                for case in cases:
                    server = servers[case.server]
                    assert case.body is not None
                    result = drive([("127.0.0.1", ports[case.server])], case.body, opts.in_flight, opts.duration,
                                   opts.warmup, server.cpu, opts.workdir, opts.client_core)
                    if not server.alive():
                        raise RuntimeError(f"{case.server} server died:\n{server.log_tail()}")
                    case.runs.append(result)
                    opts.progress(f"plugin: rep {rep + 1}/{opts.reps} {case.name:<12} {result.calls_per_s:8,.0f} calls/s"
                                  f"  p99 {result.p99_ms:6.1f} ms  {result.cpu_us_per_call:5.0f} µs CPU/call"
                                  f"  other load {result.other_cores:.2f} cores")
            for case in cases:
                problem = case.check(case.obj, dispatch_once(ports[case.server], case.obj))
                if problem:
                    raise RuntimeError(f"plugin/{case.name}: call after the load failed: {problem}")
        finally:
            for proc in servers.values():
                proc.stop()
        crashes = [name for name, proc in servers.items() if "crashed" in proc.log_tail(200)]
        if crashes:
            notes.append(f"'auth check crashed' in the log of: {', '.join(crashes)}")
    echo_runs = cases[0].runs
    results = {c.name: summarise(c.runs, None if c.name == "echo" else echo_runs) for c in cases}
    for c in cases:
        results[c.name]["reply_bytes_expected_min"] = 1 if c.name != "echo" else len(c.obj.SerializeToString())
        if results[c.name]["reply_bytes"] <= 0 or results[c.name]["failed_calls"]:
            notes.append(f"{c.name}: {results[c.name]['failed_calls']} failed calls, "
                         f"{results[c.name]['reply_bytes']:.0f} reply bytes per call")
    return {
        "available": True,
        "cases": results,
        "request_bytes": len(fx.valid.SerializeToString()),
        "token_bytes": len(fx.valid.request.headers["Authorization"]) - len("Bearer "),
        "headers": len(fx.valid.request.headers),
        "in_flight": opts.in_flight,
        "threads": opts.threads,
        "duration_s": opts.duration,
        "warmup_s": opts.warmup,
        "reps": opts.reps,
        "pinning": (f"server taskset -c {SERVER_CORE}, h2load taskset -c {CLIENT_CORE}"
                    if opts.server_core is not None else "none"),
        "notes": notes,
    }


@dataclass
class Deployment:
    label: str
    workers: int
    pin: bool
    proc: Process | None = None
    port: int = 0
    runs: list[LoadResult] = field(default_factory=list)


def run_workers_suite(opts: Options) -> dict[str, Any]:
    """Cold path, ``serve --workers 1`` vs ``--workers 2`` (by default, and with ``--pin-workers``).

    Two h2load connections either way (one per worker address; both to the one address
    for a single worker), with the calls in flight split between them.
    """
    if not serve_supports("--workers"):
        return {"available": False, "reason": "`serve --workers` is not available in this checkout"}
    opts.workdir.mkdir(parents=True, exist_ok=True)
    key = rsa_key("rG3sWqY0aVn8o2uN1kLw4e")
    deployments = [Deployment("workers_1", 1, False), Deployment("workers_2", 2, False)]
    if cores() >= 2 and serve_supports("--pin-workers"):
        deployments += [Deployment("workers_1_pinned", 1, True), Deployment("workers_2_pinned", 2, True)]
    with JwksServer(key) as jwks:
        fx = Fixture.create(jwks, key)
        body = opts.workdir / "workers-cold.bin"
        body.write_bytes(grpc_frame(fx.valid))
        try:
            for dep in deployments:
                dep.port = port = free_port()
                argv = [sys.executable, "-m", "plugin", "serve", "--listen", f"tcp://127.0.0.1:{port}",
                        "--threads", str(opts.threads), "--token-cache-size", "0", "--workers", str(dep.workers),
                        "--dns-listen", "127.0.0.1:0", *(["--pin-workers"] if dep.pin else [])]
                hosts = [f"127.0.0.{i + 1}" for i in range(dep.workers)]
                opts.progress(f"workers: starting serve --workers {dep.workers}" + (" --pin-workers" if dep.pin else ""))
                dep.proc = start_server(dep.label, argv, hosts[0], port, opts, hosts[1:])
                for host in hosts:
                    problem = _granted(fx.valid, dispatch_once(port, fx.valid, host))
                    if problem:
                        raise RuntimeError(f"{dep.label} at {host}: sanity call failed: {problem}")
            for rep in range(opts.reps):
                for dep in deployments:
                    assert dep.proc is not None
                    targets = [(f"127.0.0.{(i % dep.workers) + 1}", dep.port) for i in range(2)]
                    result = drive(targets, body, opts.in_flight, opts.duration, opts.warmup, dep.proc.cpu,
                                   opts.workdir, None)
                    dep.runs.append(result)
                    opts.progress(f"workers: rep {rep + 1}/{opts.reps} {dep.label:<16} cold "
                                  f"{result.calls_per_s:8,.0f} calls/s  p99 {result.p99_ms:6.1f} ms"
                                  f"  {result.server_cores:.2f} cores, other load {result.other_cores:.2f} cores")
        finally:
            for dep in deployments:
                if dep.proc is not None:
                    dep.proc.stop()
    out: dict[str, Any] = {
        "available": True,
        "case": "cold (serve --token-cache-size 0)",
        "connections": 2,
        "in_flight": opts.in_flight,
        "pinning": "none for workers_1 and workers_2 (the default; h2load shares the cores); *_pinned: "
                   "serve --pin-workers (worker N held to the Nth core), h2load unpinned",
    }
    for dep in deployments:
        base = next(d for d in deployments if d.workers == 1 and d.pin == dep.pin)
        out[dep.label] = summarise(dep.runs, None if dep is base else base.runs)
    out["ratio"] = out["workers_2"]["ratio"]
    if "workers_2_pinned" in out:
        out["ratio_pinned"] = out["workers_2_pinned"]["ratio"]
        shipped, pinned_runs = deployments[1].runs, deployments[3].runs
        out["pinned_2_vs_shipped_2"] = median([p.calls_per_s / u.calls_per_s for p, u in zip(pinned_runs, shipped, strict=True)])
    return out
