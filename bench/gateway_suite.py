"""Gateway level: wrk through the real Tyk gateway (plugin.devstack.Stack) to one echo upstream.

APIs, all with the same token and upstream:
  keyless        no auth: the gateway + upstream ceiling
  native_jwt     Tyk's own JWT middleware (the baseline every plugin figure is divided by)
  plugin_idext   the gRPC plugin with the manifest's ID extractor: repeat tokens are answered
                 from the gateway's session cache until id_extractor_deadline
  plugin_noext   the gRPC plugin with the extractor disabled: every request calls the plugin

Every API proxies to the same upstream, ``bench.upstream`` (an asyncio echo in its own
process, ~80k req/s alone), rather than the devstack's thread-per-connection one, which
caps near the gateway's own rate and would squeeze every ratio toward 1.0. Everything
(gateway, Redis, plugin, upstream, wrk) shares the machine's cores; nothing is pinned, as in
a one-box deployment.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from bench.load import median
from bench.procs import (
    REPO_ROOT,
    Process,
    children_named,
    cores,
    free_port,
    port_open,
    run_clients,
    tree_cpu_seconds,
    wait_for,
)

NOEXT_API_ID = "auth0-plugin-noext"
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")


def gateway_binary() -> tuple[Path | None, str]:
    """A gateway binary without building one (a build can take many minutes): (path, reason if none)."""
    env_bin = os.environ.get("TYK_GATEWAY_BIN")
    if env_bin:
        return (Path(env_bin), "") if os.access(env_bin, os.X_OK) else (None, f"TYK_GATEWAY_BIN={env_bin} is not executable")
    cache = Path(os.environ.get("TYK_GATEWAY_CACHE", REPO_ROOT / ".cache" / "gateway"))
    if not any(cache.glob("tyk-*/tyk")):
        return None, "no gateway binary: set TYK_GATEWAY_BIN, or build one first with `make gateway`"
    try:
        from plugin.devstack.gateway import find_gateway_binary
        return find_gateway_binary(timeout=120), ""
    except Exception as exc:  # noqa: BLE001 - any failure here means "skip, and say why"
        return None, f"no gateway binary: {exc}"


# wrk reads the tokens once per run and sends them in order from BENCH_TOKEN_OFFSET (1-based index - 1).
_ROTATE_LUA = """
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local i = tonumber(os.getenv("BENCH_TOKEN_OFFSET") or "0")
request = function()
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
"""
# Tokens minted per second of load: above any first-seen rate through the gateway on the 2-core
# machine this was written on (native JWT ~4,000 req/s); a faster run repeats tokens and says so.
FIRST_SEEN_RATE_BOUND = 4_000


class FirstSeen(NamedTuple):
    """A slice of a minted token file that no earlier run has sent."""

    script: Path
    offset: int
    size: int


def mint_first_seen(stack: Any, workdir: Path, slices: int, per_slice: int) -> list[FirstSeen]:
    """``slices`` disjoint runs' worth of tokens from the stack's IdP, one client (``sub``) each."""
    assert stack.idp is not None
    tokens = workdir / "first-seen-tokens.txt"
    with tokens.open("w") as out:
        for n in range(slices * per_slice):
            out.write(stack.idp.issue_token(stack.client_id, sub=f"bench-client-{n}@clients") + "\n")
    script = workdir / "first-seen.lua"
    script.write_text(_ROTATE_LUA % tokens)
    return [FirstSeen(script, n * per_slice, per_slice) for n in range(slices)]


def parse_wrk(out: str, latency: bool = True) -> dict[str, Any]:
    latencies = {f"p{q}_ms": float(v) * _UNIT_MS[u] for q, v, u in _LATENCY.findall(out)}
    rate, total = _RATE.search(out), _TOTAL.search(out)
    non2xx, errors = _NON2XX.search(out), _ERRORS.search(out)
    if rate is None or total is None or (latency and "p99_ms" not in latencies):
        raise RuntimeError(f"cannot read wrk output:\n{out[-1500:]}")
    return {
        "req_per_s": float(rate.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        **latencies,
    }


def wrk(url: str, token: str | FirstSeen, connections: int, duration: float, latency: bool = True,
        watch: dict[str, int] | None = None) -> dict[str, Any]:
    """One wrk run; ``watch`` names processes whose CPU over the run is reported per request.

    ``token`` is one token for every request, or a FirstSeen slice: each request a token not sent before.
    """
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration))}s"]
    if isinstance(token, FirstSeen):
        argv = ["env", f"BENCH_TOKEN_OFFSET={token.offset}", *argv, "-s", str(token.script)]
    else:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if latency:
        argv.append("--latency")
    watch = watch or {}
    before = {name: tree_cpu_seconds(pid) for name, pid in watch.items()}
    (result,), client_cpu = run_clients([[*argv, url]], timeout=duration + 60)
    used = {name: tree_cpu_seconds(pid) - before[name] for name, pid in watch.items()}
    code, out = result
    if code != 0:
        raise RuntimeError(f"wrk failed (exit {code}):\n{out[-1500:]}")
    parsed = parse_wrk(out, latency)
    parsed["client_cpu_s"] = client_cpu
    parsed["wrk_cpu_us_per_req"] = client_cpu / parsed["requests"] * 1e6 if parsed["requests"] else float("nan")
    for name, seconds in used.items():
        parsed[f"{name}_cores"] = seconds / duration
        parsed[f"{name}_cpu_us_per_req"] = seconds / parsed["requests"] * 1e6 if parsed["requests"] else float("nan")
    return parsed


class StackDidNotStart(Exception):
    """The stack for a gateway suite could not start; the suite is skipped with this reason."""


class FourApis(NamedTuple):
    """A running stack with the suite's four APIs behind one upstream, checked with one token."""
    stack: Any
    urls: dict[str, str]
    token: str
    watch: dict[str, int]


