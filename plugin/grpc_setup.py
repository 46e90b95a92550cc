"""gRPC core settings that only take effect if they are in place before ``import grpc``."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping

EXPERIMENTS_ENV = "GRPC_EXPERIMENTS"
CLASSIC_LISTENER = "-event_engine_listener"


def prefer_classic_listener(environ: MutableMapping[str, str]) -> bool:
    """Serve accepted connections with gRPC core's classic listener, unless the operator chose.

    grpcio 1.85 hands accepted connections to its newer EventEngine listener by default. For
    this server's traffic (one HTTP/2 connection from the gateway carrying many small unary
    calls) the classic listener costs about a fifth less CPU per call, for the echo servicer and
    the auth check alike (docs/benchmarks.md). An operator who sets ``GRPC_EXPERIMENTS`` keeps
    exactly what they set. Returns whether the setting was applied.
    """
    if EXPERIMENTS_ENV in environ or "grpc" in sys.modules:
        return False
    environ[EXPERIMENTS_ENV] = CLASSIC_LISTENER
    return True
