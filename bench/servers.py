"""The echo ceiling: a Dispatcher that returns the request, on the plugin's own server stack.

It is ``plugin.server.PluginServer`` (same grpc.server, thread pool, options, health
service, logging, and the gRPC core settings ``serve`` starts with) with only the hook
router swapped for one that does nothing, so the ratio plugin ÷ echo isolates what the
auth check costs.

    python -m bench.servers echo --listen tcp://127.0.0.1:PORT [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import threading
from typing import Any

from plugin.grpc_setup import prefer_classic_listener


def echo_router(auth_hook: str) -> Any:
    """A HookRouter whose every call is answered with the received Object, untouched."""
    from plugin.hooks import HookRouter

    class EchoRouter(HookRouter):
        def dispatch(self, obj: Any) -> Any:
            return obj

    return EchoRouter(auth_hook, lambda _obj: None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("mode", choices=["echo"])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--threads", type=int, default=None, help="default: serve's")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    prefer_classic_listener(os.environ)  # as plugin.cli does for serve, before grpc is imported
    from plugin import logs
    from plugin.server import PluginServer, ServerSettings, build_app

    logs.setup(args.log_level)
    settings = ServerSettings(listen=args.listen, threads=args.threads or ServerSettings.threads)
    app = build_app(settings)
    server = PluginServer(settings, app=dataclasses.replace(app, router=echo_router(app.router.auth_hook)))
    server.start()

    def on_signal(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.stop, args=(1.0,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
