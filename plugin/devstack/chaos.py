"""Faults injected into the real stack while traffic flows: what is lost, and whether anyone gets in.

``python -m plugin.devstack.chaos [--quick]`` starts its own stack (Redis, the Auth0 stand-in, the
plugin, Tyk) and prints one row per scenario: the load held, the fault, valid requests refused, and
forged tokens let in. The JWKS faults (the endpoint down, answering an HTML page or an empty key set,
hanging) run native JWT beside the plugin with the same traffic, and show the latency of valid
requests before and during the fault. Every scenario is bounded in time and stops its own traffic.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import math
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from plugin.devstack import gateway as gw
from plugin.devstack.idp import AuthZeroStandIn
from plugin.devstack.procs import http_request
from plugin.devstack.stack import Stack
from plugin.jwks import fetch_deadline

PLUGIN_AGENT = "tyk-auth0-plugin"
GATEWAY_AGENT = "Go-http-client"  # native JWT's JWKS fetches
SUBJECT_API = f"/{gw.PLUGIN_SUBJECT_API_ID}/get"  # no ID extractor: the plugin sees every request
NATIVE_API = f"/{gw.NATIVE_API_ID}/get"
MIN_REFETCH = 2.0  # the plugin's --jwks-min-refetch-interval in these runs
JWKS_TTL = 5  # jwks_cache_ttl (plugin) and jwks.cache.timeout (gateway): refreshes fall inside the faults
JWKS_TIMEOUT = 3.0  # the plugin's --jwks-timeout (its default)
FETCH_DEADLINE = fetch_deadline(JWKS_TIMEOUT)  # no request should wait on a hung fetch longer than this
REQUEST_TIMEOUT = 30.0  # past native JWT's 15 s JWKS client timeout: a stalled request is measured, not cut
DRIP_EVERY = 2.0  # a hung JWKS endpoint's byte interval: inside the socket timeout, so only the deadline ends it


@dataclass
class Tally:
    valid: int = 0
    valid_refused: int = 0
    forged: int = 0
    forged_let_in: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    valid_latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds taken)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, forged: bool, status: int, body: bytes, sent: float = 0.0, took: float = 0.0) -> None:
        """``status`` 0: no answer within the request timeout (counted as refused)."""
        with self.lock:
            label = f"{'forged' if forged else 'valid'} {status or 'no answer'}"
            if status not in (0, 200):
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    label += " " + json.loads(body)["error"]
            self.statuses[label] += 1
            if forged:
                self.forged += 1
                self.forged_let_in += status == 200
            else:
                self.valid += 1
                self.valid_refused += status != 200
                self.valid_latencies.append((sent, took))

    def latency(self, start: float, end: float) -> Latency:
        """Valid requests sent in [start, end): their p99 and slowest, in milliseconds."""
        with self.lock:
            taken = sorted(took for sent, took in self.valid_latencies if start <= sent < end)
        if not taken:
            return Latency(0, 0.0, 0.0)
        p99 = taken[max(math.ceil(len(taken) * 0.99) - 1, 0)]
        return Latency(len(taken), round(p99 * 1000, 1), round(taken[-1] * 1000, 1))


@dataclass(frozen=True)
class Latency:
    requests: int
    p99_ms: float
    max_ms: float


@dataclass
class Row:
    scenario: str
    fault: str
    seconds: float
    requests_per_second: float
    valid: int
    valid_refused: int
    forged: int
    forged_let_in: int
    native_valid: int | None = None
    native_valid_refused: int | None = None
    native_forged: int | None = None
    native_forged_let_in: int | None = None
    jwks_fetches: int | None = None
    jwks_fetch_bound: int | None = None
    native_jwks_fetches: int | None = None
    latency_before: Latency | None = None  # valid requests through the plugin before the fault
    latency_during: Latency | None = None
    native_latency_before: Latency | None = None
    native_latency_during: Latency | None = None
    note: str = ""
    statuses: dict[str, int] = field(default_factory=dict)
    native_statuses: dict[str, int] = field(default_factory=dict)


class Traffic:
    """Worker threads sending fresh valid tokens, with every tenth request a forged one. With
    ``also_native`` as many threads send the same mix to native JWT, on threads of their own so
    that one side stalling does not slow the other's traffic."""

    def __init__(self, stack: Stack, path: str, workers: int = 4, also_native: bool = False,
                 forged_every: int = 10, forged_maker: Callable[[int], str] | None = None) -> None:
        self.stack = stack
        self.path = path
        self.workers = workers
        self.also_native = also_native
        self.forged_every = forged_every
        self.tally = Tally()
        self.native = Tally()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._forged = forged_tokens(stack)
        self._forged_maker = forged_maker

    def _send(self, path: str, token: str) -> tuple[int, bytes, float, float]:
        sent = time.monotonic()
        try:
            result = http_request("GET", self.stack.url + path, headers={"Authorization": f"Bearer {token}"},
                                  timeout=REQUEST_TIMEOUT)
            status, body = result.status, result.body
        except OSError:  # no answer in time, or the connection dropped: a refusal, and the thread goes on
            status, body = 0, b""
        return status, body, sent, time.monotonic() - sent

    def _run(self, path: str, tally: Tally, counter: Iterator[int]) -> None:
        while not self._stop.is_set():
            n = next(counter)
            if self.forged_every and n % self.forged_every == self.forged_every - 1:
                token = self._forged_maker(n) if self._forged_maker else self._forged[n % len(self._forged)]
                tally.record(True, *self._send(path, token))
                continue
            token = self.stack.token(sub=f"chaos-{n % 500}@clients", jti=uuid.uuid4().hex)
            tally.record(False, *self._send(path, token))

    def __enter__(self) -> Traffic:
        self.started = time.monotonic()
        sides = [(self.path, self.tally)] + ([(NATIVE_API, self.native)] if self.also_native else [])
        for path, tally in sides:
            counter = itertools.count()
            self._threads += [threading.Thread(target=self._run, args=(path, tally, counter), daemon=True)
                              for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
        self.elapsed = time.monotonic() - self.started


def forged_tokens(stack: Stack) -> list[str]:
    """Tokens nobody should get in with: wrong key under a real kid, alg none, HS256, a tampered payload."""
    idp = stack.idp
    assert idp is not None
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    real = stack.token(sub="victim@clients", pol="auth0-policy")
    head, payload, sig = real.split(".")
    tampered = ".".join([head, payload[:-4] + ("AAAA" if not payload.endswith("AAAA") else "BBBB"), sig])
    return [
        stack.token(sub="forger@clients", key=attacker, headers={"kid": idp.current_key.kid}),
        stack.token(sub="forger@clients", alg="none"),
        stack.token(sub="forger@clients", alg="HS256"),
        tampered,
    ]


def _row(name: str, fault: str, traffic: Traffic, **extra: Any) -> Row:
    tally, native = traffic.tally, traffic.native
    total = tally.valid + tally.forged + (native.valid + native.forged if traffic.also_native else 0)
    sides: dict[str, Any] = {}
    if traffic.also_native:
        sides = {"native_valid": native.valid, "native_valid_refused": native.valid_refused,
                 "native_forged": native.forged, "native_forged_let_in": native.forged_let_in,
                 "native_statuses": dict(native.statuses)}
    return Row(
        scenario=name, fault=fault, seconds=round(traffic.elapsed, 1),
        requests_per_second=round(total / traffic.elapsed, 1) if traffic.elapsed else 0.0,
        valid=tally.valid, valid_refused=tally.valid_refused, forged=tally.forged, forged_let_in=tally.forged_let_in,
        statuses=dict(tally.statuses), **sides, **extra,
    )


def _jwks_fault(stack: Stack, name: str, fault: str, seconds: float, breaks: Callable[[AuthZeroStandIn], None],
                mends: Callable[[AuthZeroStandIn], None], note: str = "") -> Row:
    """Plugin and native JWT side by side while the JWKS endpoint misbehaves for ``seconds``."""
    idp = stack.idp
    assert idp is not None
    fresh_keys(stack)
    before = idp.jwks_fetches_by(PLUGIN_AGENT), idp.jwks_fetches_by(GATEWAY_AGENT)
    with Traffic(stack, SUBJECT_API, also_native=True) as traffic:
        time.sleep(min(3.0, seconds / 4))
        broken = time.monotonic()
        breaks(idp)
        time.sleep(seconds)
        mended = time.monotonic()
        mends(idp)
        time.sleep(1.0)
    return _row(
        name, fault, traffic, note=note,
        jwks_fetches=idp.jwks_fetches_by(PLUGIN_AGENT) - before[0],
        native_jwks_fetches=idp.jwks_fetches_by(GATEWAY_AGENT) - before[1],
        latency_before=traffic.tally.latency(traffic.started, broken),
        latency_during=traffic.tally.latency(broken, mended),
        native_latency_before=traffic.native.latency(traffic.started, broken),
        native_latency_during=traffic.native.latency(broken, mended),
    )


def plugin_key_age(stack: Stack) -> float | None:
    """Seconds since the plugin last fetched its key set (its tyk_auth0_jwks_age_seconds), or None."""
    text = http_request("GET", stack.metrics_url + "/metrics").body.decode()
    ages = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("tyk_auth0_jwks_age_seconds{")]
    return max(ages) if ages else None


