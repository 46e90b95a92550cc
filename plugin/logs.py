"""stderr logging, one line per event. Callers log reasons and ids, never tokens or key material."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from collections.abc import Callable
from types import TracebackType


class JsonFormatter(logging.Formatter):
    def __init__(self, worker: str = "") -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.worker:
            entry["worker"] = self.worker
        if record.exc_info:
            entry["exc"] = record.exc_info[0].__name__ if record.exc_info[0] else "?"
        return json.dumps(entry, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """The plain format; a logged exception shows its frames and class but never its message,
    which may quote a header, a URL with credentials or a token."""

    def formatException(self, ei: tuple[type[BaseException], BaseException, TracebackType | None]  # noqa: N802
                        | tuple[None, None, None]) -> str:
        return frames(ei[1]) if ei[1] is not None else ""


def frames(exc: BaseException) -> str:
    """A traceback without the exception's message."""
    listed = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    return f"Traceback (most recent call last):\n{listed}{type(exc).__name__} (message not logged)"


def shown_url(url: str) -> str:
    """A URL fit for logs and metric labels: a user:password@ part and the query string are masked."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    if parts.query:
        parts = parts._replace(query="***")
    return urllib.parse.urlunsplit(parts)


def setup(level: str = "INFO", json_format: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    worker = os.environ.get("TYK_AUTH0_WORKER", "")  # set by the --workers supervisor for each child
    if json_format:
        handler.setFormatter(JsonFormatter(worker))
    else:
        tag = f" [{worker}]" if worker else ""
        handler.setFormatter(TextFormatter(f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def exception_site(exc: BaseException) -> str:
    """``file.py:line`` where ``exc`` was raised: enough to find a bug, with no request data in it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"


class SummedLog:
    """One line per interval summing events by their fields, the first one at once.

    A line per event would let a flood (forged tokens, junk bytes) cost as much in logging as in
    answering it. The owner flushes every second too, so a burst followed by silence is reported.
    """

    def __init__(self, logger: logging.Logger, level: int, title: str, note: str = "", interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.level, self.title, self.note = logger, level, title, note
        self.interval = interval
        self._clock = clock
        self._counts: Counter[tuple[tuple[str, object], ...]] = Counter()
        self._lock = threading.Lock()
        self._since = float("-inf")

    def add(self, *fields: tuple[str, object]) -> None:
        with self._lock:
            self._counts[fields] += 1
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Write the pending sums once the interval has passed (or now, with ``force``)."""
        now = self._clock()
        with self._lock:
            if not self._counts or (not force and now - self._since < self.interval):
                return
            counts, self._counts, since, self._since = self._counts, Counter(), self._since, now
        summary = " ".join(" ".join(f"{name}={value}" for name, value in fields) + f" count={n}"
                           for fields, n in counts.most_common())
        window = f"in the last {now - since:.0f} s" if since != float("-inf") else "(first)"
        self.logger.log(self.level, "%s %s: %s%s", self.title, window, summary, self.note)
