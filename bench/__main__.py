"""``python -m bench``: run the benchmark suites, print a table, write results.json and results.png.

    python -m bench                                # full run (plugin, workers, crypto, memory, gateway)
    python -m bench --quick                        # a few seconds per case: checks the harness, not speed
    python -m bench --suite plugin,crypto,memory   # a subset
    python -m bench --suite gateway-first-seen     # opt-in, not in a full run
    python -m bench --suite gateway-profile        # opt-in: where each request's CPU goes, with the gateway's pprof

The gateway suite needs a Tyk binary (TYK_GATEWAY_BIN, or one built by `make gateway`) and is
skipped with the reason otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.procs import REPO_ROOT, cores

SUITES = ("plugin", "workers", "crypto", "memory", "gateway", "gateway-workers")
# Run only when named: each would push a full run past five minutes (first-seen mints every token it
# sends; the profile needs a stack of its own, since profiling must not touch the measured runs).
OPTIONAL_SUITES = ("gateway-first-seen", "gateway-profile")
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "benchmarks"
# Quick and partial runs go here unless told otherwise: the committed figures are a full run's.
SCRATCH_OUTPUT = REPO_ROOT / ".cache" / "bench"
DOC = REPO_ROOT / "docs" / "benchmarks.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per case, to check the harness works")
    parser.add_argument("--suite", default="all",
                        help=f"comma-separated subset of {','.join(SUITES)} (default all; 'plugin' includes workers), "
                             f"or the opt-in {','.join(OPTIONAL_SUITES)}")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where results.json and results.png go (default docs/benchmarks for a full run, "
                             ".cache/bench for a quick or partial one)")
    parser.add_argument("--duration", type=float, help="measured seconds per load point (default 2, quick 1)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each load point (default 0.5, quick 0.3)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 3, quick 1)")
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent calls (default %(default)s)")
    parser.add_argument("--threads", type=int, default=4, help="serve --threads for every server (default %(default)s)")
    parser.add_argument("--memory-tokens", type=int, help="distinct tokens for the memory run (default 1,000,000, quick 20,000)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to separate cores")
    parser.add_argument("--keep-workdir", action="store_true", help="keep server logs and h2load files")
    args = parser.parse_args(argv)
    chosen = SUITES if args.suite == "all" else tuple(s.strip() for s in args.suite.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SUITES + OPTIONAL_SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES + OPTIONAL_SUITES)}")
    if "plugin" in chosen and "workers" not in chosen:
        chosen = (*chosen, "workers")
    args.suites = [s for s in SUITES + OPTIONAL_SUITES if s in chosen]
    if args.output_dir is None:
        full = not args.quick and args.suites == list(SUITES)
        args.output_dir = DEFAULT_OUTPUT if full else SCRATCH_OUTPUT
    args.duration = args.duration or (1.0 if args.quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 0.5)
    args.reps = args.reps or (1 if args.quick else 3)
    args.memory_tokens = args.memory_tokens or (20_000 if args.quick else 1_000_000)
    return args


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], bool]:
    from bench.crypto_suite import run_crypto_suite
    from bench.gateway_suite import run_gateway_profile, run_gateway_suite, run_gateway_workers
    from bench.memory import run_memory_suite
    from bench.plugin_suite import Options, run_plugin_suite, run_workers_suite

    opts = Options(workdir=workdir / "plugin", duration=args.duration, warmup=args.warmup, reps=args.reps,
                   in_flight=args.in_flight, threads=args.threads, pin=not args.no_pin, progress=progress)
    runners: dict[str, Any] = {
        "plugin": lambda: run_plugin_suite(opts),
        "workers": lambda: run_workers_suite(opts),
        "crypto": lambda: run_crypto_suite(workdir / "crypto", seconds=0.05 if args.quick else 0.25,
                                           reps=1 if args.quick else 5, progress=progress,
                                           profile_calls=300 if args.quick else 3000),
        "memory": lambda: run_memory_suite(args.memory_tokens, progress=progress),
        "gateway": lambda: run_gateway_suite(workdir / "gateway", duration=args.duration, warmup=args.warmup,
                                             reps=args.reps, connections=args.in_flight, progress=progress),
        "gateway-workers": lambda: run_gateway_workers(workdir / "gateway-workers", duration=args.duration,
                                                       warmup=args.warmup, reps=args.reps,
                                                       connections=args.in_flight, progress=progress),
        "gateway-first-seen": lambda: run_gateway_workers(workdir / "gateway-first-seen", duration=args.duration,
                                                          warmup=args.warmup, reps=args.reps,
                                                          connections=args.in_flight, progress=progress,
                                                          first_seen=True),
        "gateway-profile": lambda: run_gateway_profile(workdir / "gateway-profile", args.output_dir,
                                                       duration=args.duration, warmup=args.warmup,
                                                       connections=args.in_flight, progress=progress),
    }
    suites: dict[str, Any] = {}
    ok = True
    for name in args.suites:
        progress(f"{name}: starting")
        started = time.monotonic()
        try:
            suites[name] = runners[name]()
        except Exception as exc:  # noqa: BLE001 - one broken suite must not lose the others' figures
            ok = False
            suites[name] = {"available": False, "error": f"{type(exc).__name__}: {exc}"}
            progress(f"{name}: FAILED\n{traceback.format_exc()}")
        suites[name]["seconds"] = time.monotonic() - started
        if not suites[name].get("available") and "reason" in suites[name]:
            progress(f"{name}: skipped: {suites[name]['reason']}")
    return suites, ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    progress(f"suites: {', '.join(args.suites)}; {'quick' if args.quick else 'full'} run; "
             f"{cores()} cores; pinning {'off' if args.no_pin or cores() < 2 else 'server core 0, client core 1'}")
    results: dict[str, Any] = {
        "schema": 1,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "machine": report.machine(),
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        suites, ok = run(args, workdir)
    finally:
        if args.keep_workdir:
            progress(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["suites"] = suites
    results["derived"] = report.derived(suites)
    results["targets"] = report.targets(suites, args.quick)
    results["duration_s"] = time.monotonic() - started
    out_dir: Path = args.output_dir
    report.write_json(results, out_dir / "results.json")
    try:
        report.chart(results, out_dir / "results.png")
    except Exception as exc:  # noqa: BLE001 - a chart failure must not hide the table
        ok = False
        progress(f"chart failed: {exc}")
    print(report.table(results))
    print(f"\nwrote {out_dir / 'results.json'} and {out_dir / 'results.png'} in {results['duration_s']:.0f} s")
    if out_dir.resolve() == DEFAULT_OUTPUT.resolve() and not args.quick and report.update_doc(DOC, results):
        print(f"updated the results block of {DOC.relative_to(REPO_ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