def fresh_keys(stack: Stack, timeout: float = 30.0) -> None:
    """Start a JWKS fault from freshly fetched keys on both sides, whatever the last fault left: after
    repeated failures the plugin's retry back-off reaches 30 s, so a fault that follows another could
    pass with no fetch of its own (a token with a kid the set lacks makes it refetch: its refetch
    interval bounds these, not the back-off), and native JWT may still hold a bad set it cached."""
    idp = stack.idp
    assert idp is not None
    probe = stack.token(sub="probe@clients", key=idp.unknown_key)
    end = time.monotonic() + timeout

    def native_passes() -> bool:
        token = stack.token(sub="probe@clients", jti=uuid.uuid4().hex)
        return http_request("GET", stack.url + NATIVE_API, headers={"Authorization": f"Bearer {token}"}).status == 200

    while (age := plugin_key_age(stack)) is None or age > JWKS_TTL / 2 or not native_passes():
        if time.monotonic() > end:
            raise RuntimeError(f"no fresh keys after {timeout:g} s (the plugin's are {age} s old)")
        http_request("GET", stack.url + SUBJECT_API, headers={"Authorization": f"Bearer {probe}"})
        time.sleep(MIN_REFETCH / 2)


def jwks_outage(stack: Stack, seconds: float) -> Row:
    return _jwks_fault(stack, "JWKS endpoint down", f"JWKS answers 503 for {seconds:.0f} s (key TTL {JWKS_TTL} s)",
                       seconds, lambda idp: idp.fail_jwks(503), lambda idp: idp.fail_jwks(None),
                       note="native JWT uses jwks.cache.timeout=5 here so its cache also expires inside the outage")


