"""Turning suite results into targets, a text table, results.json and results.png."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gateway_suite import PROCESSES

MEMORY_TARGET_MB = 300.0


def machine() -> dict[str, Any]:
    """What the figures were measured on, so a reader can tell whether they transfer."""
    import cachetools
    import cryptography
    import google.protobuf
    import grpc
    import jwt
    from google.protobuf.internal import api_implementation

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not installed"

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": f"{google.protobuf.__version__} ({api_implementation.Type()})",
        "pyjwt": jwt.__version__,
        "cryptography": cryptography.__version__,
        "cachetools": cachetools.__version__,
        "h2load": version(["h2load", "--version"]),
        "wrk": " ".join(version(["wrk", "-v"]).split()[:2]),
        "loadavg_at_start": list(os.getloadavg()),
    }


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def derived(suites: dict[str, Any]) -> dict[str, Any]:
    """Cross-suite figures: what the cold path costs above echo, and RSA's share of it."""
    out: dict[str, Any] = {}
    echo = _get(suites, "plugin", "cases", "echo", "cpu_us_per_call")
    for case in ("warm", "cold", "unknown_kid", "bad_sig"):
        cpu = _get(suites, "plugin", "cases", case, "cpu_us_per_call")
        if echo is not None and cpu is not None:
            out[f"{case}_cpu_us_above_echo"] = cpu - echo
    rsa = _get(suites, "crypto", "cases", "rsa2048_verify", "us_per_op")
    inproc = _get(suites, "crypto", "cases", "authenticate_cold", "us_per_op")
    if rsa is not None:
        out["rsa_us"] = rsa
    if inproc is not None:
        out["authenticate_cold_in_process_us"] = inproc
        if rsa is not None:
            out["rsa_share_of_in_process_cold"] = rsa / inproc
    above = out.get("cold_cpu_us_above_echo")
    if above is not None and rsa is not None and above > 0:
        out["rsa_share_of_cold_above_echo"] = rsa / above
        if inproc is not None:
            out["cold_in_server_overhead_us"] = above - inproc
    return out


BUSY_CORES = 0.25  # other jobs' load above which a load point is flagged as disturbed


def targets(suites: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def busy(*cases: Any) -> float:
        return max([c.get("other_cores", 0.0) for c in cases if isinstance(c, dict)] or [0.0])

    def add(name: str, value: Any, op: str, bound: float, why_missing: str = "suite not run",
            other: float = 0.0) -> None:
        if value is None:
            rows.append({"target": name, "value": None, "bound": f"{op} {bound:g}", "status": f"not measured ({why_missing})"})
            return
        ok = {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound}[op]
        status = "met" if ok else "not met"
        if quick:
            status += " (quick run: indicative only)"
        elif other > BUSY_CORES:
            status += f" (other jobs used {other:.2f} cores meanwhile: re-run on a quiet machine)"
        rows.append({"target": name, "value": value, "bound": f"{op} {bound:g}", "status": status})

    workers_missing = _get(suites, "workers", "reason") or "suite not run"
    gateway_missing = _get(suites, "gateway", "reason") or _get(suites, "gateway", "error") or "suite not run"
    echo, warm, cold = (_get(suites, "plugin", "cases", c) for c in ("echo", "warm", "cold"))
    add("warm calls/s ÷ echo", _get(suites, "plugin", "cases", "warm", "ratio"), ">=", 0.85, other=busy(echo, warm))
    add("warm p99 ÷ echo p99", _get(suites, "plugin", "cases", "warm", "p99_ratio"), "<=", 1.2, other=busy(echo, warm))
    add("cold calls/s ÷ echo", _get(suites, "plugin", "cases", "cold", "ratio"), ">=", 0.6, other=busy(echo, cold))
    add("2 workers ÷ 1 worker (cold calls/s)", _get(suites, "workers", "ratio"), ">=", 1.6, workers_missing,
        other=busy(_get(suites, "workers", "workers_1"), _get(suites, "workers", "workers_2")))
    add("2 workers ÷ 1 worker (cold calls/s), --pin-workers", _get(suites, "workers", "ratio_pinned"), ">=", 1.6,
        workers_missing, other=busy(_get(suites, "workers", "workers_1_pinned"),
                                    _get(suites, "workers", "workers_2_pinned")))
    add("gateway: plugin+ID extractor ÷ native JWT req/s",
        _get(suites, "gateway", "cases", "plugin_idext", "ratio"), ">=", 1.0, gateway_missing)
    add("gateway: plugin+ID extractor p99 ÷ native JWT p99",
        _get(suites, "gateway", "cases", "plugin_idext", "p99_ratio"), "<=", 1.2, gateway_missing)
    add("gateway: plugin without extractor ÷ native JWT req/s",
        _get(suites, "gateway", "cases", "plugin_noext", "ratio"), ">=", 0.5, gateway_missing)
    workers_missing = (_get(suites, "gateway-workers", "reason") or _get(suites, "gateway-workers", "error")
                       or "suite not run")
    add("gateway: 2 plugin workers ÷ 1 (plugin on every request)",
        _get(suites, "gateway-workers", "ratio"), ">", 1.0, workers_missing)
    add("gateway: no extractor ÷ native JWT, --pin-workers",
        _get(suites, "gateway-workers", "deployments", "1_pinned", "ratio_native"), ">=", 0.5, workers_missing)
    peak = _get(suites, "memory", "peak_rss_mb")
    add(f"peak RSS MB after {_get(suites, 'memory', 'tokens') or 'N'} distinct tokens", peak, "<", MEMORY_TARGET_MB)
    return rows


def _deployment(d: dict[str, Any]) -> str:
    if d.get("stub"):
        return "bench.servers stub" + (" --pin-workers" if d["pinned"] else "")
    return f"serve --workers {d['workers']}" + (" --pin-workers" if d["pinned"] else "")


def _f(value: Any, fmt: str, missing: str = "–") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, fmt)


