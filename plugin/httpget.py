"""A bounded HTTP GET: every fetch the plugin makes of its own (JWKS, the gateway's policy list) ends
by a deadline, however the other end behaves.

A socket timeout bounds each wait, not the whole exchange: an endpoint that drips its headers or
its body a byte at a time would hold the calling thread forever. Here the connection is cut at
the deadline by a watchdog, and the body must be complete within one ``timeout`` of the headers.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any


def deadline(timeout: float) -> float:
    """A fetch's whole time: its connect, its headers and its body may each take ``timeout``."""
    return timeout * 2 + 1


class Incomplete(Exception):
    """The response did not arrive whole in time, or was larger than allowed; the message is safe to log."""


_WATCH = threading.local()  # the deadline of the fetch this thread runs, its watchdogs and their sockets


def _connect_watched(address: tuple[str, int], timeout: Any,
                     source_address: Any = None) -> socket.socket:
    """socket.create_connection, with a watchdog that cuts the socket at the fetch's deadline.

    The watchdog holds a duplicate of the socket: TLS detaches the socket it wraps, and a shutdown
    through the duplicate still ends the connection (and a handshake in progress)."""
    sock = socket.create_connection(address, timeout, source_address)
    cut_at = getattr(_WATCH, "deadline", None)
    if cut_at is not None:
        try:
            handle = sock.dup()
        except OSError:
            sock.close()
            raise
        _WATCH.handles.append(handle)
        watchdog = threading.Timer(max(cut_at - time.monotonic(), 0.0), _cut, args=(handle, _WATCH.cut))
        watchdog.daemon = True
        _WATCH.watchdogs.append(watchdog)
        try:
            watchdog.start()
        except RuntimeError:  # no thread to be had: the fetch fails, and leaves no socket open
            sock.close()
            raise
    return sock


def _cut(sock: socket.socket, cut: list[bool]) -> None:
    cut.append(True)  # what was read may look whole (a header line ended by the cut): it is not kept
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(connection: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
    class Watched(connection):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = _connect_watched

    return Watched


_WATCHED = {plain: _watched(plain) for plain in (http.client.HTTPConnection, http.client.HTTPSConnection)}


class _HTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_WATCHED.get(http_class, http_class), req, **kwargs)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_WATCHED.get(http_class, http_class), req, **kwargs)


def build_opener(*handlers: urllib.request.BaseHandler | type[urllib.request.BaseHandler],
                 context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """urllib's opener (proxy settings from the environment, as usual) whose connections ``get`` can
    cut; ``context`` replaces the default TLS settings."""
    return urllib.request.build_opener(*handlers, _HTTPHandler, _HTTPSHandler(context=context))


def get(opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float,
        max_bytes: int) -> bytes:
    """The body of ``request``, at most ``max_bytes`` of it, within ``deadline(timeout)`` (the name
    lookup aside, which urllib cannot interrupt). urllib's own errors pass through; a response cut
    at the deadline, late or too large raises ``Incomplete``."""
    overall = deadline(timeout)
    _WATCH.deadline, _WATCH.watchdogs, _WATCH.handles, _WATCH.cut = time.monotonic() + overall, [], [], []
    cut: list[bool] = _WATCH.cut
    body = b""
    try:
        with opener.open(request, timeout=timeout) as response:
            body = _read_until(response, time.monotonic() + timeout, max_bytes + 1)
    except Exception:
        if not cut:
            raise
    finally:
        for watchdog in _WATCH.watchdogs:
            watchdog.cancel()
        for watchdog in _WATCH.watchdogs:
            if watchdog.ident is not None:
                watchdog.join()  # a cut under way ends before its socket is closed (and its number reused)
        for handle in _WATCH.handles:
            handle.close()
        _WATCH.deadline = None
    if cut:  # whatever the cut made of it
        raise Incomplete(f"not complete within {overall:g} s")
    if len(body) > max_bytes:
        raise Incomplete(f"response larger than {max_bytes} bytes")
    return body


def _read_until(response: http.client.HTTPResponse, ends: float, limit: int) -> bytes:
    """Read at most ``limit`` bytes, one socket read at a time, giving up if more is still to come
    once ``ends`` has passed (a body complete by then is kept, however late its end is seen)."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = response.read1(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if time.monotonic() > ends and not response.isclosed() and size < limit:
            raise Incomplete("response not complete within the fetch timeout")
    return b"".join(parts)