def jwks_html(stack: Stack, seconds: float) -> Row:
    return _jwks_fault(stack, "JWKS answers an HTML page", f"JWKS answers 200 with an HTML error page for {seconds:.0f} s",
                       seconds, lambda idp: idp.break_jwks("html"), lambda idp: idp.break_jwks(None))


def jwks_empty(stack: Stack, seconds: float) -> Row:
    return _jwks_fault(stack, "JWKS answers no keys", f'JWKS answers 200 with {{"keys": []}} for {seconds:.0f} s',
                       seconds, lambda idp: idp.break_jwks("empty"), lambda idp: idp.break_jwks(None))


def jwks_hang(stack: Stack, seconds: float) -> Row:
    return _jwks_fault(stack, "JWKS hangs", f"JWKS takes the request and drips a byte every {DRIP_EVERY:g} s for "
                       f"{seconds:.0f} s", seconds, lambda idp: idp.break_jwks("hang", drip_every=DRIP_EVERY),
                       lambda idp: idp.break_jwks(None),
                       note=f"the plugin cuts each fetch at {FETCH_DEADLINE:g} s (twice --jwks-timeout plus 1 s)")


def rotation(stack: Stack, seconds: float) -> Row:
    idp = stack.idp
    assert idp is not None
    before = idp.jwks_fetches_by(PLUGIN_AGENT)
    rotations = 3
    with Traffic(stack, SUBJECT_API) as traffic:
        for _ in range(rotations):
            time.sleep(seconds / (rotations + 1))
            idp.rotate()
        time.sleep(seconds / (rotations + 1))
    fetches = idp.jwks_fetches_by(PLUGIN_AGENT) - before
    bound = int(traffic.elapsed / MIN_REFETCH) + 1
    return _row("keys rotated", f"{rotations} rotations (next key becomes current)", traffic,
                jwks_fetches=fetches, jwks_fetch_bound=bound)


