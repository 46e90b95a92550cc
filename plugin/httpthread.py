"""An HTTP server on a daemon thread, started and stopped one way for every server the project runs.

The metrics endpoint and the development stack's servers (IdP stand-in, upstream, bundle
server) all need the same lifecycle: serve from a daemon thread so a stuck client never
keeps the process alive, and on stop shut down, close the socket and join the thread.
"""

from __future__ import annotations

import threading
from http.server import HTTPServer


class ServerThread:
    """Owns one started server and the daemon thread serving it."""

    def __init__(self, httpd: HTTPServer, name: str, poll_interval: float = 0.5) -> None:
        self.httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                        name=name, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def stop(self, timeout: float) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout)
