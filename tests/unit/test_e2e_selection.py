"""`python -m pytest -m e2e` (README, Development) selects every end-to-end module."""

from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"


def test_every_end_to_end_module_is_marked_e2e():
    modules = sorted(E2E.glob("test_*.py"))
    assert modules
    unmarked = [path.name for path in modules if "\npytestmark = pytest.mark.e2e\n" not in path.read_text()]
    assert unmarked == []