def _gateway_prerequisites() -> tuple[Path | None, str]:
    if shutil.which("wrk") is None:
        return None, "wrk is not installed (Debian package wrk)"
    binary, reason = gateway_binary()
    if binary is None:
        return None, reason
    try:
        import plugin.devstack.stack  # noqa: F401
    except ImportError as exc:
        return None, f"plugin.devstack.stack is not importable: {exc}"
    return binary, ""


@contextlib.contextmanager
def four_api_stack(binary: Path, workdir: Path, progress: Callable[[str], None],
                   gateway_config: dict[str, Any] | None = None) -> Iterator[FourApis]:
    """Redis, the IdP stand-in, the plugin, ``bench.upstream`` and Tyk with keyless, native and two plugin APIs.

    Raises StackDidNotStart when the stack cannot start (the suite is then skipped, with the reason).
    """
    from plugin.devstack import gateway as gw
    from plugin.devstack.stack import Stack

    workdir.mkdir(parents=True, exist_ok=True)
    progress("gateway: starting the stack (Redis, IdP stand-in, plugin, upstream, Tyk)")
    try:
        stack = Stack(workdir=workdir / "stack", gateway_bin=binary, extra_apis=[], extra_policies=[],
                      log_level="error", gateway_config=gateway_config)
        stack.start()
    except Exception as exc:
        raise StackDidNotStart(f"the stack did not start: {exc}") from exc
    upstream: Process | None = None
    try:
        assert stack.gateway is not None
        port = free_port()
        upstream = Process("upstream", [sys.executable, "-m", "bench.upstream", "--port", str(port)],
                           workdir / "upstream.log").start()
        wait_for(lambda: port_open("127.0.0.1", port), 20, "the bench upstream", upstream.alive)
        target = f"http://127.0.0.1:{port}"
        for api in list(stack.gateway.apis.values()):
            stack.gateway.put_api({**api, "proxy": {**api["proxy"], "target_url": target}})
        section = dict(gw.load_manifest()["custom_middleware"])
        section["id_extractor"] = {**section.get("id_extractor", {}), "disabled": True}
        stack.gateway.put_api(gw.plugin_api(target, stack.config_data(), bundle=None,
                                            manifest={"custom_middleware": section},
                                            api_id=NOEXT_API_ID, listen_path=f"/{NOEXT_API_ID}/"))
        stack.gateway.put_policy(gw.policy(gw.DEFAULT_POLICY_ID, (gw.NATIVE_API_ID, gw.PLUGIN_API_ID, NOEXT_API_ID),
                                           name="Auth0 policy"))
        stack.gateway.reload()
        token = stack.token()
        watch = {"upstream": upstream.pid}
        if stack.plugin is not None and stack.plugin.pid is not None:
            watch["plugin"] = stack.plugin.pid
        for name, executable in (("gateway", binary.name), ("redis", "redis-server")):
            found = children_named(executable)
            if len(found) == 1:
                watch[name] = found[0]
        apis = {"keyless": gw.KEYLESS_API_ID, "native_jwt": gw.NATIVE_API_ID, "plugin_idext": gw.PLUGIN_API_ID,
                "plugin_noext": NOEXT_API_ID}
        for name, api_id in apis.items():
            answer = stack.get(f"/{api_id}/get", headers={"Authorization": f"Bearer {token}"})
            if answer.status != 200:
                raise RuntimeError(f"gateway/{name}: sanity request answered {answer.status} {answer.text[:200]}")
        yield FourApis(stack, {name: f"{stack.url}/{api_id}/get" for name, api_id in apis.items()}, token, watch)
        failure = stack.failure()
        if failure:
            raise RuntimeError(f"the stack broke during the run: {failure}")
    finally:
        if upstream is not None:
            upstream.stop()
        stack.stop()


