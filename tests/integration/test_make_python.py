"""The Makefile's interpreter: the first python3 that pip may install into, else the project's .venv/."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT

PICK = ROOT / "scripts" / "pick-python.sh"
DEBIAN_PYTHON = Path("/usr/bin/python3")


def picked(cwd: Path, path: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYENV_VERSION")}
    return subprocess.run(["bash", str(PICK)], cwd=cwd, env=dict(env, PATH=path), capture_output=True, text=True,
                          check=True).stdout.strip()


def test_an_activated_virtualenv_is_used_even_when_a_project_venv_exists(tmp_path):
    env_dir = tmp_path / "active"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(env_dir)], check=True)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)  # a project .venv from an earlier run
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    assert picked(tmp_path, f"{env_dir / 'bin'}:/usr/bin:/bin") == "python3"


@pytest.mark.skipif(not (DEBIAN_PYTHON.exists() and glob.glob("/usr/lib/python3*/EXTERNALLY-MANAGED")),
                    reason="needs Debian's own python3, which refuses pip installs (PEP 668)")
def test_debians_own_python_sends_the_install_to_the_project_venv(tmp_path):
    assert picked(tmp_path, "/usr/bin:/bin") == ".venv/bin/python"
