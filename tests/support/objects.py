"""Dispatch objects shaped like the ones the gateway sends for a CustomKeyCheck hook."""

from __future__ import annotations

import json
from typing import Any

from plugin.coprocess import HookType, Object

AUTH_HOOK = "Auth0JWTAuthCheck"
JWKS_URL = "https://tenant.example.auth0.com/.well-known/jwks.json"


def config_data(**overrides: Any) -> str:
    data: dict[str, Any] = {
        "jwt_source": JWKS_URL,
        "issuer": "https://tenant.example.auth0.com/",
        "audience": "https://api.example.com",
        "jwt_signing_method": "rsa",
        "jwt_identity_base_field": "sub",
        "jwt_policy_field_name": "pol",
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def auth_object(authorization: str | None = None, *, config: str | None = None, api_id: str = "auth0-plugin",
                org_id: str = "default", hook_name: str = AUTH_HOOK, hook_type: HookType = HookType.CustomKeyCheck,
                with_config: bool = True) -> Object:
    obj = Object(hook_type=hook_type, hook_name=hook_name)
    request = obj.request
    headers = {
        "Accept": "application/json",
        "User-Agent": "curl/8.5.0",
        "Host": "127.0.0.1:8080",
        "X-Forwarded-For": "10.1.2.3",
    }
    if authorization is not None:
        headers["Authorization"] = authorization
    request.headers.update(headers)
    request.url = "/auth0-plugin/get?x=1"
    request.request_uri = "/auth0-plugin/get?x=1"
    request.method = "GET"
    request.scheme = "http"
    request.params["x"] = "1"
    request.raw_body = b"hello body"
    request.body = "hello body"
    request.return_overrides.response_code = -1
    obj.spec["OrgID"] = org_id
    obj.spec["APIID"] = api_id
    obj.spec["bundle_hash"] = "d41d8cd98f00b204e9800998ecf8427e"
    if with_config:
        obj.spec["config_data"] = config if config is not None else config_data()
    return obj
