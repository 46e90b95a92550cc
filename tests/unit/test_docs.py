"""The configuration reference is generated from the code and committed up to date."""

import re
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


def test_every_relative_link_in_the_docs_names_a_file_of_the_repository():
    pages = [ROOT / "README.md", ROOT / "bundle" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    dead = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.partition("#")[0]
            if path and "://" not in path and not (page.parent / path).exists():
                dead.append(f"{page.relative_to(ROOT)}: {target}")
    assert dead == []


def test_the_readme_counts_the_differential_corpus_as_the_e2e_test_sends_it():
    from tests.e2e.test_differential import CASES

    differing = sum(1 for case in CASES if case.plugin_expected is not None)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"a corpus of {len(CASES)} token cases" in readme
    assert f"{len(CASES) - differing} get identical status and body, and the other {differing} are" in readme


def test_the_readme_counts_the_header_shapes_as_the_e2e_test_sends_them():
    from tests.e2e.test_request_shapes import HEADER_SHAPES

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"sends {len(HEADER_SHAPES)} shapes of the `Authorization` header" in readme
