"""`stack` reads its preferred ports (STACK_*_PORT) and the stand-in's token profile from the
environment; a bad value is named, never a traceback."""

from __future__ import annotations

import pytest

from plugin.devstack.stack import DEFAULT_PORTS, _env_port, _env_token_profile


@pytest.mark.parametrize("raw", ["99999", "-1", "80a", "²"])
def test_a_port_variable_that_is_not_a_port_is_named_in_the_error(monkeypatch, raw):
    monkeypatch.setenv("STACK_GATEWAY_PORT", raw)
    with pytest.raises(SystemExit, match=r"^STACK_GATEWAY_PORT=.* is not a port number \(0 to 65535"):
        _env_port("gateway")


def test_a_port_variable_gives_the_port(monkeypatch):
    monkeypatch.setenv("STACK_GATEWAY_PORT", " 8088 ")
    assert _env_port("gateway") == 8088


def test_an_unset_port_variable_gives_the_default(monkeypatch):
    monkeypatch.delenv("STACK_GATEWAY_PORT", raising=False)
    assert _env_port("gateway") == DEFAULT_PORTS["gateway"][1]


@pytest.mark.parametrize("flag", [["--log-level", "loud"], ["--log-level", "trace"]])
def test_a_gateway_log_level_the_gateway_would_refuse_is_named_before_anything_starts(capsys, flag):
    from plugin.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["stack", *flag])
    assert "log_level is one of debug, info, warn, error" in capsys.readouterr().err


def test_a_gateway_log_level_is_read_in_any_case(monkeypatch):
    from plugin.cli import build_parser

    monkeypatch.setenv("STACK_GATEWAY_LOG_LEVEL", "WARN")
    assert build_parser().parse_args(["stack"]).log_level == "warn"


def test_the_stand_in_token_profile_defaults_to_auth0s_default_profile(monkeypatch):
    monkeypatch.delenv("STACK_TOKEN_PROFILE", raising=False)
    assert _env_token_profile() == "auth0"


def test_the_stand_in_token_profile_can_be_rfc9068(monkeypatch):
    monkeypatch.setenv("STACK_TOKEN_PROFILE", " RFC9068 ")
    assert _env_token_profile() == "rfc9068"


def test_an_unknown_stand_in_token_profile_is_named_in_the_error(monkeypatch):
    monkeypatch.setenv("STACK_TOKEN_PROFILE", "at+jwt")
    with pytest.raises(SystemExit, match=r"^STACK_TOKEN_PROFILE='at\+jwt' is not a token profile \(one of auth0, rfc9068\)"):
        _env_token_profile()


@pytest.mark.parametrize(("given", "missing"), [("AUTH0_DOMAIN", "AUTH0_AUDIENCE"), ("AUTH0_AUDIENCE", "AUTH0_DOMAIN")])
def test_a_real_tenant_named_by_half_is_refused_naming_both_variables(monkeypatch, tmp_path, given, missing):
    """Half a tenant would run the stand-in while the plugin took the variable as its own tenant."""
    import argparse

    from plugin.devstack.stack import stack_from_env

    monkeypatch.delenv(missing, raising=False)
    monkeypatch.setenv(given, "dev-x.us.auth0.com" if given == "AUTH0_DOMAIN" else "https://api")
    with pytest.raises(SystemExit, match=f"^{given} is set but {missing} is not"):
        stack_from_env(argparse.Namespace(workdir=tmp_path, no_plugin=False, sign_bundle=False, log_level="info"))


def test_a_bad_port_variable_leaves_the_previous_runs_files_alone(monkeypatch, tmp_path):
    import argparse

    from plugin.devstack.stack import stack_from_env

    monkeypatch.delenv("AUTH0_DOMAIN", raising=False)
    monkeypatch.delenv("AUTH0_AUDIENCE", raising=False)
    (tmp_path / "plugin.log").write_text("the last run's log")
    monkeypatch.setenv("STACK_GATEWAY_PORT", "80a")
    with pytest.raises(SystemExit, match="STACK_GATEWAY_PORT"):
        stack_from_env(argparse.Namespace(workdir=tmp_path, no_plugin=False, sign_bundle=False, log_level="info"))
    assert (tmp_path / "plugin.log").read_text() == "the last run's log"


def test_a_port_someone_merely_listens_on_is_not_an_answering_server():
    import socket

    from plugin.devstack.procs import http_answers

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert not http_answers(taken.getsockname()[1], timeout=0.2)


def test_an_http_server_on_the_port_answers():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from plugin.devstack.procs import http_answers
    from tests.support.http_servers import serving

    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    with serving(server):
        assert http_answers(server.server_address[1])
