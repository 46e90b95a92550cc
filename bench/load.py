"""h2load as a gRPC load generator, and what one measured run yields.

h2load posts the same length-prefixed gRPC frame on N concurrent HTTP/2 streams of one
connection, like Tyk's single coprocess connection. It does not read gRPC trailers, so a
run also records the reply bytes per call: a gRPC error carries no message, and a case
whose replies shrink to 0 bytes is flagged rather than reported as fast.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.payloads import GRPC_PATH
from bench.procs import MachineLoad, pinned, run_clients


@dataclass
class LoadResult:
    calls: int
    failed: int
    wall_s: float
    calls_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    server_cpu_s: float
    client_cpu_s: float
    reply_bytes: float
    other_cores: float  # CPU the rest of the machine used meanwhile (other jobs on a shared box)
    steal_cores: float  # CPU the hypervisor gave to neighbours

    @property
    def cpu_us_per_call(self) -> float:
        return self.server_cpu_s / self.calls * 1e6 if self.calls else float("nan")

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.wall_s if self.wall_s else float("nan")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpu_us_per_call"] = self.cpu_us_per_call
        data["server_cores"] = self.server_cores
        return data


_DONE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored")
_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s),")
_DATA_BYTES = re.compile(r"\((\d+)\) data")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    # ceil, not round(x + 0.5): Python rounds halves to even, which put every odd whole rank one too high
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values) / 100) - 1))
    return sorted_values[rank]


def h2load_command(host: str, port: int, body: Path, streams: int, duration: float,
                   log_file: Path | None, core: int | None) -> list[str]:
    argv = ["h2load", "-c", "1", "-m", str(streams), "-D", f"{max(1, round(duration * 1000))}ms",
            "-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if log_file is not None:
        argv += ["--log-file", str(log_file)]
    argv.append(f"http://{host}:{port}{GRPC_PATH}")
    return pinned(argv, core)


def drive(targets: Sequence[tuple[str, int]], body: Path, in_flight: int, duration: float, warmup: float,
          server_cpu: Callable[[], float], workdir: Path, core: int | None) -> LoadResult:
    """One h2load connection per target (in_flight split between them): warm up, then measure."""
    streams = max(1, in_flight // len(targets))
    if warmup > 0:
        results, _ = run_clients([h2load_command(h, p, body, streams, warmup, None, core) for h, p in targets],
                                 timeout=warmup + 30)
        _check(results)
    logs = [workdir / f"h2load-{i}.tsv" for i in range(len(targets))]
    for log in logs:
        log.unlink(missing_ok=True)
    commands = [h2load_command(h, p, body, streams, duration, log, core) for (h, p), log in zip(targets, logs, strict=True)]
    cpu0, t0, machine = server_cpu(), time.monotonic(), MachineLoad()
    results, client_cpu = run_clients(commands, timeout=duration + 30)
    wall, cpu1 = time.monotonic() - t0, server_cpu()
    busy, steal = machine.cores(wall)
    _check(results)
    succeeded = failed = data = 0
    rate = 0.0
    for _, out in results:
        match, finished = _DONE.search(out), _FINISHED.search(out)
        assert match is not None and finished is not None
        elapsed = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
        succeeded += int(match.group(4))
        rate += int(match.group(4)) / elapsed if elapsed > 0 else 0.0
        failed += int(match.group(5)) + int(match.group(6))
        data_match = _DATA_BYTES.search(out)
        data += int(data_match.group(1)) if data_match else 0
    latencies: list[float] = []
    for log in logs:
        with log.open() as handle:
            latencies.extend(int(line.split("\t")[2]) / 1000 for line in handle if line.count("\t") == 2)
    latencies.sort()
    return LoadResult(
        calls=succeeded, failed=failed, wall_s=wall, calls_per_s=rate,
        p50_ms=percentile(latencies, 50), p90_ms=percentile(latencies, 90), p99_ms=percentile(latencies, 99),
        server_cpu_s=cpu1 - cpu0, client_cpu_s=client_cpu, reply_bytes=data / succeeded if succeeded else 0.0,
        other_cores=max(0.0, busy - steal - (cpu1 - cpu0 + client_cpu) / wall), steal_cores=steal,
    )


def _check(results: Sequence[tuple[int, str]]) -> None:
    for code, out in results:
        if code != 0 or _DONE.search(out) is None:
            raise RuntimeError(f"h2load failed (exit {code}):\n{out[-2000:]}")


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else float("nan")
