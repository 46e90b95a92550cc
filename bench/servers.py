"""Ceilings on the plugin's own server stack: servicers that do no auth work at all.

Each is ``plugin.server.PluginServer`` (same grpc.server, thread pool, options, health
service, logging, and the gRPC core settings ``serve`` starts with) with only the hook
router swapped:

  echo   answers every call with the received Object, untouched: plugin ÷ echo isolates
         what the auth check costs at the plugin level
  stub   answers every auth call with one fixed session for ``--policy`` (no token is
         read): behind a real gateway it is what any auth plugin on this stack could reach,
         so plugin ÷ stub isolates the check and stub ÷ native JWT the gateway's coprocess path

    python -m bench.servers echo --listen tcp://127.0.0.1:PORT [--threads N]
    python -m bench.servers stub --listen tcp://127.0.0.1:PORT --policy ID [--pin-workers]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import threading
from collections.abc import Iterable
from typing import Any

from plugin.grpc_setup import prefer_classic_listener


def echo_router(auth_hooks: Iterable[str]) -> Any:
    """A HookRouter whose every call is answered with the received Object, untouched."""
    from plugin.hooks import HookRouter

    class EchoRouter(HookRouter):
        def dispatch(self, obj: Any) -> Any:
            return obj

    return EchoRouter(auth_hooks, lambda _obj: None)


STUB_SESSION_KEY = "bench-stub-session"


def stub_router(auth_hooks: Iterable[str], policy_id: str) -> Any:
    """A HookRouter whose auth check grants one fixed session, shaped like the plugin's, without work."""
    from plugin.coprocess import SessionState
    from plugin.hooks import HookRouter

    session = SessionState(alias="bench-stub", apply_policies=[policy_id],
                           metadata={"TykJWTSessionID": STUB_SESSION_KEY}).SerializeToString()

    def grant(obj: Any) -> None:
        obj.session.ParseFromString(session)
        obj.metadata["token"] = STUB_SESSION_KEY

    return HookRouter(auth_hooks, grant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("mode", choices=["echo", "stub"])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--policy", default="", help="stub: the policy id its session applies")
    parser.add_argument("--metrics-listen", default="", help="accepted as serve does; no metrics are served")
    parser.add_argument("--pin-workers", action="store_true", help="as serve: hold the process to one core")
    parser.add_argument("--threads", type=int, default=None, help="default: serve's")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    prefer_classic_listener(os.environ)  # as plugin.cli does for serve, before grpc is imported
    from plugin import logs
    from plugin.server import PluginServer, ServerSettings, build_app
    from plugin.workers import pin_this_process

    logs.setup(args.log_level)
    pin_this_process(os.environ, args.pin_workers)
    settings = ServerSettings(listen=args.listen, threads=args.threads or ServerSettings.threads)
    app = build_app(settings)
    if args.mode == "stub" and not args.policy:
        parser.error("stub needs --policy")
    router = (echo_router(app.router.auth_hooks) if args.mode == "echo"
              else stub_router(app.router.auth_hooks, args.policy))
    server = PluginServer(settings, app=dataclasses.replace(app, router=router))
    server.start()

    def on_signal(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.stop, args=(1.0,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
