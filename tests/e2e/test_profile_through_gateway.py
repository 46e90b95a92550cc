"""``python -m bench --suite gateway-profile`` through the real gateway: where each API's CPU goes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def profile(gateway_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    for tool in ("wrk", "go"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    out = tmp_path_factory.mktemp("bench-profile")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--suite", "gateway-profile", "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "TYK_GATEWAY_BIN": str(gateway_binary)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())["suites"]["gateway-profile"], out


def test_every_api_is_profiled_and_its_profile_kept(profile: tuple[dict[str, Any], Path]) -> None:
    suite, out = profile
    assert suite["available"] is True
    assert set(suite["cases"]) == {"keyless", "native_jwt", "plugin_idext", "plugin_noext"}
    for name in suite["cases"]:
        assert (out / "gateway-profile" / f"{name}.pb.gz").read_bytes()[:2] == b"\x1f\x8b", name


def test_the_cpu_of_every_process_is_counted_per_request(profile: tuple[dict[str, Any], Path]) -> None:
    cases = profile[0]["cases"]
    for name, case in cases.items():
        assert {"gateway", "redis", "upstream", "wrk"} <= case["cpu_us_per_req"].keys(), name
        assert case["cpu_us_per_req"]["gateway"] > 0, name
    assert cases["plugin_noext"]["cpu_us_per_req"]["plugin"] > 0


def test_the_profile_finds_each_api_s_own_auth_path(profile: tuple[dict[str, Any], Path]) -> None:
    cases = profile[0]["cases"]
    assert cases["native_jwt"]["nodes"]["jwt_middleware"]["us_per_req"] > 0
    assert cases["native_jwt"]["nodes"]["coprocess_middleware"]["us_per_req"] == 0
    assert cases["plugin_idext"]["nodes"]["id_extractor"]["us_per_req"] > 0
    assert cases["plugin_noext"]["nodes"]["grpc_call"]["us_per_req"] > 0
    assert cases["keyless"]["nodes"]["jwt_middleware"]["us_per_req"] == 0
