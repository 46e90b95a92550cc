"""Policies through the real gateway: native JWT and the plugin give the same answers and store the
same session for the same token and policies."""

from __future__ import annotations

import contextlib
import copy
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from plugin.devstack import gateway as gw
from plugin.devstack.stack import Stack
from plugin.session import key_id

pytestmark = pytest.mark.e2e

NATIVE, PLUGIN = "/auth0-native/get", f"/{gw.PLUGIN_SUBJECT_API_ID}/get"
APIS = (gw.NATIVE_API_ID, gw.PLUGIN_SUBJECT_API_ID)
ACL_ONLY = {"quota": False, "rate_limit": False, "complexity": False, "acl": True, "per_api": False}
QUOTA_ONLY = {**ACL_ONLY, "acl": False, "quota": True}


def _policy(policy_id: str, *, partitions: Mapping[str, bool] | None = None, **values: Any) -> dict[str, Any]:
    policy = gw.policy(policy_id, APIS)
    policy.update(values)
    if partitions is not None:
        policy["partitions"] = dict(partitions)
    return policy


POLICIES = [
    # Partitioned policies whose other values native JWT still applies when one is the base policy.
    _policy("pd-acl-only", partitions=ACL_ONLY, rate=1, per=60, quota_max=1),
    _policy("pd-quota-only", partitions=QUOTA_ONLY, rate=2, per=60, quota_max=3),
]


@contextlib.contextmanager
def _same_settings(stack: Stack, settings: Mapping[str, Any]) -> Iterator[None]:
    """For the test's duration: ``settings`` on the native API and in the subject-keyed plugin API's
    config_data, with POLICIES in the gateway and known to the plugin."""
    gateway = stack.gateway
    assert gateway is not None
    saved = {api_id: copy.deepcopy(gateway.apis[api_id]) for api_id in APIS}
    native = {**copy.deepcopy(saved[gw.NATIVE_API_ID]), **settings}
    plugin = copy.deepcopy(saved[gw.PLUGIN_SUBJECT_API_ID])
    plugin["config_data"] = {**plugin["config_data"], **settings}
    for policy in POLICIES:
        gateway.put_policy(policy)
    try:
        gateway.put_api(native)
        gateway.put_api(plugin)
        gateway.reload()
        _wait_until_the_plugin_knows(stack, POLICIES[-1]["id"])
        yield
    finally:
        for api in saved.values():
            gateway.put_api(api)
        gateway.reload()


def _wait_until_the_plugin_knows(stack: Stack, policy_id: str) -> None:
    """The plugin rereads the policy files on a refusal (at most once a second)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        token = stack.token(sub=f"warm-{uuid.uuid4().hex[:8]}@clients", pol=policy_id, scope="")
        if stack.get(PLUGIN, headers={"Authorization": "Bearer " + token}).status != 403:
            return
        time.sleep(0.5)
    raise AssertionError(f"the plugin never learnt policy {policy_id}")


def _answers(stack: Stack, path: str, claims: dict[str, Any], requests: int) -> tuple[list[tuple[int, str]], dict]:
    """Statuses with the X-RateLimit-Limit header (or the error), and the stored session's policy view."""
    claims = dict(claims)
    drop = claims.pop("drop", [])
    sub = f"pd-{uuid.uuid4().hex[:10]}@clients"
    token = stack.token(sub=sub, claims=claims, drop=drop)
    seen = []
    for _ in range(requests):
        result = stack.get(path, headers={"Accept": "application/json", "Authorization": "Bearer " + token})
        headers = {name.lower(): value for name, value in result.headers.items()}
        detail = headers.get("x-ratelimit-limit", "") if result.status == 200 else result.json()["error"]
        seen.append((result.status, detail))
    assert stack.gateway is not None
    session = stack.gateway.session(key_id(gw.ORG_ID, sub)) or {}
    view = {name: session.get(name) for name in ("rate", "per", "quota_max", "quota_renewal_rate", "is_inactive")}
    view["apply_policies"] = session.get("apply_policies")
    view["tags"] = sorted(session.get("tags") or [])
    view["limits"] = {api: (rights.get("limit") or {}).get("rate") for api, rights in
                      (session.get("access_rights") or {}).items()}
    return seen, view


def _both(stack: Stack, settings: Mapping[str, Any], claims: dict[str, Any], requests: int) -> list:
    with _same_settings(stack, settings):
        return [_answers(stack, path, claims, requests) for path in (NATIVE, PLUGIN)]


def test_an_acl_only_base_policy_limits_both_with_its_own_rate(plugin_stack: Stack) -> None:
    """Native JWT starts the session from the base policy, and applying it clears only its ACL
    partition's part: its rate and quota stay in force. The plugin sends them with the session."""
    native, plugin = _both(plugin_stack, {}, {"pol": "pd-acl-only"}, 2)
    assert native == plugin
    assert native[0] == [(200, "1"), (429, "Rate Limit Exceeded")]


def test_a_quota_only_base_default_and_an_acl_only_default_give_the_same_limits_from_both(plugin_stack: Stack) -> None:
    settings = {"jwt_default_policies": ["pd-quota-only", "pd-acl-only"]}
    native, plugin = _both(plugin_stack, settings, {"drop": ["pol"]}, 3)
    assert native == plugin
    assert [status for status, _ in native[0]] == [200, 200, 429]


def test_a_default_policy_listed_twice_is_stored_once_by_both(plugin_stack: Stack) -> None:
    settings = {"jwt_default_policies": ["limited", "limited"]}
    native, plugin = _both(plugin_stack, settings, {"drop": ["pol"]}, 1)
    assert native == plugin
    assert native[1]["apply_policies"] == ["limited"]
