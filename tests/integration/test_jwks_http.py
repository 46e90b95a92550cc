"""Fetching a JWKS over a real socket: misbehaving endpoints end in a FetchError, never a hang."""

from __future__ import annotations

import json
import socket
import socketserver
import time
from collections.abc import Callable

import pytest

from plugin.jwks import FetchError, http_fetch
from tests.integration.conftest import dripping
from tests.support import tokens as t

Handler = Callable[[socketserver.BaseRequestHandler], None]


def test_a_jwks_is_fetched_over_http(endpoint):
    body = json.dumps(t.jwks(t.rsa_key("k1"))).encode()

    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    assert http_fetch(endpoint(handle), 2.0, 256 * 1024) == body


def test_an_endpoint_that_drips_its_body_is_abandoned(endpoint):
    handle = dripping(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b" ", 100)
    started = time.monotonic()
    with pytest.raises(FetchError, match="fetch timeout"):
        http_fetch(endpoint(handle), 0.5, 256 * 1024)
    assert time.monotonic() - started < 5  # the drip alone would take 10 s


def test_a_chunked_body_cut_short_is_a_fetch_error(endpoint):
    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n{\"keys\":")
        self.request.close()

    with pytest.raises(FetchError, match="IncompleteRead"):
        http_fetch(endpoint(handle), 2.0, 256 * 1024)


def test_a_body_exactly_at_the_limit_is_fetched(endpoint):
    body = b" " * 1024

    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n" + body)

    assert http_fetch(endpoint(handle), 2.0, 1024) == body


def test_a_body_over_the_limit_is_a_fetch_error(endpoint):
    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n" + b" " * 2048)

    with pytest.raises(FetchError, match="larger than 1024"):
        http_fetch(endpoint(handle), 2.0, 1024)


def test_a_complete_response_is_kept_even_if_its_headers_came_slowly(endpoint):
    body = json.dumps(t.jwks(t.rsa_key("k1"))).encode()

    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\n")
        time.sleep(0.6)
        self.request.sendall(b"Content-Length: %d\r\n" % len(body))
        time.sleep(0.6)
        self.request.sendall(b"\r\n" + body)

    assert http_fetch(endpoint(handle), 1.0, 256 * 1024) == body


def _redirecting_to(location: Callable[[], str]) -> Handler:
    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location().encode())

    return handle


def test_a_redirect_to_another_loopback_jwks_is_followed(endpoint):
    body = json.dumps(t.jwks(t.rsa_key("k1"))).encode()

    def final(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    target = endpoint(final)
    assert http_fetch(endpoint(_redirecting_to(lambda: target)), 2.0, 256 * 1024) == body


@pytest.mark.parametrize("location", ["http://jwks.example.invalid/.well-known/jwks.json",
                                      "ftp://127.0.0.1/jwks.json",
                                      "https://user:pw@idp.example.com/jwks.json"])
def test_a_redirect_to_where_no_jwks_may_be_fetched_from_is_refused(endpoint, location):
    with pytest.raises(FetchError, match="redirect refused") as refused:
        http_fetch(endpoint(_redirecting_to(lambda: location)), 2.0, 256 * 1024)
    assert "pw" not in str(refused.value) and "example" not in str(refused.value)


def test_a_redirect_loop_ends_in_a_fetch_error(endpoint):
    urls: list[str] = []
    urls.append(endpoint(_redirecting_to(lambda: urls[0])))
    with pytest.raises(FetchError, match="HTTP 302"):
        http_fetch(urls[0], 2.0, 256 * 1024)


def test_an_endpoint_that_drips_its_headers_is_cut_at_the_fetch_deadline(endpoint):
    handle = dripping(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a", 200)  # 20 s of one header byte every 0.1 s
    started = time.monotonic()
    with pytest.raises(FetchError, match="not complete within 1.4 s"):
        http_fetch(endpoint(handle), 0.2, 256 * 1024)
    assert time.monotonic() - started < 3.0


def test_a_malformed_status_line_is_named_by_its_kind_without_quoting_it(endpoint):
    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"GARBAGE \x1b[31m" + b"X" * 60000 + b"\r\nINFO forged log line\r\n\r\n")

    with pytest.raises(FetchError) as failed:
        http_fetch(endpoint(handle), 2.0, 256 * 1024)
    assert str(failed.value) == "BadStatusLine"


def test_a_refused_connection_is_named_with_the_systems_words():
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(FetchError) as failed:
        http_fetch(f"http://127.0.0.1:{free}/jwks.json", 2.0, 256 * 1024)
    assert str(failed.value) == "URLError: Connection refused"


def _self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@pytest.fixture()
def tls(tmp_path, monkeypatch):
    """A server-side TLS context for 127.0.0.1, and the fetch's opener trusting its certificate."""
    import ssl

    from plugin import httpget, jwks

    cert, key = _self_signed(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr(jwks, "_OPENER", httpget.build_opener(jwks._CheckedRedirects, context=trusting))
    return server_side


def test_a_jwks_is_fetched_over_https(endpoint, tls):
    body = json.dumps(t.jwks(t.rsa_key("k1"))).encode()

    def handle(self):
        with tls.wrap_socket(self.request, server_side=True) as conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    assert http_fetch(endpoint(handle).replace("http://", "https://"), 2.0, 256 * 1024) == body


def test_an_https_endpoint_that_drips_its_headers_is_cut_at_the_fetch_deadline(endpoint, tls):
    def handle(self):
        try:
            with tls.wrap_socket(self.request, server_side=True) as conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(200):  # 20 s of one header byte every 0.1 s: each socket wait is short
                    time.sleep(0.1)
                    conn.sendall(b"a")
        except OSError:
            pass

    url = endpoint(handle).replace("http://", "https://")
    started = time.monotonic()
    with pytest.raises(FetchError, match="not complete within 1.4 s"):
        http_fetch(url, 0.2, 256 * 1024)
    assert time.monotonic() - started < 3.0