def _text_deployments(deployments: dict[str, Any]) -> list[str]:
    return [f"  {_deployment(d):<34} {d['req_per_s']:8,.0f} req/s  × native {d['ratio_native']:.2f}"
            f"  × 1 worker {d['ratio_one_worker']:.2f}  p99 {d['p99_ms']:.1f} ms" for d in deployments.values()]


def _text_call_row(name: str, case: dict[str, Any]) -> str:
    """One plugin-level row: calls/s, ratio, latency, CPU per call, cores."""
    return (f"  {name:<12} {_f(case['calls_per_s'], ',.0f'):>9} {_f(case.get('ratio', 1.0), '.2f'):>7} "
            f"{_f(case['p50_ms'], '.1f'):>7} {_f(case['p99_ms'], '.1f'):>7} "
            f"{_f(case.get('p99_ratio', 1.0), '.2f'):>8} {_f(case['cpu_us_per_call'], '.0f'):>11} "
            f"{_f(case['server_cores'], '.2f'):>12} {_f(case.get('other_cores'), '.2f'):>10}")


def _text_profile(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    if not profile.get("available"):
        return [f"Gateway profile: skipped: {profile.get('reason') or profile.get('error')}"]
    cases = profile["cases"]
    lines = [f"Gateway profile (wrk -c{profile['connections']}, one run each; CPU µs per request by process, "
             f"then the gateway's share by function from a {profile['profile_seconds']} s pprof)",
             f"  {'':<38}" + "".join(f"{name:>14}" for name in cases)]
    lines.append(f"  {'req/s (× native)':<38}" + "".join(
        f"{_f(c['req_per_s'], ',.0f') + ' (' + _f(c['ratio'], '.2f') + ')':>14}" for c in cases.values()))
    for who in PROCESSES:
        lines.append(f"  {who + ' CPU':<38}" + "".join(f"{_f(c['cpu_us_per_req'].get(who), '.0f'):>14}" for c in cases.values()))
    lines.append(f"  {'all processes':<38}" + "".join(f"{_f(c['all_cpu_us_per_req'], '.0f'):>14}" for c in cases.values()))
    lines.append(f"  {'cores ÷ req/s':<38}" + "".join(f"{_f(c['available_cpu_us_per_req'], '.0f'):>14}" for c in cases.values()))
    for key, label in profile["nodes"].items():
        lines.append(f"  {label:<38}" + "".join(f"{_f(c['nodes'][key]['us_per_req'], '.0f'):>14}" for c in cases.values()))
    return lines


def table(results: dict[str, Any]) -> str:
    suites = results["suites"]
    lines: list[str] = []
    plugin = suites.get("plugin")
    if plugin:
        if plugin.get("available"):
            lines.append(f"Plugin level: h2load, {plugin['in_flight']} calls in flight on 1 HTTP/2 connection, "
                         f"{plugin['request_bytes']} B request ({plugin['headers']} headers, {plugin['token_bytes']} B "
                         f"RS256 token), serve --threads {plugin['threads']}; pinning: {plugin['pinning']}; "
                         f"median of {plugin['reps']} interleaved reps × {plugin['duration_s']:g} s")
            lines.append(f"  {'case':<12} {'calls/s':>9} {'× echo':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99×echo':>8} "
                         f"{'CPU µs/call':>11} {'server cores':>12} {'other load':>10}")
            for name, case in plugin["cases"].items():
                lines.append(_text_call_row(name, case))
            for note in plugin.get("notes", []):
                lines.append(f"  note: {note}")
        else:
            lines.append(f"Plugin level: not run: {plugin.get('reason') or plugin.get('error')}")
    workers = suites.get("workers")
    if workers:
        if workers.get("available"):
            lines.append(f"Workers: {workers['case']}, 2 h2load connections ({workers['in_flight']} in flight), "
                         f"pinning: {workers['pinning']}")
            for label, key in (("1 worker", "workers_1"), ("2 workers", "workers_2"),
                               ("1, pinned", "workers_1_pinned"), ("2, pinned", "workers_2_pinned")):
                case = workers.get(key)
                if case is None:
                    continue
                lines.append(_text_call_row(label, case))
        else:
            lines.append(f"Workers: not available: {workers.get('reason') or workers.get('error')}")
    crypto = suites.get("crypto")
    if crypto:
        if crypto.get("available"):
            lines.append(f"Crypto floor and cold path in-process (median of {crypto['reps']} interleaved reps)")
            for name, case in crypto["cases"].items():
                lines.append(f"  {name:<24} {_f(case['ops_per_s'], ',.0f'):>10} /s {_f(case['us_per_op'], '.1f'):>7} µs")
        else:
            lines.append(f"Crypto: not run: {crypto.get('error')}")
    d = results.get("derived", {})
    if "cold_cpu_us_above_echo" in d and "rsa_share_of_cold_above_echo" in d:
        lines.append(f"  cold path server CPU above echo: {d['cold_cpu_us_above_echo']:.0f} µs/call; "
                     f"RSA verify {d['rsa_us']:.1f} µs = {100 * d['rsa_share_of_cold_above_echo']:.0f} % of it; "
                     f"in-process the whole cold authenticate is {d['authenticate_cold_in_process_us']:.0f} µs "
                     f"(RSA {100 * d['rsa_share_of_in_process_cold']:.0f} %)")
    elif "cold_cpu_us_above_echo" in d:
        lines.append(f"  cold path server CPU above echo: {d['cold_cpu_us_above_echo']:.0f} µs/call "
                     "(run the crypto suite too for RSA's share)")
    memory = suites.get("memory")
    if memory:
        if memory.get("available"):
            lines.append(f"Memory: {memory['tokens']:,} distinct {memory['algorithm']} tokens through one server process "
                         f"(token cache {memory['cache_size_setting']:,}): peak RSS {memory['peak_rss_mb']:.0f} MB "
                         f"(start {memory['baseline_rss_mb']:.0f} MB), {memory['tokens_per_s']:,.0f} tokens/s in-process")
        else:
            lines.append(f"Memory: not run: {memory.get('error')}")
    gw_workers = suites.get("gateway-workers")
    if gw_workers and gw_workers.get("available"):
        lines.append("Gateway level, plugin on every request, by `serve` deployment (a stack each; native JWT in the same stack)")
        lines += _text_deployments(gw_workers["deployments"])
        if "ceiling_ratio_native" in gw_workers:
            lines.append(f"  ceiling (stub: same server stack, no auth work) × native {gw_workers['ceiling_ratio_native']:.2f};"
                         f" the pinned plugin reaches {gw_workers['pinned_share_of_ceiling']:.2f} of it")
    first_seen = suites.get("gateway-first-seen")
    if first_seen:
        if first_seen.get("available"):
            lines.append("Gateway level, plugin on every request, every request a first-seen token and client, "
                         "by `serve` deployment (a stack each; native JWT in the same stack, first-seen tokens too)")
            lines += _text_deployments(first_seen["deployments"])
            lines.append(f"  2 workers ÷ 1: {first_seen['ratio']:.2f}; pinned, 2 ÷ 1: {first_seen['ratio_pinned']:.2f};"
                         f" requests that repeated a token: {first_seen['repeated_requests']:,}")
        else:
            lines.append(f"Gateway level, first-seen tokens: skipped: {first_seen.get('reason') or first_seen.get('error')}")
    gateway = suites.get("gateway")
    if gateway:
        if gateway.get("available"):
            lines.append(f"Gateway level: wrk -c{gateway['connections']} through Tyk, same token and upstream; "
                         f"pinning: {gateway['pinning']}; median of {gateway['reps']} reps × {gateway['duration_s']:g} s")
            lines.append(f"  {'API':<13} {'req/s':>8} {'× native':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99×native':>10} "
                         f"{'gw µs/req':>9} {'plugin µs/req':>13} {'Redis µs/req':>12}")
            for name, case in gateway["cases"].items():
                lines.append(f"  {name:<13} {_f(case['req_per_s'], ',.0f'):>8} {_f(case['ratio'], '.2f'):>8} "
                             f"{_f(case['p50_ms'], '.1f'):>7} {_f(case['p99_ms'], '.1f'):>7} {_f(case['p99_ratio'], '.2f'):>10} "
                             f"{_f(case.get('gateway_cpu_us_per_req'), '.0f'):>9} {_f(case.get('plugin_cpu_us_per_req'), '.0f'):>13} "
                             f"{_f(case.get('redis_cpu_us_per_req'), '.0f'):>12}")
        else:
            lines.append(f"Gateway level: skipped: {gateway.get('reason') or gateway.get('error')}")
    lines += _text_profile(suites.get("gateway-profile"))
    lines.append("Targets (ratios from this run)")
    for row in results["targets"]:
        value = row["value"]
        shown = "–" if value is None else f"{value:.2f}" if value < 100 else f"{value:,.0f}"
        lines.append(f"  {row['target']:<55} {shown:>7}  {row['bound']:<7} {row['status']}")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")


def chart(results: dict[str, Any], path: Path) -> None:
    """Four panels: plugin calls/s (and workers), latency, memory curve, gateway req/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = results["suites"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    title = f"tyk-auth0-plugin benchmarks — {results['machine']['nproc']} cores, {results['machine']['cpu_model']}"
    if results.get("quick"):
        title += " (QUICK RUN: not for judging)"
    fig.suptitle(title, fontsize=11)

    def empty(ax: Any, text: str) -> None:
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
        ax.set_axis_off()

    plugin, workers = suites.get("plugin") or {}, suites.get("workers") or {}
    ax = axes[0][0]
    if plugin.get("available"):
        names = list(plugin["cases"])
        rates = [plugin["cases"][n]["calls_per_s"] for n in names]
        labels = [f"×{plugin['cases'][n].get('ratio', 1.0):.2f}" for n in names]
        colors = ["#888888"] + ["#1f77b4"] * (len(names) - 1)
        if workers.get("available"):
            for key, name in (("workers_1", "1 worker\n(cold)"), ("workers_2", "2 workers\n(cold)"),
                              ("workers_1_pinned", "1 pinned\n(cold)"), ("workers_2_pinned", "2 pinned\n(cold)")):
                if key in workers:
                    names.append(name)
                    rates.append(workers[key]["calls_per_s"])
                    labels.append(f"×{workers[key].get('ratio', 1.0):.2f}")
                    colors.append("#ff7f0e")
        bars = ax.bar(names, rates, color=colors)
        for bar, label in zip(bars, labels, strict=True):
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("calls/s")
        ax.set_title("Plugin level (h2load, 64 in flight): calls/s, ratio to echo / 1 worker", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    else:
        empty(ax, "plugin suite not run")

    ax = axes[0][1]
    if plugin.get("available"):
        names = list(plugin["cases"])
        slots = list(range(len(names)))
        ax.bar([x - 0.2 for x in slots], [plugin["cases"][n]["p50_ms"] for n in names], width=0.4, label="p50")
        ax.bar([x + 0.2 for x in slots], [plugin["cases"][n]["p99_ms"] for n in names], width=0.4, label="p99")
        ax.set_xticks(slots, names, fontsize=8)
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
        ax.set_title("Plugin level latency at saturation (queueing dominates: p50 ≈ in-flight ÷ rate)", fontsize=9)
    else:
        empty(ax, "plugin suite not run")

    memory = suites.get("memory") or {}
    ax = axes[1][0]
    if memory.get("available"):
        xs, ys = zip(*memory["curve"], strict=True)
        ax.plot(xs, ys, marker=".")
        ax.axhline(MEMORY_TARGET_MB, color="red", linestyle="--", label=f"target {MEMORY_TARGET_MB:.0f} MB")
        ax.axvline(memory["cache_size_setting"], color="gray", linestyle=":", label="token cache size")
        ax.set_xlabel("distinct tokens")
        ax.set_ylabel("RSS MB")
        ax.legend(fontsize=8)
        ax.set_title(f"Memory: RSS of one server process (peak {memory['peak_rss_mb']:.0f} MB)", fontsize=9)
    else:
        empty(ax, "memory suite not run")

    gateway = suites.get("gateway") or {}
    ax = axes[1][1]
    if gateway.get("available"):
        names = list(gateway["cases"])
        bars = ax.bar(names, [gateway["cases"][n]["req_per_s"] for n in names],
                      color=["#888888", "#2ca02c", "#1f77b4", "#9467bd"][: len(names)])
        for bar, n in zip(bars, names, strict=True):
            ax.annotate(f"×{gateway['cases'][n]['ratio']:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("req/s")
        ax.set_title("Gateway level (wrk through Tyk): req/s, ratio to native JWT", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    else:
        empty(ax, f"gateway suite: {gateway.get('reason') or gateway.get('error') or 'not run'}")

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


Progress = Callable[[str], None]


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_deployments(deployments: dict[str, Any]) -> list[str]:
    """The gateway-by-deployment table, for one token or for first-seen tokens."""
    rows = [_md_row(["deployment", "plugin req/s", "× native JWT", "× `--workers 1`", "p99 ms"]),
            _md_row(["---"] + ["---:"] * 4)]
    for d in deployments.values():
        rows.append(_md_row([f"`{_deployment(d)}`", _f(d["req_per_s"], ",.0f"), _f(d["ratio_native"], ".2f"),
                             _f(d["ratio_one_worker"], ".2f"), _f(d["p99_ms"], ".1f")]))
    return rows


def _md_profile(profile: dict[str, Any]) -> list[str]:
    """Where each gateway API's CPU goes: by process, then inside the gateway by function (rows nest)."""
    if not profile.get("available"):
        return []
    cases = profile["cases"]
    out = [(f"**Where the CPU goes, by API** (`--suite gateway-profile`: wrk, {profile['connections']} connections, one run "
            f"each; CPU µs per request by process from /proc, then the gateway's µs per request by function from a "
            f"{profile['profile_seconds']} s Go CPU profile taken during the run; a function's time includes what it "
            "calls, so an indented row is part of the row above it and the session lookup runs inside the auth "
            "middleware):"), "",
           _md_row(["", *cases]), _md_row(["---"] + ["---:"] * len(cases)),
           _md_row(["req/s", *(_f(c["req_per_s"], ",.0f") for c in cases.values())]),
           _md_row(["× native JWT", *(_f(c["ratio"], ".2f") for c in cases.values())])]
    for who in PROCESSES:
        out.append(_md_row([f"{who} CPU µs/req", *(_f(c["cpu_us_per_req"].get(who), ".0f") for c in cases.values())]))
    out.append(_md_row(["**all processes**", *(f"**{_f(c['all_cpu_us_per_req'], '.0f')}**" for c in cases.values())]))
    out.append(_md_row(["cores × 10⁶ ÷ req/s", *(_f(c["available_cpu_us_per_req"], ".0f") for c in cases.values())]))
    for key, label in profile["nodes"].items():
        shown = ("&nbsp;&nbsp;" + label.strip()) if label.startswith(" ") else f"gateway: {label}"
        out.append(_md_row([shown, *(_f(c["nodes"][key]["us_per_req"], ".0f") for c in cases.values())]))
    return [*out, ""]


def markdown(results: dict[str, Any]) -> str:
    """The latest run as Markdown, for the generated block of docs/benchmarks.md."""
    suites, m, d = results["suites"], results["machine"], results.get("derived", {})
    out = [
        f"Run {results['generated']} with `{results['command']}` in {results['duration_s']:.0f} s"
        + (" (**quick run: not for judging**)" if results.get("quick") else "") + ".",
        "",
        (f"Machine: {m['nproc']} cores, {m['cpu_model']}, Linux {m['kernel']}; Python {m['python']}, grpcio {m['grpcio']}, "
        f"protobuf {m['protobuf']}, PyJWT {m['pyjwt']}, cryptography {m['cryptography']}, cachetools {m['cachetools']}; "
        f"{m['h2load']}; {m['wrk']}. Load average at start: {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}."),
        "",
    ]
    plugin = suites.get("plugin") or {}
    if plugin.get("available"):
        out += [(f"**Plugin level** (h2load, {plugin['in_flight']} calls in flight on one HTTP/2 connection, "
                f"{plugin['request_bytes']} B request with {plugin['headers']} headers and a {plugin['token_bytes']} B RS256 "
                f"token; `serve --threads {plugin['threads']}`; pinning: {plugin['pinning']}; median of {plugin['reps']} "
                f"interleaved repetitions × {plugin['duration_s']:g} s):"), "",
                _md_row(["case", "calls/s", "× echo", "p50 ms", "p99 ms", "p99 × echo", "server CPU µs/call",
                         "other load (cores)"]),
                _md_row(["---"] + ["---:"] * 7)]
        for name, c in plugin["cases"].items():
            out.append(_md_row([name, _f(c["calls_per_s"], ",.0f"), _f(c.get("ratio", 1.0), ".2f"), _f(c["p50_ms"], ".1f"),
                                _f(c["p99_ms"], ".1f"), _f(c.get("p99_ratio", 1.0), ".2f"), _f(c["cpu_us_per_call"], ".0f"),
                                _f(c.get("other_cores"), ".2f")]))
        out.append("")
    workers = suites.get("workers") or {}
    if workers.get("available"):
        out += [(f"**Workers** (cold path, `serve --token-cache-size 0`; 2 h2load connections, {workers['in_flight']} "
                 "in flight; by default nothing is pinned and h2load shares the cores; *pinned*: `serve --pin-workers`, "
                 "each worker held to its own core):"), "",
                _md_row(["deployment", "calls/s", "× 1 worker", "p50 ms", "p99 ms", "server CPU µs/call", "server cores"]),
                _md_row(["---"] + ["---:"] * 6)]
        for key, label in (("workers_1", "`--workers 1`"), ("workers_2", "`--workers 2`"),
                           ("workers_1_pinned", "`--workers 1 --pin-workers`"), ("workers_2_pinned", "`--workers 2 --pin-workers`")):
            c = workers.get(key)
            if c:
                out.append(_md_row([label, _f(c["calls_per_s"], ",.0f"), _f(c.get("ratio", 1.0), ".2f"), _f(c["p50_ms"], ".1f"),
                                    _f(c["p99_ms"], ".1f"), _f(c["cpu_us_per_call"], ".0f"), _f(c["server_cores"], ".2f")]))
        out.append("")
    elif workers:
        out += [f"**Workers**: not available: {workers.get('reason') or workers.get('error')}", ""]
    crypto = suites.get("crypto") or {}
    if crypto.get("available"):
        out += [f"**Crypto floor and the cold path in-process** (no gRPC; median of {crypto['reps']} interleaved reps):", "",
                _md_row(["operation", "per second", "µs each"]), _md_row(["---", "---:", "---:"])]
        for name, c in crypto["cases"].items():
            out.append(_md_row([f"`{name}`", _f(c["ops_per_s"], ",.0f"), _f(c["us_per_op"], ".1f")]))
        if "rsa_share_of_cold_above_echo" in d:
            out += ["", (f"The cold path costs **{d['cold_cpu_us_above_echo']:.0f} µs** of server CPU per call above the echo "
                        f"servicer; one RSA-2048 verify is {d['rsa_us']:.1f} µs, **{100 * d['rsa_share_of_cold_above_echo']:.0f} %** "
                        f"of that. In-process the whole cold `authenticate()` is {d['authenticate_cold_in_process_us']:.0f} µs "
                        f"(RSA {100 * d['rsa_share_of_in_process_cold']:.0f} %); the other "
                        f"{d['cold_in_server_overhead_us']:.0f} µs appear only inside the server (GIL hand-offs with gRPC's "
                        f"threads, colder CPU caches).")]
        out.append("")
    memory = suites.get("memory") or {}
    if memory.get("available"):
        out += [(f"**Memory**: {memory['tokens']:,} distinct {memory['algorithm']} tokens through one server process "
                f"(default `--token-cache-size` {memory['cache_size_setting']:,}): peak RSS **{memory['peak_rss_mb']:.0f} MB** "
                f"(at start {memory['baseline_rss_mb']:.0f} MB; {memory['kb_per_cached_token']:.1f} KB per cached token while "
                f"the cache fills)."), ""]
    gateway = suites.get("gateway") or {}
    if gateway.get("available"):
        out += [(f"**Gateway level** (wrk, {gateway['connections']} connections, through Tyk to one echo upstream, same "
                 "token everywhere; nothing pinned: gateway, Redis, plugin, upstream and wrk share the cores; median of "
                 f"{gateway['reps']} reps × {gateway['duration_s']:g} s):"), "",
                _md_row(["API", "req/s", "× native JWT", "p50 ms", "p99 ms", "p99 × native", "gateway CPU µs/req",
                         "plugin CPU µs/req", "Redis CPU µs/req"]),
                _md_row(["---"] + ["---:"] * 8)]
        for name, c in gateway["cases"].items():
            out.append(_md_row([name, _f(c["req_per_s"], ",.0f"), _f(c["ratio"], ".2f"), _f(c["p50_ms"], ".1f"),
                                _f(c["p99_ms"], ".1f"), _f(c["p99_ratio"], ".2f"), _f(c.get("gateway_cpu_us_per_req"), ".0f"),
                                _f(c.get("plugin_cpu_us_per_req"), ".0f"), _f(c.get("redis_cpu_us_per_req"), ".0f")]))
        out.append("")
    elif gateway:
        out += [f"**Gateway level**: skipped: {gateway.get('reason') or gateway.get('error')}", ""]
    gw_workers = suites.get("gateway-workers") or {}
    if gw_workers.get("available"):
        out += [("**Gateway level, by plugin deployment** (the API without the ID extractor, so every request calls "
                 "the plugin; each deployment in a stack of its own, one after another, with native JWT measured once "
                 "in the same stack; two workers reached through `dns://` and round robin):"), "",
                *_md_deployments(gw_workers["deployments"]), ""]
        if "ceiling_ratio_native" in gw_workers:
            out += [(f"The `bench.servers stub` row is the ceiling: the same server stack granting a fixed session "
                     f"without reading the token, so no auth plugin on this stack can do better beyond run-to-run "
                     f"noise. It reaches **{gw_workers['ceiling_ratio_native']:.2f}** of native JWT; the pinned plugin "
                     f"reaches **{gw_workers['pinned_share_of_ceiling']:.2f}** of the ceiling."), ""]
    first_seen = suites.get("gateway-first-seen") or {}
    if first_seen.get("available"):
        out += [("**Gateway level, first-seen tokens, by plugin deployment** (as above, but every request carries a "
                 "token and client the stack has not seen, native JWT's included, so every plugin call is a full "
                 "verification):"), "",
                *_md_deployments(first_seen["deployments"]), ""]
    out += _md_profile(suites.get("gateway-profile") or {})
    out += ["**Targets** (ratios from this one run):", "", _md_row(["target", "figure", "bound", "status"]),
            _md_row(["---", "---:", "---", "---"])]
    for row in results["targets"]:
        value = row["value"]
        shown = "–" if value is None else f"{value:.2f}" if value < 100 else f"{value:,.0f}"
        bound = row["bound"].replace(">=", "≥").replace("<=", "≤")
        out.append(_md_row([row["target"], shown, bound, f"**{row['status']}**"]))
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def update_doc(doc: Path, results: dict[str, Any]) -> bool:
    """Replace the generated block of ``doc`` with this run; False when the doc has no such block."""
    if not doc.exists():
        return False
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    doc.write_text(text[: start + len(BEGIN)] + "\n" + markdown(results) + text[end:])
    return True
