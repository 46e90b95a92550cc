"""Command line: one entry point, one subcommand per job (serve, bundle, check, migrate, stack)."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from plugin.grpc_setup import prefer_classic_listener


def bounded(convert: Callable[[str], Any], minimum: float, env: str, above: bool = False,
            maximum: float | None = None) -> Callable[[str], Any]:
    """An argparse type for a finite number past ``minimum`` (and at most ``maximum``); its error
    names the flag's variable too."""
    bound = f"> {minimum:g}" if above else f">= {minimum:g}"
    if maximum is not None:
        bound += f" and <= {maximum:g}"
    kind = "a whole number" if convert is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = convert(text.strip())
            finite = math.isfinite(value)
        except (ValueError, OverflowError):
            value, finite = None, False
        if (value is None or not finite or not (value > minimum if above else value >= minimum)
                or (maximum is not None and value > maximum)):
            raise argparse.ArgumentTypeError(f"expected {kind} {bound} (from the flag or {env}), got {text!r}")
        return value

    return parse


def is_port(text: str) -> bool:
    """A TCP port written in ASCII digits (str.isdigit() also admits "²", which int() refuses)."""
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535


def build_parser() -> argparse.ArgumentParser:
    from plugin import bundle, check, migrate, server
    from plugin.devstack import stack

    parser = argparse.ArgumentParser(
        prog="tyk-auth0-plugin",
        description="gRPC auth plugin for the Tyk gateway that verifies Auth0 access tokens.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server.add_cli(sub)
    bundle.add_cli(sub)
    check.add_cli(sub)
    migrate.add_cli(sub)
    stack.add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A reload (SIGHUP) that came before serve sets its handler would kill the process: it is held
    # until then (serve releases it); every other command gets the usual hang-up at once.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        prefer_classic_listener(os.environ)  # before build_parser() first imports grpc; workers inherit it
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command != "serve":
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


if __name__ == "__main__":
    sys.exit(main())
