"""Faults injected into the real stack while traffic flows: what is lost, and whether anyone gets in.

``python -m plugin.devstack.chaos [--quick]`` starts its own stack (Redis, the Auth0 stand-in, the
plugin, Tyk) and prints one row per scenario: the load held, the fault, valid requests refused, and
forged tokens let in. Every scenario is bounded in time and stops its own traffic.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from plugin.devstack import gateway as gw
from plugin.devstack.procs import http_request
from plugin.devstack.stack import Stack

PLUGIN_AGENT = "tyk-auth0-plugin"
SUBJECT_API = f"/{gw.PLUGIN_SUBJECT_API_ID}/get"  # no ID extractor: the plugin sees every request
NATIVE_API = f"/{gw.NATIVE_API_ID}/get"
MIN_REFETCH = 2.0  # the plugin's --jwks-min-refetch-interval in these runs
JWKS_TTL = 5  # jwks_cache_ttl (plugin) and jwks.cache.timeout (gateway): refreshes fall inside the faults


@dataclass
class Tally:
    valid: int = 0
    valid_refused: int = 0
    forged: int = 0
    forged_let_in: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, forged: bool, status: int, body: bytes) -> None:
        with self.lock:
            label = f"{'forged' if forged else 'valid'} {status}"
            if status != 200:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    label += " " + json.loads(body)["error"]
            self.statuses[label] += 1
            if forged:
                self.forged += 1
                self.forged_let_in += status == 200
            else:
                self.valid += 1
                self.valid_refused += status != 200


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
    native_valid_refused: int | None = None
    jwks_fetches: int | None = None
    jwks_fetch_bound: int | None = None
    note: str = ""
    statuses: dict[str, int] = field(default_factory=dict)


class Traffic:
    """Worker threads sending fresh valid tokens, with every tenth request a forged one."""

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
        self._counter = itertools.count()
        self._forged = forged_tokens(stack)
        self._forged_maker = forged_maker

    def _send(self, path: str, token: str) -> tuple[int, bytes]:
        result = http_request("GET", self.stack.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        return result.status, result.body

    def _run(self) -> None:
        while not self._stop.is_set():
            n = next(self._counter)
            if self.forged_every and n % self.forged_every == self.forged_every - 1:
                token = self._forged_maker(n) if self._forged_maker else self._forged[n % len(self._forged)]
                self.tally.record(True, *self._send(self.path, token))
                continue
            token = self.stack.token(sub=f"chaos-{n % 500}@clients", jti=uuid.uuid4().hex)
            self.tally.record(False, *self._send(self.path, token))
            if self.also_native:
                self.native.record(False, *self._send(NATIVE_API, token))

    def __enter__(self) -> Traffic:
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
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
        stack.token(sub="forger@clients", key=attacker),
        stack.token(sub="forger@clients", alg="none"),
        stack.token(sub="forger@clients", alg="HS256"),
        tampered,
    ]


def _row(name: str, fault: str, traffic: Traffic, **extra: Any) -> Row:
    tally = traffic.tally
    total = tally.valid + tally.forged + (traffic.native.valid if traffic.also_native else 0)
    return Row(
        scenario=name, fault=fault, seconds=round(traffic.elapsed, 1),
        requests_per_second=round(total / traffic.elapsed, 1) if traffic.elapsed else 0.0,
        valid=tally.valid, valid_refused=tally.valid_refused, forged=tally.forged, forged_let_in=tally.forged_let_in,
        native_valid_refused=traffic.native.valid_refused if traffic.also_native else None,
        statuses=dict(tally.statuses), **extra,
    )


def jwks_outage(stack: Stack, seconds: float) -> Row:
    idp = stack.idp
    assert idp is not None
    with Traffic(stack, SUBJECT_API, also_native=True) as traffic:
        time.sleep(min(3.0, seconds / 4))
        idp.fail_jwks(503)
        time.sleep(seconds)
        idp.fail_jwks(None)
        time.sleep(1.0)
    return _row("JWKS endpoint down", f"JWKS answers 503 for {seconds:.0f} s (key TTL {JWKS_TTL} s)", traffic,
                note="native JWT uses jwks.cache.timeout=5 here so its cache also expires inside the outage")


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
        plugin_args=["--jwks-min-refetch-interval", str(MIN_REFETCH)],
        config_overrides={"jwks_cache_ttl": JWKS_TTL},
        gateway_config={"jwks": {"cache": {"timeout": JWKS_TTL}}},
    )


def run_all(stack: Stack, quick: bool) -> list[Row]:
    outage = 12.0 if quick else 60.0
    return [
        jwks_outage(stack, outage),
        rotation(stack, 8.0 if quick else 20.0),
        unknown_kid_flood(stack, 1000 if quick else 10_000),
        plugin_restart(stack, 2.0),
        redis_restart(stack, 2.0),
    ]


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | fault | load held | valid refused | forged let in | native JWT valid refused | JWKS fetches (bound) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fetches = f"{r.jwks_fetches} (<= {r.jwks_fetch_bound})" if r.jwks_fetches is not None else ""
        native = "" if r.native_valid_refused is None else str(r.native_valid_refused)
        lines.append(f"| {r.scenario} | {r.fault} | {r.requests_per_second} req/s for {r.seconds} s "
                     f"| {r.valid_refused} of {r.valid} | {r.forged_let_in} of {r.forged} | {native} | {fetches} |")
    return "\n".join(lines)


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
    bad = [r for r in rows if r.forged_let_in or (r.scenario in ("JWKS endpoint down", "keys rotated") and r.valid_refused)
           or (r.jwks_fetches is not None and r.jwks_fetch_bound is not None and r.jwks_fetches > r.jwks_fetch_bound)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
