"""The plugin on a unix socket (coprocess_grpc_server "unix:///path.sock"), through the real gateway."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.devstack import gateway as gw
from plugin.devstack.procs import socket_open, wait_until
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e

EXTRACTOR = f"/{gw.PLUGIN_API_ID}/get"
SUBJECT = f"/{gw.PLUGIN_SUBJECT_API_ID}/get"
NATIVE = f"/{gw.NATIVE_API_ID}/get"


@pytest.fixture(scope="module")
def on_socket(gateway_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(workdir=tmp_path_factory.mktemp("uds"), gateway_bin=gateway_binary, plugin_socket=True) as running:
        yield running


def sub() -> str:
    return f"uds-{uuid.uuid4().hex[:12]}@clients"


def reaches_the_plugin(stack: Stack) -> bool:
    """A token the gateway has never seen passes, so the plugin answered it."""
    return stack.get(SUBJECT, token=stack.token(sub=sub())).status == 200


def test_the_gateway_dials_the_plugins_unix_socket(on_socket: Stack) -> None:
    assert on_socket.gateway is not None
    conf = json.loads(on_socket.gateway.conf_path.read_text())
    assert conf["coprocess_options"]["coprocess_grpc_server"] == f"unix://{on_socket.workdir}/plugin.sock"
    assert on_socket.plugin_socket_path.is_socket()


@pytest.mark.parametrize("path", [EXTRACTOR, SUBJECT], ids=["id-extractor", "no-id-extractor"])
def test_a_valid_token_passes_through_the_socket(on_socket: Stack, path: str) -> None:
    token = on_socket.token(sub=sub())
    result = on_socket.get(path, token=token)
    assert result.status == 200, result.text
    assert result.json()["headers"]["Authorization"] == f"Bearer {token}"


@pytest.mark.parametrize("path", [EXTRACTOR, SUBJECT], ids=["id-extractor", "no-id-extractor"])
def test_a_forged_token_gets_the_gateways_own_403_through_the_socket(on_socket: Stack, path: str) -> None:
    forged = on_socket.token(sub=sub(), key="unknown")
    result = on_socket.get(path, token=forged)
    native = on_socket.get(NATIVE, token=forged)
    assert result.status == native.status == 403
    assert result.body == native.body
    assert result.json() == {"error": "Key not authorized"}


def test_sigterm_removes_the_socket_file_and_a_restart_on_it_is_reached(on_socket: Stack) -> None:
    on_socket.stop_plugin()
    try:
        assert not on_socket.plugin_socket_path.exists()
    finally:
        on_socket.start_plugin()
    wait_until(lambda: reaches_the_plugin(on_socket), timeout=15, interval=0.3,
               what="the gateway to reach the restarted plugin")


def test_a_killed_plugins_socket_file_is_taken_over_by_the_next_start(on_socket: Stack) -> None:
    """As under systemd's Restart=: the file a crashed server leaves does not stop the next one."""
    assert on_socket.plugin is not None
    on_socket.plugin.kill()
    try:
        assert on_socket.plugin_socket_path.is_socket()
        assert not socket_open(on_socket.plugin_socket_path)
    finally:
        on_socket.start_plugin()
    wait_until(lambda: reaches_the_plugin(on_socket), timeout=15, interval=0.3,
               what="the gateway to reach the plugin started over the stale socket file")
