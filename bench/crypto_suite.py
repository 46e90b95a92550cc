"""Crypto floor and the cold path taken apart, in-process (no gRPC), interleaved repetitions.

The RSA-2048 PKCS1v15-SHA256 verify rate is the physical floor of a signature check. Next
to it, each layer of the plugin's cold path is timed on the same token so the report can
say how much of a verified call is RSA and how much is everything else, and a cProfile of
each path names the functions that cost the most.
"""

from __future__ import annotations

import cProfile
import io
import logging
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bench.load import median
from bench.payloads import api_config, forged_token, request_object, rsa_token
from plugin import tokens as tokenlib
from plugin.auth import Authenticator, ConfigStore
from plugin.config import parse_config_data
from plugin.coprocess import Object
from plugin.hooks import HookRouter
from plugin.jwks import JwksCache, JwksSettings
from plugin.verify import Verifier
from tests.support.objects import AUTH_HOOK
from tests.support.tokens import FakeJwks, rsa_key

JWKS_URL = "https://tenant.example.auth0.com/.well-known/jwks.json"


def ops_per_second(fn: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``fn`` over a loop of about ``seconds`` (batch size calibrated first)."""
    batch = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds / 10 or batch >= 1 << 22:
            break
        batch *= 2
    done, t0 = 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        done += batch
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return done / elapsed


def profile(fn: Callable[[], Any], calls: int, top: int = 12) -> list[dict[str, Any]]:
    """The ``top`` functions by own time, per call of ``fn``."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.split("/site-packages/")[-1].split("/work/main/")[-1]
        rows.append({"function": f"{where}:{line}({name})", "calls_per_call": ncalls / calls,
                     "own_us": tottime / calls * 1e6, "cum_us": cumtime / calls * 1e6})
    rows.sort(key=lambda r: r["own_us"], reverse=True)
    return rows[:top]


def run_crypto_suite(workdir: Path, seconds: float = 0.25, reps: int = 5,
                     progress: Callable[[str], None] = lambda line: None, profile_calls: int = 3000) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    key = rsa_key("rG3sWqY0aVn8o2uN1kLw4e")
    stranger = rsa_key("kEwYq0pV4sN7mT2zR9bL6d")
    config_raw = api_config(JWKS_URL)
    config = parse_config_data(config_raw, {})
    raw = rsa_token(key)
    parsed = tokenlib.parse(raw)
    signature = tokenlib.decode_segment(parsed.signature_b64)
    public = key.public

    jwks = JwksCache(JwksSettings(), fetcher=FakeJwks(keys=[key]))
    verifier = Verifier(jwks)
    cold = Authenticator(verifier, ConfigStore(defaults={}), cache_size=0)
    warm = Authenticator(verifier, ConfigStore(defaults={}))
    router = HookRouter(AUTH_HOOK, cold.authenticate)

    # Denials log one INFO line each, as the server does (to stderr there; to a file here).
    handler = logging.FileHandler(workdir / "crypto-denials.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)

    valid = request_object(raw, config_raw)
    unknown = request_object(rsa_token(stranger), config_raw)
    forged = request_object(forged_token(key, stranger), config_raw)
    wire = valid.SerializeToString()
    warm.authenticate(Object.FromString(wire))
    granted = Object.FromString(wire)
    cold.authenticate(granted)
    reply_wire = granted.SerializeToString()

    def dispatch(obj: Object) -> Callable[[], Any]:
        data = obj.SerializeToString()  # each call gets a fresh Object, as from the wire
        return lambda: router.dispatch(Object.FromString(data))

    def authenticate(auth: Authenticator) -> Callable[[], Any]:
        obj = Object.FromString(wire)

        def call() -> None:
            obj.ClearField("session")  # a request arrives without one; keep the object as received
            obj.ClearField("metadata")
            auth.authenticate(obj)
        return call

    cases: dict[str, Callable[[], Any]] = {
        "rsa2048_verify": lambda: public.verify(signature, parsed.signing_input, padding.PKCS1v15(), hashes.SHA256()),
        "token_parse": lambda: tokenlib.parse(raw),
        "verifier_verify": lambda: verifier.verify(raw, config),
        "authenticate_cold": authenticate(cold),
        "authenticate_warm": authenticate(warm),
        "object_parse_and_reply": lambda: (Object.FromString(wire), granted.SerializeToString()),
        "dispatch_cold": dispatch(valid),
        "dispatch_unknown_kid": dispatch(unknown),
        "dispatch_bad_sig": dispatch(forged),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for rep in range(reps):
            for name, fn in cases.items():
                samples[name].append(ops_per_second(fn, seconds))
            progress(f"crypto: rep {rep + 1}/{reps} RSA verify {samples['rsa2048_verify'][-1]:9,.0f}/s, "
                     f"cold authenticate {samples['authenticate_cold'][-1]:7,.0f}/s")
        profiles = {
            name: profile(cases[name], profile_calls)
            for name in ("authenticate_cold", "dispatch_unknown_kid", "dispatch_bad_sig")
        }
    finally:
        root.handlers[:], root.level = saved
        handler.close()
    results = {}
    for name, values in samples.items():
        rate = median(values)
        results[name] = {"ops_per_s": rate, "us_per_op": 1e6 / rate, "range": [min(values), max(values)]}
    return {
        "available": True,
        "cases": results,
        "profiles": profiles,
        "reps": reps,
        "seconds_per_sample": seconds,
        "token_bytes": len(raw),
        "reply_bytes": len(reply_wire),
    }
