"""The benchmark harness still runs end to end (``python -m bench --quick``); speed is never asserted.

A quick run spends about a second per case, which says nothing about performance on a shared
machine; it only proves that every suite starts its servers, drives them, parses the load
generator's output and writes results.json and the chart.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_CASES = {"echo", "warm", "cold", "unknown_kid", "bad_sig"}
CASE_KEYS = {"calls_per_s", "p50_ms", "p99_ms", "cpu_us_per_call", "server_cores", "runs"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    if shutil.which("h2load") is None:
        pytest.skip("h2load is not installed (Debian package nghttp2-client)")
    pytest.importorskip("matplotlib", reason="the harness charts with matplotlib (pip install '.[bench]')")
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--suite", "plugin,crypto,memory", "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )
    return proc, out


def test_quick_run_exits_zero_and_prints_the_table(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Targets (ratios from this run)" in proc.stdout
    assert "plugin: rep 1/1" in proc.stderr  # progress lines while it runs


def test_results_json_has_every_figure(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = quick_run
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True
    assert {"nproc", "cpu_model", "python", "grpcio", "pyjwt", "cryptography"} <= results["machine"].keys()
    suites = results["suites"]
    assert {"plugin", "workers", "crypto", "memory"} <= suites.keys()
    plugin = suites["plugin"]
    assert plugin["available"] is True
    assert set(plugin["cases"]) == PLUGIN_CASES
    for name, case in plugin["cases"].items():
        assert case.keys() >= CASE_KEYS, name
        assert case["calls_per_s"] > 0 and case["reply_bytes"] > 0, name
        assert case["failed_calls"] == 0, name
        if name != "echo":
            assert {"ratio", "p99_ratio"} <= case.keys(), name
    workers = suites["workers"]
    assert workers["available"] is False or {"workers_1", "workers_2", "ratio"} <= workers.keys()
    crypto = suites["crypto"]
    assert {"rsa2048_verify", "authenticate_cold", "authenticate_warm"} <= crypto["cases"].keys()
    assert crypto["profiles"]["authenticate_cold"]
    memory = suites["memory"]
    assert memory["tokens"] == 20_000 and memory["refused"] == 0
    assert memory["peak_rss_mb"] > 0 and memory["curve"]
    assert {"cold_cpu_us_above_echo", "rsa_share_of_cold_above_echo"} <= results["derived"].keys()
    assert len(results["targets"]) == 11
    assert all(row["status"] for row in results["targets"])


def test_chart_is_a_png(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = quick_run
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