def unknown_kid_flood(stack: Stack, requests: int) -> Row:
    idp = stack.idp
    assert idp is not None
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    template = stack.token(sub="flood@clients", key=attacker)
    _, payload, sig = template.split(".")

    def random_kid_token(n: int) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": uuid.uuid4().hex}
        encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        return ".".join([encoded, payload, sig])

    before = idp.jwks_fetches_by(PLUGIN_AGENT)
    traffic = Traffic(stack, SUBJECT_API, workers=8, forged_every=1, forged_maker=random_kid_token)
    with traffic:
        while traffic.tally.forged < requests:
            time.sleep(0.05)
    fetches = idp.jwks_fetches_by(PLUGIN_AGENT) - before
    bound = int(traffic.elapsed / MIN_REFETCH) + 1
    return _row("unknown-kid flood", f"{traffic.tally.forged} requests, each with a new random kid", traffic,
                jwks_fetches=fetches, jwks_fetch_bound=bound)


def plugin_restart(stack: Stack, down_for: float) -> Row:
    resumed_after: list[float] = []
    with Traffic(stack, SUBJECT_API) as traffic:
        time.sleep(2.0)
        assert stack.plugin is not None
        stack.plugin.kill()
        time.sleep(down_for)
        restarted = time.monotonic()
        stack.start_plugin()
        while time.monotonic() - restarted < 30:
            token = stack.token(sub="probe@clients", jti=uuid.uuid4().hex)
            if http_request("GET", stack.url + SUBJECT_API, headers={"Authorization": f"Bearer {token}"}).status == 200:
                resumed_after.append(time.monotonic() - restarted)
                break
            time.sleep(0.05)
        time.sleep(2.0)
    resumed = f"{resumed_after[0]:.1f} s" if resumed_after else "not within 30 s"
    return _row("plugin killed and restarted", f"SIGKILL, down {down_for:.0f} s, restarted", traffic,
                note=f"service resumed {resumed} after the restart began; refusals while down are the "
                     f"gateway's 403 'Key not authorised'")


def redis_restart(stack: Stack, down_for: float) -> Row:
    assert stack.redis is not None
    with Traffic(stack, SUBJECT_API) as traffic:
        time.sleep(2.0)
        stack.redis.restart(down_for=down_for)
        time.sleep(3.0)
    refused = traffic.tally.valid_refused
    return _row("Redis restarted", f"Redis stopped {down_for:.0f} s, started empty", traffic,
                note=f"{refused} valid requests refused across the restart; Redis comes back empty and the gateway "
                     "rebuilds each session from the next verified token (quota counters restart)")


