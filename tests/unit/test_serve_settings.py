"""serve's settings: a bad flag or environment value is refused by name, never with a traceback."""

from __future__ import annotations

import pytest

from plugin.cli import build_parser
from plugin.server import StartupError, check_server_defaults, checked_gateway_access, flag_value


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith(("TYK_AUTH0_", "AUTH0_")):
            monkeypatch.delenv(name)


def refusal(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("variable", "value"), [
    ("TYK_AUTH0_THREADS", "abc"),
    ("TYK_AUTH0_WORKERS", ""),
    ("TYK_AUTH0_JWKS_TIMEOUT", "3s"),
    ("TYK_AUTH0_JWKS_MIN_REFETCH_INTERVAL", "nan"),
    ("TYK_AUTH0_JWKS_MAX_STALE", "-1"),
    ("TYK_AUTH0_TOKEN_CACHE_SIZE", "1e5"),
    ("TYK_AUTH0_LOG_LEVEL", "VERBOSE"),
    ("TYK_AUTH0_METRICS_LISTEN", "9464"),
    ("TYK_AUTH0_THREADS", "1" + "0" * 400),
    ("TYK_AUTH0_LISTEN", "localhost:5555"),
    ("TYK_AUTH0_DNS_NAME", "tyk auth0 plugin"),
])
def test_a_bad_environment_value_is_refused_naming_the_variable(monkeypatch, capsys, variable, value):
    monkeypatch.setenv(variable, value)
    assert variable in refusal(capsys, ["serve"])


@pytest.mark.parametrize("argv", [
    ["--threads", "0"], ["--jwks-timeout", "0"], ["--jwks-timeout", "inf"], ["--jwks-max-stale", "nan"],
    ["--log-level", "loud"], ["--metrics-listen", "host:99999"], ["--listen", "tcp://127.0.0.1"],
])
def test_a_bad_flag_is_refused_naming_it(capsys, argv):
    assert argv[0] in refusal(capsys, ["serve", *argv])


def test_a_bad_serve_variable_does_not_break_other_commands(monkeypatch, capsys):
    monkeypatch.setenv("TYK_AUTH0_THREADS", "abc")
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["check", "--help"])
    assert info.value.code == 0


def test_numbers_come_from_the_environment_when_no_flag_is_given(monkeypatch):
    monkeypatch.setenv("TYK_AUTH0_THREADS", " 7 ")
    monkeypatch.setenv("TYK_AUTH0_JWKS_TIMEOUT", "1.5")
    args = build_parser().parse_args(["serve"])
    assert (args.threads, args.jwks_timeout) == (7, 1.5)


def test_a_flag_wins_over_its_variable(monkeypatch):
    monkeypatch.setenv("TYK_AUTH0_THREADS", "abc")
    assert build_parser().parse_args(["serve", "--threads", "2"]).threads == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("1", True), ("true", True), ("Yes", True), ("on", True),
    ("", False), ("0", False), ("false", False), ("NO", False), ("off", False),
])
def test_switch_variables_take_the_usual_words(text, expected):
    assert flag_value(text, "TYK_AUTH0_LOG_JSON") is expected


def test_a_switch_variable_with_another_word_is_refused_by_name():
    with pytest.raises(ValueError, match="TYK_AUTH0_PIN_WORKERS"):
        flag_value("enabled", "TYK_AUTH0_PIN_WORKERS")


def test_a_bad_server_wide_auth0_setting_names_its_variable():
    with pytest.raises(StartupError, match="AUTH0_JWT_SIGNING_METHOD"):
        check_server_defaults({"auth0_domain": "tenant.example.auth0.com", "jwt_signing_method": "RS256"})


def test_no_server_wide_auth0_settings_is_fine():
    check_server_defaults({})


def test_the_token_size_limit_can_be_raised(monkeypatch):
    assert build_parser().parse_args(["serve"]).max_token_bytes == 64 * 1024
    monkeypatch.setenv("TYK_AUTH0_MAX_TOKEN_BYTES", "131072")
    assert build_parser().parse_args(["serve"]).max_token_bytes == 131072


def test_the_gateway_secret_is_sent_without_the_newline_a_mounted_file_leaves():
    assert checked_gateway_access("http://127.0.0.1:8080", "S3cret\n") == "S3cret"


@pytest.mark.parametrize(("url", "secret", "named"), [
    ("http://admin:GwPassw0rd@127.0.0.1:8080", "S3cret", "carries credentials"),
    ("http://admin:GwPassw0rd@127.0.0.1:x", "S3cret", "is not a valid URL"),
    ("ftp://127.0.0.1", "S3cret", "must be an http(s) URL"),
    ("http://127.0.0.1:8080", "", "TYK_AUTH0_GATEWAY_SECRET is not"),
    ("http://127.0.0.1:8080", "S3c\x00ret", "control character"),
])
def test_a_bad_gateway_setting_is_refused_by_name_without_quoting_it(url, secret, named):
    with pytest.raises(ValueError) as info:
        checked_gateway_access(url, secret)
    assert named in str(info.value)
    assert "GwPassw0rd" not in str(info.value) and "S3c" not in str(info.value)


