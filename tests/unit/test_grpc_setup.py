"""gRPC core settings applied by the command line before grpc is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from plugin.grpc_setup import CLASSIC_LISTENER, EXPERIMENTS_ENV, prefer_classic_listener

ROOT = Path(__file__).resolve().parents[2]


def _in_fresh_interpreter(code: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.strip()


def test_the_classic_listener_is_chosen_before_grpc_is_imported():
    env = {k: v for k, v in os.environ.items() if k != EXPERIMENTS_ENV}
    out = _in_fresh_interpreter(
        "import os; from plugin.grpc_setup import prefer_classic_listener as p; "
        "print(p(os.environ), os.environ['GRPC_EXPERIMENTS'])", env)
    assert out == f"True {CLASSIC_LISTENER}"


def test_an_operator_choice_of_experiments_is_kept():
    environ = {EXPERIMENTS_ENV: "event_engine_listener"}
    assert prefer_classic_listener(environ) is False
    assert environ == {EXPERIMENTS_ENV: "event_engine_listener"}


def test_nothing_is_set_once_grpc_is_imported():
    env = {k: v for k, v in os.environ.items() if k != EXPERIMENTS_ENV}
    out = _in_fresh_interpreter(
        "import os, grpc; from plugin.grpc_setup import prefer_classic_listener as p; "
        "print(p(os.environ), os.environ.get('GRPC_EXPERIMENTS'))", env)
    assert out == "False None"


def test_the_command_line_applies_it_for_every_subcommand():
    env = {k: v for k, v in os.environ.items() if k != EXPERIMENTS_ENV}
    out = _in_fresh_interpreter(
        "import os; from plugin import cli\n"
        "try:\n    cli.main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('RESULT', os.environ.get('GRPC_EXPERIMENTS'))", env)
    assert out.splitlines()[-1] == f"RESULT {CLASSIC_LISTENER}"
