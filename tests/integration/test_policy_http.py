"""Reading the gateway's policy list over a real socket: a gateway that misbehaves ends the read by
its deadline, since a refusal may be waiting on it."""

from __future__ import annotations

import contextlib
import json
import logging
import time

from plugin.policy_index import PolicyIndex, from_gateway
from tests.integration.conftest import dripping

POLICIES = json.dumps([{"id": "p1", "org_id": "o", "access_rights": {"api": {}}}]).encode()


def _gateway(url: str) -> str:
    return url.rsplit("/.well-known/", 1)[0]


def test_a_policy_list_is_read_from_the_gateway(endpoint):
    def handle(self):
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(POLICIES) + POLICIES)

    index = PolicyIndex(from_gateway(_gateway(endpoint(handle)), "secret", timeout=1.0))
    assert index.refresh()
    assert index.known("o", "p1") is True


def test_a_gateway_that_drips_its_headers_is_cut_at_the_read_deadline(endpoint, caplog):
    handle = dripping(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a", 200)  # 20 s of one header byte every 0.1 s
    index = PolicyIndex(from_gateway(_gateway(endpoint(handle)), "secret", timeout=0.2))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        assert not index.refresh()
    assert time.monotonic() - started < 3.0
    assert "not complete within 1.4 s" in caplog.text


def test_a_gateway_that_drips_its_body_is_abandoned(endpoint, caplog):
    handle = dripping(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[", b" ", 100)
    index = PolicyIndex(from_gateway(_gateway(endpoint(handle)), "secret", timeout=0.3))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        assert not index.refresh()
    assert time.monotonic() - started < 3.0
    assert "not complete" in caplog.text


def test_a_policy_list_over_8_mib_is_refused_not_cut_into_json(endpoint, caplog):
    body = b"[" + b" " * (8 * 1024 * 1024) + b"]"

    def handle(self):
        self.request.recv(65536)
        with contextlib.suppress(OSError):  # the reader hangs up at its limit
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    index = PolicyIndex(from_gateway(_gateway(endpoint(handle)), "secret", timeout=2.0))
    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        assert not index.refresh()
    assert "response larger than 8388608 bytes" in caplog.text
