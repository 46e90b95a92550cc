"""Worker addresses and the DNS answers that let the gateway spread calls over them."""

from __future__ import annotations

import socket
import struct

import pytest

from plugin.workers import DnsResponder, dns_answer, worker_addresses


def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + bytes([0])
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def answers(response: bytes) -> tuple[int, list[str]]:
    flags, _, ancount = struct.unpack("!HHH", response[2:8])
    records = response[-16 * ancount:] if ancount else b""
    return flags & 0xF, [socket.inet_ntoa(records[i * 16 + 12:i * 16 + 16]) for i in range(ancount)]


def test_workers_take_consecutive_loopback_addresses():
    assert worker_addresses("127.0.0.1", 3) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "localhost", "::1"])
def test_workers_refuse_any_host_but_a_loopback_ipv4_address(host):
    with pytest.raises(ValueError):
        worker_addresses(host, 2)


def test_the_name_resolves_to_every_worker():
    rcode, addrs = answers(dns_answer(query("tyk-auth0-plugin.internal"), "tyk-auth0-plugin.internal",
                                      ["127.0.0.1", "127.0.0.2"]))
    assert rcode == 0 and addrs == ["127.0.0.1", "127.0.0.2"]


def test_other_record_types_of_the_name_are_empty_not_errors():
    rcode, addrs = answers(dns_answer(query("tyk-auth0-plugin.internal", qtype=28), "tyk-auth0-plugin.internal",
                                      ["127.0.0.1"]))
    assert rcode == 0 and addrs == []


def test_other_names_are_nxdomain():
    rcode, _ = answers(dns_answer(query("example.com"), "tyk-auth0-plugin.internal", ["127.0.0.1"]))
    assert rcode == 3


def test_garbage_queries_are_ignored():
    assert dns_answer(bytes([0, 1]), "x", ["127.0.0.1"]) is None


def test_responder_answers_over_udp():
    responder = DnsResponder("127.0.0.1", 0, "w.internal", ["127.0.0.1", "127.0.0.2"])
    responder.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(query("w.internal"), ("127.0.0.1", responder.port))
            data, _ = sock.recvfrom(512)
        assert answers(data)[1] == ["127.0.0.1", "127.0.0.2"]
    finally:
        responder.stop()


def test_the_stack_counts_the_workers_serve_runs_and_their_addresses():
    from plugin.devstack.stack import worker_count, worker_hosts

    assert worker_count([]) == 1
    assert worker_count(["--pin-workers", "--workers", "3"]) == 3
    assert worker_count(["--workers=2"]) == 2
    assert worker_hosts(["--workers", "2", "--dns-listen", "127.0.0.1:5554"]) == ["127.0.0.1", "127.0.0.2"]


def test_the_stack_picks_a_metrics_port_whose_worker_ports_are_free_too():
    from plugin.devstack.procs import port_is_free
    from plugin.devstack.stack import free_port_range

    port = free_port_range(3)
    assert all(port_is_free(port + i) for i in range(3))


def test_a_wanted_metrics_port_is_given_up_when_a_later_workers_port_is_busy():
    import socket

    from plugin.devstack.stack import free_port_range, pick_port_range

    wanted = free_port_range(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", wanted + 1))
        holder.listen()
        port, as_wanted = pick_port_range(wanted, 2)
    assert not as_wanted and port != wanted


def test_a_wanted_metrics_port_is_kept_when_every_workers_port_is_free():
    from plugin.devstack.stack import free_port_range, pick_port_range

    wanted = free_port_range(3)
    assert pick_port_range(wanted, 3) == (wanted, True)


class _SendFailsOnce:
    """A UDP socket whose first reply cannot be sent (a firewall's EPERM, a spoofed broadcast source)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.failed = False

    def sendto(self, data: bytes, peer: tuple[str, int]) -> int:
        if not self.failed:
            self.failed = True
            raise PermissionError(1, "Operation not permitted")
        return self._sock.sendto(data, peer)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_a_reply_that_cannot_be_sent_does_not_stop_the_responder():
    responder = DnsResponder("127.0.0.1", 0, "w.internal", ["127.0.0.1"])
    failing = _SendFailsOnce(responder.sock)
    responder.sock = failing
    responder.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            for _ in range(20):  # the first reply is lost; a later query is answered
                sock.sendto(query("w.internal"), ("127.0.0.1", responder.port))
                try:
                    data, _ = sock.recvfrom(512)
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("the responder stopped answering after one failed send")
        assert failing.failed and answers(data)[1] == ["127.0.0.1"]
    finally:
        responder.stop()
