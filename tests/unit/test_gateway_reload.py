"""The devstack's gateway reload waits as long as the gateway takes to reload."""

from __future__ import annotations

from typing import Any

from plugin.devstack import gateway as gw
from plugin.devstack.procs import HTTPResult


def test_a_blocking_reload_is_waited_for_as_long_as_the_reload_timeout(tmp_path, monkeypatch):
    # A reload that downloads a bundle the server lacks takes up to 11 s (5 tries), more than one
    # request's default 10 s.
    waited: dict[str, float] = {}

    def answered(method: str, url: str, *, timeout: float = 10.0, **kwargs: Any) -> HTTPResult:
        waited[url.partition("/tyk/")[2]] = timeout
        return HTTPResult(200, {}, b"[]")

    monkeypatch.setattr(gw, "http_request", answered)
    gateway = gw.Gateway("/nonexistent/tyk", tmp_path, redis_port=1)
    gateway.reload(timeout=45.0, wait_for=[])
    assert waited["reload?block=true"] == 45.0