def chaos_stack(gateway_bin: Path | None = None, workdir: Path | None = None) -> Stack:
    return Stack(
        gateway_bin=gateway_bin, workdir=workdir,
        plugin_args=["--jwks-min-refetch-interval", str(MIN_REFETCH), "--jwks-timeout", str(JWKS_TIMEOUT)],
        config_overrides={"jwks_cache_ttl": JWKS_TTL},
        gateway_config={"jwks": {"cache": {"timeout": JWKS_TTL}}},
    )


def run_all(stack: Stack, quick: bool) -> list[Row]:
    outage = 12.0 if quick else 60.0
    fault = 12.0 if quick else 30.0
    return [
        jwks_outage(stack, outage),
        jwks_html(stack, fault),
        jwks_empty(stack, fault),
        jwks_hang(stack, fault),
        rotation(stack, 8.0 if quick else 20.0),
        unknown_kid_flood(stack, 1000 if quick else 10_000),
        plugin_restart(stack, 2.0),
        redis_restart(stack, 2.0),
    ]


JWKS_FAULTS = ("JWKS endpoint down", "JWKS answers an HTML page", "JWKS answers no keys", "JWKS hangs")


def _ms(before: Latency | None, during: Latency | None) -> str:
    if before is None or during is None:
        return ""
    return f"{before.p99_ms:g} → {during.p99_ms:g} (max {during.max_ms:g})"


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | fault | load held | valid refused | forged let in | native JWT valid refused "
        "| native JWT forged let in | JWKS fetches: plugin (bound); gateway | valid p99 ms before → during fault: plugin; native |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fetches = "" if r.jwks_fetches is None else str(r.jwks_fetches)
        if r.jwks_fetch_bound is not None:
            fetches += f" (<= {r.jwks_fetch_bound})"
        if r.native_jwks_fetches is not None:
            fetches += f"; {r.native_jwks_fetches}"
        native = "" if r.native_valid_refused is None else f"{r.native_valid_refused} of {r.native_valid}"
        native_forged = "" if r.native_forged_let_in is None else f"{r.native_forged_let_in} of {r.native_forged}"
        latency = ""
        if r.latency_before is not None:
            latency = (f"{_ms(r.latency_before, r.latency_during)}; "
                       f"{_ms(r.native_latency_before, r.native_latency_during)}")
        lines.append(f"| {r.scenario} | {r.fault} | {r.requests_per_second} req/s for {r.seconds} s "
                     f"| {r.valid_refused} of {r.valid} | {r.forged_let_in} of {r.forged} | {native} | {native_forged} "
                     f"| {fetches} | {latency} |")
    return "\n".join(lines)


def failures(rows: list[Row]) -> list[str]:
    """What the plugin must never do, by scenario: let a forged token in, refuse a valid one while the
    JWKS misbehaves or keys rotate, fetch beyond the bound, or hold a request on a hung fetch."""
    found = []
    for r in rows:
        if r.forged_let_in:
            found.append(f"{r.scenario}: {r.forged_let_in} forged let in")
        if r.scenario in (*JWKS_FAULTS, "keys rotated") and r.valid_refused:
            found.append(f"{r.scenario}: {r.valid_refused} valid refused")
        if r.jwks_fetches is not None and r.jwks_fetch_bound is not None and r.jwks_fetches > r.jwks_fetch_bound:
            found.append(f"{r.scenario}: {r.jwks_fetches} JWKS fetches, bound {r.jwks_fetch_bound}")
        if r.latency_during is not None and r.latency_during.max_ms > FETCH_DEADLINE * 1000:
            found.append(f"{r.scenario}: a valid request took {r.latency_during.max_ms:g} ms")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short faults (about a minute in all)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    with chaos_stack() as stack:
        rows = run_all(stack, args.quick)
    print(table(rows))
    for r in rows:
        if r.note:
            print(f"- {r.scenario}: {r.note}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    bad = failures(rows)
    for problem in bad:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
