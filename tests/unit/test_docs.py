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


def fixed_refusal_texts() -> dict[str, str]:
    """Every refusal text plugin.errors spells out itself, by class: the part before any detail."""
    import inspect

    from plugin import errors

    texts = {}
    for name, cls in vars(errors).items():
        if not (inspect.isclass(cls) and issubclass(cls, errors.AuthError)):
            continue
        required = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                    if p.default is inspect.Parameter.empty]
        message = cls(*["\0"] * len(required)).message.partition("\0")[0].rstrip(' :"')
        if message.removeprefix("Key not authorized"):
            texts[name] = message
    return texts


def test_troubleshooting_names_every_refusal_text_the_plugin_sends():
    guide = " ".join((ROOT / "docs" / "troubleshooting.md").read_text().split())
    texts = fixed_refusal_texts()
    assert "NoValidPolicies" in texts and "MissingToken" in texts
    missing = {name: text for name, text in texts.items() if text not in guide}
    assert missing == {}


def test_the_readme_counts_the_key_set_shapes_as_the_e2e_test_serves_them():
    from tests.e2e.test_key_set_shapes import KEY_SET_CASES

    differing = sum(1 for case in KEY_SET_CASES if case.differs is not None)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"serves {len(KEY_SET_CASES)} key-set shapes" in readme
    assert f"{len(KEY_SET_CASES) - differing} get identical status and body, and the other {differing} fall" in readme
