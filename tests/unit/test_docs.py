"""The configuration reference is generated from the code and committed up to date."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_matches_the_code():
    result = subprocess.run([sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert "docs/configuration.md" in readme
