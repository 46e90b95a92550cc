"""Which suites a benchmark command runs, and where its figures go."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import DEFAULT_OUTPUT, SCRATCH_OUTPUT, SUITES, parse_args


def test_a_full_run_runs_every_default_suite_into_the_committed_results() -> None:
    args = parse_args([])
    assert args.suites == list(SUITES)
    assert args.output_dir == DEFAULT_OUTPUT


def test_a_full_run_leaves_the_first_seen_suite_out() -> None:
    assert "gateway-first-seen" not in parse_args([]).suites
    assert parse_args(["--suite", "gateway-first-seen"]).suites == ["gateway-first-seen"]


def test_quick_and_partial_runs_never_replace_the_committed_results() -> None:
    assert parse_args(["--quick"]).output_dir == SCRATCH_OUTPUT
    assert parse_args(["--suite", "plugin,crypto"]).output_dir == SCRATCH_OUTPUT
    assert parse_args(["--suite", "gateway-first-seen"]).output_dir == SCRATCH_OUTPUT


def test_an_output_dir_given_is_used_as_given(tmp_path: Path) -> None:
    assert parse_args(["--quick", "--output-dir", str(tmp_path)]).output_dir == tmp_path


def test_the_forged_token_makes_the_verify_do_the_full_rsa_operation():
    """A signature at or above the modulus is refused before any arithmetic, which would make the
    bad-signature case cheap in about half the runs."""
    import base64

    from bench.payloads import forged_token
    from tests.support.tokens import rsa_key

    key = rsa_key("published")
    token = forged_token(key, rsa_key("stranger"))
    signature = int.from_bytes(base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "=="), "big")
    assert signature < key.private.public_key().public_numbers().n