def test_the_start_up_line_names_the_hash_function_session_keys_follow():
    from plugin.server import key_hashing_note

    assert "hash_key_function 'murmur64' unless" in key_hashing_note({"TYK_HASH_KEY_FUNCTION": "murmur64"})
    unset = key_hashing_note({})
    assert "none (TYK_HASH_KEY_FUNCTION unset)" in unset and "Tyk ships murmur64" in unset


def test_the_start_up_line_says_an_unknown_hash_function_keys_as_murmur64():
    from plugin.server import key_hashing_note

    assert "it and the plugin key ids as murmur64" in key_hashing_note({"TYK_HASH_KEY_FUNCTION": "murmur46"})


@pytest.mark.parametrize(("flag", "variable"), [("--grace", "TYK_AUTH0_GRACE"),
                                                ("--jwks-timeout", "TYK_AUTH0_JWKS_TIMEOUT")])
def test_a_wait_too_long_for_a_timer_is_refused_naming_it(monkeypatch, capsys, flag, variable):
    """Past about 1e10 s Python's timed waits overflow: shutdown or every JWKS fetch would fail."""
    assert flag in refusal(capsys, ["serve", flag, "1e10"])
    monkeypatch.setenv(variable, "1e10")
    assert variable in refusal(capsys, ["serve"])


def test_the_longest_jwks_timeout_accepted_still_fetches():
    import http.server

    from plugin.jwks import http_fetch
    from plugin.server import MAX_FETCH_TIMEOUT
    from tests.support.http_servers import serving

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "11")
            self.end_headers()
            self.wfile.write(b'{"keys":[]}')

        def log_message(self, *args):
            pass

    with serving(http.server.HTTPServer(("127.0.0.1", 0), Keys)) as base:
        assert http_fetch(f"{base}/jwks", MAX_FETCH_TIMEOUT, 1024) == b'{"keys":[]}'


def test_a_variable_that_cannot_be_read_as_a_list_stops_the_start_by_name():
    from plugin.server import server_defaults

    with pytest.raises(StartupError, match="AUTH0_ISSUER"):
        server_defaults({"AUTH0_DOMAIN": "dev-x.eu.auth0.com", "AUTH0_ISSUER": "[https://dev-x.eu.auth0.com/]"})


def test_the_policy_list_from_both_a_directory_and_the_gateway_is_refused_naming_both():
    with pytest.raises(ValueError) as info:
        checked_gateway_access("http://127.0.0.1:8080", "S3cret", policies_path="/opt/tyk-gateway/policies")
    assert "--tyk-policies" in str(info.value) and "--tyk-gateway-url" in str(info.value)


@pytest.mark.parametrize("name", ["", "plugin..internal", "-plugin.internal", "x" * 64 + ".internal"])
def test_a_dns_name_the_gateway_could_not_resolve_is_refused_naming_the_flag(capsys, name):
    assert "--dns-name" in refusal(capsys, ["serve", "--dns-name", name])


def test_the_dns_name_may_end_in_a_dot():
    assert build_parser().parse_args(["serve", "--dns-name", "plugin.internal."]).dns_name == "plugin.internal"


def test_a_dns_name_with_an_underscore_is_accepted_as_the_gateways_resolver_takes_it():
    assert build_parser().parse_args(["serve", "--dns-name", "tyk_plugin.internal"]).dns_name == "tyk_plugin.internal"


@pytest.mark.parametrize("name", ["10.0.0.1", "5555"])
def test_a_dns_name_of_digits_and_dots_is_refused_since_the_gateway_dials_it_as_an_address(capsys, name):
    assert "--dns-name" in refusal(capsys, ["serve", "--dns-name", name])


def test_workers_refuse_a_metrics_port_of_0_naming_the_flag(monkeypatch, caplog):
    """Worker i serves metrics on PORT+i: from 0 that is a random port, then ports 1, 2, ... (privileged)."""
    import plugin.server as server

    started: list[object] = []
    monkeypatch.setattr(server, "Supervisor", lambda **kwargs: started.append(kwargs) or pytest.fail("workers started"))
    args = build_parser().parse_args(["serve", "--workers", "2", "--listen", "tcp://127.0.0.1:5555",
                                      "--dns-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
    assert server._run_workers(args) == 2
    assert started == []
    assert "--metrics-listen" in caplog.text and "not 0" in caplog.text
