"""One real stack (Redis, Auth0 stand-in, plugin, echo upstream, Tyk) for the e2e session.

The gateway comes from scripts/build-gateway.sh, which honours TYK_GATEWAY_BIN. When no
binary can be had, every e2e test is skipped with the script's own explanation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.devstack.gateway import find_gateway_binary
from plugin.devstack.procs import StackError
from plugin.devstack.stack import Stack


@pytest.fixture(scope="session")
def gateway_binary() -> Path:
    try:
        return find_gateway_binary()
    except StackError as exc:
        pytest.skip(f"no Tyk gateway binary (set TYK_GATEWAY_BIN to one): {exc}")


@pytest.fixture(scope="session")
def stack(gateway_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    # A short unknown-kid refetch interval keeps the rotation tests brief; production keeps 10 s.
    # The whole e2e session runs through a bundle signed by our builder, with public_key_path set.
    with Stack(workdir=workdir, gateway_bin=gateway_binary, sign_bundle=True,
               plugin_args=["--jwks-min-refetch-interval", "2"]) as running:
        yield running


@pytest.fixture(scope="session")
def plugin_stack(stack: Stack) -> Stack:
    """The stack with the plugin server running in it."""
    assert stack.plugin is not None, "the stack started without the plugin server"
    return stack


@pytest.fixture
def subject() -> str:
    """A fresh token subject: the gateway keys sessions (rate limits, quotas) by identity."""
    return f"e2e-{uuid.uuid4().hex[:12]}@clients"
