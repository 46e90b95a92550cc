"""A Dispatch client built only from the gateway's own generated stubs (flat modules on sys.path).

Reads ``{"target": ..., "cases": [{"name", "authorization", "config_data"}]}`` on stdin and prints,
per case, the status, error and policies the server answered. Run with the gateway stubs' directory
first on PYTHONPATH, in a process that never imports this project's stubs.
"""

from __future__ import annotations

import json
import sys

import coprocess_common_pb2  # type: ignore[import-not-found]  # the gateway's stubs
import coprocess_object_pb2  # type: ignore[import-not-found]
import coprocess_object_pb2_grpc  # type: ignore[import-not-found]
import grpc


def main() -> None:
    job = json.load(sys.stdin)
    stub = coprocess_object_pb2_grpc.DispatcherStub(grpc.insecure_channel(job["target"]))
    results = []
    for case in job["cases"]:
        obj = coprocess_object_pb2.Object(hook_type=coprocess_common_pb2.CustomKeyCheck, hook_name=job["hook"])
        if case["authorization"] is not None:
            obj.request.headers["Authorization"] = case["authorization"]
        obj.request.headers["Host"] = "gateway.local"
        obj.request.url = "/auth0-plugin/get"
        obj.request.method = "GET"
        obj.request.return_overrides.response_code = -1
        obj.spec["OrgID"] = "default"
        obj.spec["APIID"] = "auth0-plugin"
        obj.spec["config_data"] = case["config_data"]
        reply = stub.Dispatch(obj, timeout=10)
        results.append({
            "name": case["name"],
            "code": reply.request.return_overrides.response_code,
            "error": reply.request.return_overrides.response_error,
            "policies": list(reply.session.apply_policies),
            "token": reply.metadata.get("token", ""),
            "url": reply.request.url,
        })
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
