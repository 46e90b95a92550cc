"""An installed package (no repository around it) still knows the manifest its bundle is built from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT

NATIVE = {"api_id": "a1", "org_id": "o1", "enable_jwt": True, "jwt_signing_method": "rsa",
          "jwt_source": "https://tenant.example/.well-known/jwks.json"}


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The plugin package alone, as pip puts it in site-packages; returns a working directory beside it."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "plugin", site / "plugin", ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "native.json").write_text(json.dumps(NATIVE))
    return work


def run(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TYK_AUTH0_MANIFEST"}
    env["PYTHONPATH"] = str(work.parent / "site-packages")
    return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_migrate_with_a_bundle_runs_from_an_installed_package(installed):
    result = run(installed, "-m", "plugin", "migrate", "--api", "native.json", "--bundle", "bundle.zip",
                 "-o", "x.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((installed / "x.json").read_text())["custom_middleware_bundle"] == "bundle.zip"


def test_migrate_writes_the_repository_manifests_middleware_from_an_installed_package(installed):
    result = run(installed, "-m", "plugin", "migrate", "--api", "native.json")
    assert result.returncode == 0, result.stderr
    expected = json.loads((ROOT / "manifest.json").read_text())["custom_middleware"]
    assert json.loads(result.stdout)["custom_middleware"] == expected


def test_serve_finds_the_auth_hook_name_from_an_installed_package(installed):
    result = run(installed, "-c", "from plugin.manifest import load_hook_names, manifest_path; "
                                  "print(load_hook_names(manifest_path()).auth_check)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Auth0JWTAuthCheck"
