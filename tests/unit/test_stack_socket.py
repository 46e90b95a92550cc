"""The devstack can serve the plugin on a unix socket, the address the gateway then dials."""

from __future__ import annotations

import pytest

from plugin.cli import build_parser
from plugin.devstack.procs import StackError
from plugin.devstack.stack import Stack


def test_a_socket_stack_gives_the_plugin_and_the_gateway_a_unix_address_in_its_workdir(tmp_path):
    stack = Stack(workdir=tmp_path, plugin_socket=True)
    assert stack.plugin_address == f"unix://{tmp_path}/plugin.sock"


def test_a_relative_workdir_still_gives_an_absolute_socket_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Stack(workdir="run", plugin_socket=True).plugin_address == f"unix://{tmp_path}/run/plugin.sock"


def test_a_workdir_too_long_for_a_socket_path_is_refused_before_anything_starts(tmp_path):
    stack = Stack(workdir=tmp_path / ("w" * 110), plugin_socket=True, with_gateway=False)
    with pytest.raises(StackError, match="longer than a unix socket path may be"):
        stack.start()
    assert stack.redis is None


def test_the_stack_command_serves_the_plugin_on_a_socket_when_asked():
    assert build_parser().parse_args(["stack", "--plugin-socket"]).plugin_socket is True
    assert build_parser().parse_args(["stack"]).plugin_socket is False
