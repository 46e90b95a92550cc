"""A tenant on a real loopback socket: discovery and JWKS at Auth0's paths, with rotation, delay and failure switches."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.tokens import SigningKey, jwks


class JwksServer:
    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.delay = 0.0
        self.hold: threading.Event | None = None  # while set and not yet released, every JWKS fetch waits
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    self._send(200, json.dumps({"issuer": owner.base + "/", "jwks_uri": owner.url}).encode())
                    return
                if self.path != "/.well-known/jwks.json":
                    self._send(404, b"{}")
                    return
                owner.fetches += 1
                if owner.hold is not None:
                    owner.hold.wait(timeout=30)
                if owner.delay:
                    time.sleep(owner.delay)
                body = json.dumps(jwks(*owner.keys)).encode() if owner.status == 200 else b"{}"
                self._send(owner.status, body)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
