"""`make run` on a fresh machine installs what the walkthrough needs from Debian, and nothing more."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make")


def fake_bin(tmp_path: Path, *present: str) -> Path:
    """A PATH holding only a recording apt-get and the named commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "apt.log"}\n')
    for name in ("apt-get", *present):
        path = bin_dir / name
        if not path.exists():
            path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return bin_dir


def make(tmp_path: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    return subprocess.run([MAKE, "-s", "-C", str(ROOT), "PYTHON=python3", *args], env={"PATH": str(bin_dir)},
                          capture_output=True, text=True, check=False)


def apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


def test_run_deps_installs_redis_server_when_it_is_missing(tmp_path):
    result = make(tmp_path, fake_bin(tmp_path), "run-deps")
    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == ["update -qq", "install -y -qq redis-server"]


def test_run_deps_installs_nothing_when_redis_server_is_there(tmp_path):
    result = make(tmp_path, fake_bin(tmp_path, "redis-server"), "run-deps")
    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == []


def test_make_run_installs_its_debian_dependencies_before_starting_the_stack(tmp_path):
    recipe = make(tmp_path, fake_bin(tmp_path), "-n", "run").stdout
    assert recipe.index("apt-get install -y -qq redis-server") < recipe.index("-m plugin stack")
    assert "wrk" not in recipe and "nghttp2" not in recipe
