"""stderr logging, one line per event. Callers log reasons and ids, never tokens or key material."""

from __future__ import annotations

import json
import logging
import os
import sys
import time


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


def setup(level: str = "INFO", json_format: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    worker = os.environ.get("TYK_AUTH0_WORKER", "")  # set by the --workers supervisor for each child
    if json_format:
        handler.setFormatter(JsonFormatter(worker))
    else:
        tag = f" [{worker}]" if worker else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s"))
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
