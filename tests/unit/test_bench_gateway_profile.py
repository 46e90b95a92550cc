"""Reading the gateway's Go CPU profile into µs per request, and showing it (no gateway needed)."""

from __future__ import annotations

import math

import pytest

from bench import report
from bench.__main__ import SUITES, parse_args
from bench.gateway_suite import PROCESSES, PROFILE_NODES, gateway_breakdown, parse_pprof_top

TYK = "github.com/TykTechnologies/tyk/gateway."
TOP = f"""File: tyk
Type: cpu
Duration: 3s, Total samples = 4s (133.33%)
Showing nodes accounting for 1.2s, 30.00% of 4s total
      flat  flat%   sum%        cum   cum%
     0.02s  0.50%  0.50%         2s 50.00%  net/http.(*conn).serve
         0     0%  0.50%      0.80s 20.00%  {TYK}(*BaseMiddleware).UpdateRequestSession
      10ms  0.25%  0.75%      400ms 10.00%  github.com/redis/go-redis/v9.(*Client).Process
         0     0%  0.75%      0.20s  5.00%  {TYK}(*RedisNotifier).Notify (inline)
     0.01s  0.25%  1.00%      0.10s  2.50%  runtime.newobject (partial-inline)
         0     0%  1.00%          0     0%  {TYK}(*JWTMiddleware).ProcessRequest
"""


def test_pprof_top_gives_the_total_and_each_function_in_seconds() -> None:
    total, cumulative = parse_pprof_top(TOP)
    assert total == 4.0
    assert cumulative["net/http.(*conn).serve"] == 2.0
    assert cumulative["github.com/redis/go-redis/v9.(*Client).Process"] == pytest.approx(0.4)
    assert cumulative[f"{TYK}(*JWTMiddleware).ProcessRequest"] == 0.0


def test_pprof_top_names_inlined_functions_without_the_inline_mark() -> None:
    _, cumulative = parse_pprof_top(TOP)
    assert cumulative[f"{TYK}(*RedisNotifier).Notify"] == pytest.approx(0.2)
    assert cumulative["runtime.newobject"] == pytest.approx(0.1)


def test_pprof_output_without_a_total_is_an_error_that_shows_it() -> None:
    with pytest.raises(RuntimeError, match="cannot read pprof output"):
        parse_pprof_top("no profile here")


def test_breakdown_turns_each_function_share_into_microseconds_of_the_measured_gateway_cpu() -> None:
    breakdown = gateway_breakdown(TOP, gateway_us_per_req=300.0)
    nodes = breakdown["nodes"]
    assert breakdown["sampled_cpu_s"] == 4.0
    assert nodes["session_write"] == {"share": pytest.approx(0.2), "us_per_req": pytest.approx(60.0)}
    assert nodes["keyspace_notify"]["us_per_req"] == pytest.approx(15.0)
    assert nodes["redis_client"]["us_per_req"] == pytest.approx(30.0)


def test_breakdown_reports_zero_for_a_function_the_profile_never_sampled() -> None:
    nodes = gateway_breakdown(TOP, gateway_us_per_req=300.0)["nodes"]
    assert nodes["grpc_call"] == {"share": 0.0, "us_per_req": 0.0}
    assert set(nodes) == {key for key, _label, _function in PROFILE_NODES}


def test_breakdown_without_a_gateway_cpu_figure_is_not_a_number() -> None:
    nodes = gateway_breakdown(TOP, gateway_us_per_req=float("nan"))["nodes"]
    assert math.isnan(nodes["session_write"]["us_per_req"])


def test_the_profile_suite_runs_only_when_named() -> None:
    assert "gateway-profile" not in SUITES
    assert "gateway-profile" not in parse_args([]).suites
    assert parse_args(["--suite", "gateway-profile"]).suites == ["gateway-profile"]


def _suite() -> dict[str, object]:
    def case(req_per_s: float, ratio: float, gateway: float) -> dict[str, object]:
        budget = {who: 10.0 for who in PROCESSES} | {"gateway": gateway}
        return {"req_per_s": req_per_s, "ratio": ratio, "cpu_us_per_req": budget,
                "all_cpu_us_per_req": sum(budget.values()), "available_cpu_us_per_req": 2e6 / req_per_s,
                **gateway_breakdown(TOP, gateway)}
    return {"available": True, "connections": 64, "profile_seconds": 3,
            "nodes": {key: label for key, label, _function in PROFILE_NODES},
            "cases": {"native_jwt": case(5000.0, 1.0, 300.0), "plugin_idext": case(4000.0, 0.8, 400.0)}}


def test_markdown_shows_each_process_the_total_and_each_gateway_function_per_api() -> None:
    lines = report._md_profile(_suite())
    text = "\n".join(lines)
    assert "| req/s | 5,000 | 4,000 |" in text
    assert "| redis CPU µs/req | 10 | 10 |" in text
    assert "| **all processes** | **340** | **440** |" in text
    assert "| cores × 10⁶ ÷ req/s | 400 | 500 |" in text
    assert "| gateway: session write after the request | 60 | 80 |" in text
    assert "| &nbsp;&nbsp;key-space notification (publish) | 15 | 20 |" in text


def test_a_skipped_profile_says_why_in_the_table_and_adds_nothing_to_the_doc() -> None:
    skipped = {"available": False, "reason": "`go` is not on PATH"}
    assert report._text_profile(skipped) == ["Gateway profile: skipped: `go` is not on PATH"]
    assert report._md_profile(skipped) == []
