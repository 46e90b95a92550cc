"""Memory: peak RSS of one plugin server process after N distinct valid tokens went through it.

A million distinct tokens cannot go through h2load (one body per run), so a child process
builds the real server (``PluginServer``, started on a loopback port, default settings
including the 100,000-entry verified-token cache) and feeds its hook router directly. Tokens
are HS256 (``jwt_signing_method: hmac``) because distinct tokens need distinct signatures and
RSA signing costs ~1 ms each; what the server keeps per token (cache entry, session) does not
depend on the algorithm. Tokens are minted on the fly so they never sit in the measured process.

    python -m bench.memory --tokens N      (prints one JSON line)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.payloads import EXTRA_HEADERS, Hs256Minter
from plugin.coprocess import Object
from plugin.server import PluginServer, ServerSettings
from tests.support.objects import auth_object


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(tokens: int, samples: int = 20) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    settings = ServerSettings(listen="tcp://127.0.0.1:0")
    server = PluginServer(settings)
    server.start()
    try:
        minter = Hs256Minter(os.urandom(32))
        template = auth_object("Bearer x", config=minter.config())
        template.request.headers.update(EXTRA_HEADERS)
        router = server.app.router
        baseline = status_mb("VmRSS")
        curve: list[tuple[int, float]] = [(0, baseline)]
        every = max(1, tokens // samples)
        refused = 0
        started = time.perf_counter()
        for n in range(1, tokens + 1):
            obj = Object()
            obj.CopyFrom(template)
            obj.request.headers["Authorization"] = "Bearer " + minter.token(n)
            reply = router.dispatch(obj)
            if reply.request.return_overrides.response_code not in (-1, 0):
                refused += 1
            if n % every == 0:
                curve.append((n, status_mb("VmRSS")))
                if len(curve) % 4 == 1:
                    print(f"memory: {n:,}/{tokens:,} tokens, RSS {curve[-1][1]:.0f} MB", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - started
        auth = server.app.authenticator
        cache = settings.token_cache_size
        # RSS per distinct token while the cache fills, and where a full cache lands.
        filling = [(n, rss) for n, rss in curve if 0 < n <= cache]
        per_token_kb = (filling[-1][1] - baseline) * 1024 / filling[-1][0] if filling else float("nan")
        return {
            "tokens": tokens,
            "refused": refused,
            "cache_size_setting": settings.token_cache_size,
            "misses": auth.misses,
            "hits": auth.hits,
            "baseline_rss_mb": baseline,
            "peak_rss_mb": status_mb("VmHWM"),
            "final_rss_mb": status_mb("VmRSS"),
            "kb_per_cached_token": per_token_kb,
            "projected_full_cache_mb": baseline + per_token_kb * cache / 1024,
            "curve": curve,
            "seconds": elapsed,
            "tokens_per_s": tokens / elapsed,
            "algorithm": "HS256",
        }
    finally:
        server.stop(0)


def run_memory_suite(tokens: int, progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run the measurement in a fresh child process, so nothing else lives in the measured heap."""
    from bench.procs import REPO_ROOT

    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bench.memory", "--tokens", str(tokens)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        errors: list[str] = []
        for line in proc.stderr:
            if line.startswith("memory: "):
                progress(line.rstrip())
            else:
                errors.append(line)
        out = proc.stdout.read()
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        raise RuntimeError(f"memory child exited {code}:\n{''.join(errors[-30:])}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["available"] = True
    result["note"] = ("HS256 tokens (jwt_signing_method hmac) so a million distinct tokens are cheap to mint; "
                      "the server keeps the same per-token state as for RS256")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--tokens", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.tokens)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
