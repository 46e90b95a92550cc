"""An httpbin-like echo upstream, so tests can see exactly what the gateway forwarded."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
import urllib.parse
from typing import Any

from plugin.devstack.procs import LOOPBACK, BackgroundHTTPServer, QuietHandler, serve_until_signal

MAX_DELAY = 10.0


class _Handler(QuietHandler):
    server_version = "echo-upstream"

    def _echo(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        segments = [s for s in path.split("/") if s]
        head = segments[0] if segments else ""

        if head == "status" and len(segments) == 2 and segments[1].isascii() and segments[1].isdigit() and len(segments[1]) <= 3:
            code = int(segments[1])
            self.read_body()
            if not 200 <= code <= 599:
                self.send_json(400, {"error": "status must be 200-599"})
            else:
                self.send_bytes(code, b"" if code in (204, 304) else b"{}\n")
            return
        if head == "delay" and len(segments) == 2:
            with contextlib.suppress(ValueError):
                time.sleep(min(MAX_DELAY, max(0.0, float(segments[1]))))
        elif head not in ("anything", "get", "post", "put", "patch", "delete", "headers", "ip", "delay"):
            self.read_body()
            self.send_json(404, {"error": "not found", "path": path})
            return
        elif head in ("get", "post", "put", "patch", "delete") and (self.command != head.upper() or len(segments) > 1):
            self.read_body()
            self.send_json(405, {"error": "method not allowed", "method": self.command, "path": path})
            return

        raw = self.read_body()
        headers = {k: v for k, v in self.headers.items()}
        if head == "headers":
            self.send_json(200, {"headers": headers})
            return
        if head == "ip":
            self.send_json(200, {"origin": self.client_address[0]})
            return
        self.send_json(200, self._describe(parts, raw, headers))

    def _describe(self, parts: urllib.parse.SplitResult, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
        multi = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        args = {key: values[0] if len(values) == 1 else values for key, values in multi.items()}
        text = raw.decode("utf-8", "replace")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        form: dict[str, str] = {}
        parsed_json: Any = None
        if ctype == "application/x-www-form-urlencoded":
            form = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
        elif raw:
            try:
                parsed_json = json.loads(raw)
            except ValueError:
                parsed_json = None
        host = self.headers.get("Host") or LOOPBACK
        return {
            "args": args,
            "data": text,
            "form": form,
            "headers": headers,
            "json": parsed_json,
            "method": self.command,
            "origin": self.client_address[0],
            "path": parts.path,
            "url": f"http://{host}{self.path}",
        }

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _echo  # noqa: N815 - http.server's naming


class EchoUpstream(BackgroundHTTPServer):
    """``/anything``, ``/get``, ``/headers``, ``/status/N``... answered with a JSON echo."""

    handler_class = _Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin.devstack.upstream")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACK_UPSTREAM_PORT", "0")))
    args = parser.parse_args(argv)
    upstream = EchoUpstream(args.host, args.port).start()
    return serve_until_signal(upstream.stop, banner=f"echo upstream on {upstream.url} (Ctrl-C to stop)")


if __name__ == "__main__":
    raise SystemExit(main())