def run_gateway_suite(workdir: Path, duration: float = 2.0, warmup: float = 1.0, reps: int = 3,
                      connections: int = 64, progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    binary, reason = _gateway_prerequisites()
    if binary is None:
        return {"available": False, "reason": reason}
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        with four_api_stack(binary, workdir, progress) as setup:
            runs = {name: [] for name in setup.urls}
            for rep in range(reps):
                for name, url in setup.urls.items():
                    if warmup > 0 and rep == 0:  # later reps find the stack warm
                        wrk(url, setup.token, connections, warmup, latency=False)
                    result = wrk(url, setup.token, connections, duration, watch=setup.watch)
                    runs[name].append(result)
                    progress(f"gateway: rep {rep + 1}/{reps} {name:<13} {result['req_per_s']:8,.0f} req/s"
                             f"  p99 {result['p99_ms']:6.1f} ms"
                             + (f"  {result['non_2xx']} non-2xx" if result["non_2xx"] else ""))
    except StackDidNotStart as exc:
        return {"available": False, "reason": str(exc)}
    base = runs["native_jwt"]
    cases: dict[str, Any] = {}
    for name, rs in runs.items():
        cases[name] = {
            "req_per_s": median([r["req_per_s"] for r in rs]),
            "p50_ms": median([r["p50_ms"] for r in rs]),
            "p90_ms": median([r["p90_ms"] for r in rs]),
            "p99_ms": median([r["p99_ms"] for r in rs]),
            "non_2xx": sum(r["non_2xx"] for r in rs),
            **{key: median([r[key] for r in rs]) for key in rs[0] if key.endswith(("_cores", "_cpu_us_per_req"))},
            "socket_errors": sum(r["socket_errors"] for r in rs),
            "ratio": median([r["req_per_s"] / b["req_per_s"] for r, b in zip(rs, base, strict=True)]),
            "p99_ratio": median([r["p99_ms"] / b["p99_ms"] for r, b in zip(rs, base, strict=True)]),
            "runs": rs,
        }
    return {
        "available": True,
        "cases": cases,
        "baseline": "native_jwt",
        "connections": connections,
        "duration_s": duration,
        "reps": reps,
        "pinning": "none (gateway, Redis, plugin, upstream and wrk share all cores)",
    }


def run_gateway_workers(workdir: Path, duration: float = 2.0, warmup: float = 1.0, reps: int = 3,
                        connections: int = 64, progress: Callable[[str], None] = lambda line: None,
                        first_seen: bool = False) -> dict[str, Any]:
    """The plugin on every request (no ID extractor), with 1 then 2 plugin workers behind the gateway.

    Two workers are reached the way the README says: the gateway's ``dns://`` target with
    ``grpc_round_robin_load_balancing``, answered by ``serve --workers``' DNS responder.
    ``first_seen``: every request carries a token (and client) not seen before, so every call
    is a full verification in the plugin and a new session in the gateway, native JWT included.
    """
    binary, reason = _gateway_prerequisites()
    if binary is None:
        return {"available": False, "reason": reason}

    results: dict[str, list[dict[str, Any]]] = {}
    workdir.mkdir(parents=True, exist_ok=True)
    upstream_port = free_port()
    upstream = Process("upstream", [sys.executable, "-m", "bench.upstream", "--port", str(upstream_port)],
                       workdir / "workers-upstream.log").start()
    wait_for(lambda: port_open("127.0.0.1", upstream_port), 20, "the bench upstream", upstream.alive)
    target = f"http://127.0.0.1:{upstream_port}"
    try:
        return _workers_runs(binary, workdir, target, duration, warmup, reps, connections, progress, results,
                             first_seen)
    finally:
        upstream.stop()


SANITY_GRACE = 5.0  # seconds a stack's first request may keep failing before the deployment is skipped


class Deployment(NamedTuple):
    label: str
    workers: int
    pin: bool
    stub: bool = False  # bench.servers stub instead of serve: the ceiling of any plugin on this stack


# Each deployment gets a stack of its own, measured one after another.
GATEWAY_DEPLOYMENTS = (
    Deployment("1", 1, False),
    Deployment("2", 2, False),
    Deployment("1_pinned", 1, True),
    Deployment("stub_pinned", 1, True, stub=True),
)
# With first-seen tokens the question is only whether a second worker helps, pinned or not.
FIRST_SEEN_DEPLOYMENTS = (
    Deployment("1", 1, False),
    Deployment("2", 2, False),
    Deployment("1_pinned", 1, True),
    Deployment("2_pinned", 2, True),
)


def _workers_runs(binary: Path, workdir: Path, target: str, duration: float, warmup: float, reps: int,
                  connections: int, progress: Callable[[str], None],
                  results: dict[str, list[dict[str, Any]]], first_seen: bool = False) -> dict[str, Any]:
    from plugin.devstack import gateway as gw
    from plugin.devstack.stack import Stack

    native: dict[str, list[dict[str, Any]]] = {}
    repeated = 0  # first-seen requests that found their token already sent (a run faster than the bound)
    deployments_run = FIRST_SEEN_DEPLOYMENTS if first_seen else GATEWAY_DEPLOYMENTS
    for label, workers, pin, stub in deployments_run:
        dns_port = free_port()
        plugin_args: list[str] = ["--pin-workers"] if pin else []
        stack = Stack(workdir=workdir / f"workers-{label}", gateway_bin=binary, log_level="error")
        if workers > 1:
            plugin_args += ["--workers", str(workers), "--dns-listen", f"127.0.0.1:{dns_port}"]
        if stub:
            stack.plugin_command = (sys.executable, "-m", "bench.servers", "stub")
            plugin_args += ["--policy", gw.DEFAULT_POLICY_ID]  # --pin-workers as serve reads it
        stack.plugin_args = tuple(plugin_args)
        what = "bench.servers stub" if stub else f"serve {' '.join(plugin_args) or '(defaults)'}"
        progress(f"gateway workers: starting the stack with {what}")
        try:
            stack.start()
            assert stack.gateway is not None
            for api in list(stack.gateway.apis.values()):
                stack.gateway.put_api({**api, "proxy": {**api["proxy"], "target_url": target}})
            if workers > 1:
                port = stack.ports["plugin"]
                stack.gateway.extra_config = {"coprocess_options": {
                    "enable_coprocess": True,
                    "coprocess_grpc_server": f"dns://127.0.0.1:{dns_port}/tyk-auth0-plugin.internal:{port}",
                    "grpc_round_robin_load_balancing": True}}
            stack.gateway.restart()
            token = stack.token()
            urls = {api_id: f"{stack.url}/{api_id}/get" for api_id in (gw.PLUGIN_SUBJECT_API_ID, gw.NATIVE_API_ID)}
            for api_id in urls:
                # A few seconds' grace: a gRPC client whose first connection attempts were refused
                # fails calls until its reconnect backoff (1 s, growing) runs out.
                deadline = time.monotonic() + SANITY_GRACE
                answer = stack.get(f"/{api_id}/get", headers={"Authorization": f"Bearer {token}"})
                while answer.status != 200 and time.monotonic() < deadline:
                    time.sleep(0.2)
                    answer = stack.get(f"/{api_id}/get", headers={"Authorization": f"Bearer {token}"})
                if answer.status != 200:
                    raise RuntimeError(f"sanity request to {api_id} answered {answer.status} {answer.text[:200]}")
            # one token for every request, or a fresh slice of first-seen tokens per run (warm-up, reps, native)
            loads: list[str | FirstSeen] = [token] * (reps + 2)
            if first_seen:
                progress(f"gateway workers: {label:<8} minting first-seen tokens")
                loads = list(mint_first_seen(stack, workdir / f"workers-{label}", reps + 2,
                                             round(FIRST_SEEN_RATE_BOUND * max(duration, warmup))))
            runs: list[dict[str, Any]] = []
            for rep in range(reps):
                if warmup > 0 and rep == 0:
                    wrk(urls[gw.PLUGIN_SUBJECT_API_ID], loads[-1], connections, warmup, latency=False)
                runs.append(wrk(urls[gw.PLUGIN_SUBJECT_API_ID], loads[rep], connections, duration))
                progress(f"gateway workers: {label:<8} rep {rep + 1}/{reps} plugin {runs[-1]['req_per_s']:8,.0f} req/s")
            # native JWT once per stack: the baseline for this deployment's ratio, on the same gateway
            native[label] = [wrk(urls[gw.NATIVE_API_ID], loads[reps], connections, duration)]
            for run, load in zip([*runs, native[label][0]], loads, strict=False):
                if isinstance(load, FirstSeen):
                    repeated += max(0, run["requests"] - load.size)
            progress(f"gateway workers: {label:<8} native JWT {native[label][0]['req_per_s']:8,.0f} req/s")
            results[label] = runs
        except Exception as exc:  # noqa: BLE001 - report, do not crash the whole harness
            return {"available": False, "reason": f"{what}: {exc}"}
        finally:
            stack.stop()

    def versus(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
        return median([x["req_per_s"] / y["req_per_s"] for x, y in zip(a, b, strict=True)])

    deployments = {
        label: {
            "workers": workers, "pinned": pin, "stub": stub,
            "req_per_s": median([r["req_per_s"] for r in results[label]]),
            "p99_ms": median([r["p99_ms"] for r in results[label]]),
            "native_req_per_s": native[label][0]["req_per_s"],
            "ratio_native": median([r["req_per_s"] for r in results[label]]) / native[label][0]["req_per_s"],
            "ratio_one_worker": versus(results[label], results["1"]),
        }
        for label, workers, pin, stub in deployments_run
    }
    summary: dict[str, Any] = {
        "available": True,
        "api": ("plugin on every request (no ID extractor), "
                + ("every request a first-seen token and client" if first_seen else "same token")
                + "; native JWT measured once in the same stack"),
        "tokens": "first-seen" if first_seen else "same",
        "deployments": deployments,
        "one_worker_req_per_s": deployments["1"]["req_per_s"],
        "two_workers_req_per_s": deployments["2"]["req_per_s"],
        "ratio": versus(results["2"], results["1"]),
        "runs": results,
        "native_runs": native,
    }
    if "stub_pinned" in deployments:
        # each stack's own native JWT normalises away the drift between stacks run one after another
        ceiling = deployments["stub_pinned"]["ratio_native"]
        summary["ceiling_ratio_native"] = ceiling
        summary["pinned_share_of_ceiling"] = deployments["1_pinned"]["ratio_native"] / ceiling
    if "2_pinned" in deployments:
        summary["ratio_pinned"] = versus(results["2_pinned"], results["1_pinned"])
    if first_seen:
        summary["repeated_requests"] = repeated
    return summary


# Gateway functions whose cumulative CPU says where a request's time goes, as pprof names them.
# A function's time includes what it calls, so rows overlap: an indented row is part of the row
# above it, and the session lookup runs inside whichever auth middleware the API uses.
_TYK = "github.com/TykTechnologies/tyk/gateway."
PROFILE_NODES: tuple[tuple[str, str, str], ...] = (
    ("jwt_middleware", "JWT middleware (native)", _TYK + "(*JWTMiddleware).ProcessRequest"),
    ("rsa_verify", "  RSA verify", "crypto/rsa.VerifyPKCS1v15"),
    ("coprocess_middleware", "coprocess auth middleware", _TYK + "(*CoProcessMiddleware).ProcessRequest"),
    ("grpc_call", "  gRPC call to the plugin", _TYK + "(*CoProcessor).Dispatch"),
    ("id_extractor", "  ID extractor", _TYK + "(*ValueExtractor).ExtractAndCheck"),
    ("session_lookup", "session lookup (local cache, else Redis)", _TYK + "(*BaseMiddleware).CheckSessionAndIdentityForValidKey"),
    ("session_read_redis", "session read from Redis", _TYK + "(*DefaultSessionManager).SessionDetail"),
    ("session_write", "session write after the request", _TYK + "(*BaseMiddleware).UpdateRequestSession"),
    ("keyspace_notify", "  key-space notification (publish)", _TYK + "(*RedisNotifier).Notify"),
    ("redis_client", "Redis client, every command", "github.com/redis/go-redis/v9.(*Client).Process"),
    ("proxy", "proxy to the upstream", _TYK + "(*ReverseProxy).ServeHTTP"),
    ("gc", "Go garbage collector", "runtime.gcBgMarkWorker"),
)
_PPROF_LINE = re.compile(r"^\s*([\d.]+)(ns|us|µs|ms|s|m|h)?\s+[\d.]+%\s+[\d.]+%\s+([\d.]+)(ns|us|µs|ms|s|m|h)?\s+[\d.]+%\s+(.+?)\s*$")
_PPROF_TOTAL = re.compile(r"Total samples = ([\d.]+)(ns|us|µs|ms|s|m|h)")
_SECONDS = {None: 0.0, "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


PROCESSES = ("gateway", "plugin", "redis", "upstream", "wrk")


def parse_pprof_top(text: str) -> tuple[float, dict[str, float]]:
    """``go tool pprof -top -cum`` text: (total sampled CPU seconds, {function: cumulative seconds})."""
    total = _PPROF_TOTAL.search(text)
    if total is None:
        raise RuntimeError(f"cannot read pprof output:\n{text[-800:]}")
    cumulative: dict[str, float] = {}
    for line in text.splitlines():
        row = _PPROF_LINE.match(line)
        if row:
            function = row.group(5).removesuffix(" (inline)").removesuffix(" (partial-inline)")
            cumulative[function] = float(row.group(3)) * _SECONDS[row.group(4)]
    return float(total.group(1)) * _SECONDS[total.group(2)], cumulative


def gateway_breakdown(text: str, gateway_us_per_req: float) -> dict[str, Any]:
    """Each PROFILE_NODES function's share of the gateway's sampled CPU, and that share in µs per request."""
    total, cumulative = parse_pprof_top(text)
    nodes = {}
    for key, _label, function in PROFILE_NODES:
        share = cumulative.get(function, 0.0) / total if total else 0.0
        nodes[key] = {"share": share, "us_per_req": share * gateway_us_per_req}
    return {"sampled_cpu_s": total, "nodes": nodes}


def run_gateway_profile(workdir: Path, output_dir: Path, duration: float = 2.0, warmup: float = 1.0,
                        connections: int = 64, progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Where each API's CPU goes: per-process CPU per request, and a Go CPU profile of the gateway under load.

    The gateway runs with ``enable_http_profiler`` (its /debug/pprof endpoints, unauthenticated, so
    only in this opt-in suite); ``go tool pprof`` reads the profiles, which are kept in
    ``output_dir/gateway-profile/`` for a closer look (``go tool pprof -http=: $TYK_GATEWAY_BIN FILE``).
    """
    binary, reason = _gateway_prerequisites()
    if binary is None:
        return {"available": False, "reason": reason}
    go = shutil.which("go")
    if go is None:
        return {"available": False, "reason": "`go` is not on PATH (go tool pprof reads the gateway's profiles)"}
    seconds = max(1, round(duration))
    keep = output_dir / "gateway-profile"
    keep.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Any] = {}
    try:
        with four_api_stack(binary, workdir, progress, gateway_config={"enable_http_profiler": True}) as setup:
            profile_url = f"{setup.stack.url}/debug/pprof/profile?seconds={seconds}"
            for name, url in setup.urls.items():
                if warmup > 0:
                    wrk(url, setup.token, connections, warmup, latency=False)
                with ThreadPoolExecutor(max_workers=1) as pool:
                    load = pool.submit(wrk, url, setup.token, connections, seconds + 2, watch=setup.watch)
                    time.sleep(1.0)  # profile the steady state, not wrk's connection set-up
                    with urllib.request.urlopen(profile_url, timeout=seconds + 30) as answer:
                        profile = answer.read()
                    result = load.result()
                path = keep / f"{name}.pb.gz"
                path.write_bytes(profile)
                top = subprocess.run([go, "tool", "pprof", "-top", "-cum", "-nodecount=2000", str(binary), str(path)],
                                     capture_output=True, text=True, timeout=120, check=False)
                if top.returncode != 0:
                    raise RuntimeError(f"go tool pprof failed on {path.name}: {top.stderr[-800:]}")
                gateway_us = result.get("gateway_cpu_us_per_req", float("nan"))
                budget = {who: result[f"{who}_cpu_us_per_req"] for who in PROCESSES if f"{who}_cpu_us_per_req" in result}
                cases[name] = {
                    "req_per_s": result["req_per_s"],
                    "cpu_us_per_req": budget,
                    "all_cpu_us_per_req": sum(budget.values()),
                    # at saturation every core is busy, so this is what one request may cost
                    "available_cpu_us_per_req": cores() * 1e6 / result["req_per_s"],
                    **gateway_breakdown(top.stdout, gateway_us),
                    "profile": str(path.relative_to(output_dir)),  # next to results.json
                    "run": result,
                }
                progress(f"gateway profile: {name:<13} {result['req_per_s']:8,.0f} req/s, gateway {gateway_us:4.0f} µs/req")
    except StackDidNotStart as exc:
        return {"available": False, "reason": str(exc)}
    base = cases["native_jwt"]["req_per_s"]
    for case in cases.values():
        case["ratio"] = case["req_per_s"] / base
    return {
        "available": True,
        "cases": cases,
        "nodes": {key: label for key, label, _function in PROFILE_NODES},
        "connections": connections,
        "profile_seconds": seconds,
        "cores": cores(),
    }
