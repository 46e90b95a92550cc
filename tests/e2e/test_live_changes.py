"""Live changes through the real gateway, as an operator makes them on a gateway that runs for weeks:
API definitions and policies edited and reloaded, APIs removed and added, the gateway and the plugin
restarted or reloaded. Nothing the plugin caches may outlive the configuration that allowed it, and
no answer in between may be a wrong 200.

One short-lived stack of its own, since these tests restart its parts.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from plugin.devstack import gateway as gw
from plugin.devstack.idp import DEFAULT_AUDIENCE
from plugin.devstack.procs import http_request, wait_until
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e

NATIVE = f"/{gw.NATIVE_API_ID}/get"
SUBJECT = f"/{gw.PLUGIN_SUBJECT_API_ID}/get"  # the plugin without the ID extractor: called on every request
EXTRACTOR = f"/{gw.PLUGIN_API_ID}/get"  # with the ID extractor: the gateway holds sessions until their deadline
EDITED_POLICY = "live-edited"
OTHER_AUDIENCE = "https://another-api.example/"


@pytest.fixture(scope="module")
def live(gateway_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    rights = (gw.NATIVE_API_ID, gw.PLUGIN_API_ID, gw.PLUGIN_SUBJECT_API_ID)
    with Stack(workdir=tmp_path_factory.mktemp("live"), gateway_bin=gateway_binary,
               extra_policies=[gw.policy(EDITED_POLICY, rights, name="edited by the tests")]) as running:
        assert running.plugin is not None and running.gateway is not None
        yield running


def sub() -> str:
    return f"live-{uuid.uuid4().hex[:10]}@clients"


def answer(stack: Stack, path: str, token: str) -> tuple[int, str]:
    """Status and the gateway's error text ("" on a 200)."""
    result = stack.get(path, token=token)
    if result.status == 200:
        return 200, ""
    return result.status, str(result.json().get("error"))


def cache_hits(stack: Stack) -> float:
    text = http_request("GET", stack.metrics_url + "/metrics").text
    found = re.search(r"^tyk_auth0_token_cache_hits_total (\S+)$", text, re.MULTILINE)
    assert found is not None, text
    return float(found.group(1))


def plugin_api_with(stack: Stack, api_id: str = gw.PLUGIN_SUBJECT_API_ID, **config: Any) -> dict[str, Any]:
    """A copy of one of the stack's plugin APIs with ``config`` laid over its config_data (None removes a key)."""
    assert stack.gateway is not None
    api = copy.deepcopy(stack.gateway.apis[api_id])
    api["config_data"].update(config)
    api["config_data"] = {k: v for k, v in api["config_data"].items() if v is not None}
    return api


@contextmanager
def changed(stack: Stack, *, apis: tuple[Mapping[str, Any], ...] = (), policies: tuple[Mapping[str, Any], ...] = (),
            removed_apis: tuple[str, ...] = (), removed_policies: tuple[str, ...] = ()) -> Iterator[None]:
    """The gateway reloaded with these changes (/tyk/reload?block=true), and restored afterwards."""
    gateway = stack.gateway
    assert gateway is not None
    saved_apis, saved_policies = copy.deepcopy(gateway.apis), copy.deepcopy(gateway.policies)
    for api in apis:
        gateway.put_api(api)
    for pol in policies:
        gateway.put_policy(pol)
    for api_id in removed_apis:
        gateway.remove_api(api_id)
    for policy_id in removed_policies:
        gateway.policies.pop(policy_id)
    gateway.reload()
    try:
        yield
    finally:
        gateway.apis, gateway.policies = saved_apis, saved_policies
        gateway.reload()


def reload_plugin(stack: Stack) -> None:
    """SIGHUP, and wait until the server says it has reloaded."""
    assert stack.plugin is not None and stack.plugin.pid is not None
    done = stack.plugin.log_text().count("reloaded: auth hook")
    os.kill(stack.plugin.pid, signal.SIGHUP)
    wait_until(lambda: stack.plugin is not None and stack.plugin.log_text().count("reloaded: auth hook") > done,
               timeout=10, what="the plugin to log its reload")


# -- 1. config_data edited, then the gateway reloaded -----------------------------------------------


CONFIG_CHANGES = [  # config_data laid over the API's, token claims, the answer after the change
    pytest.param({"audience": OTHER_AUDIENCE}, {},
                 (401, f"Key not authorized: no matching audience found in token: [{DEFAULT_AUDIENCE}]"), id="audience"),
    pytest.param({"issuer": "https://another-tenant.example/"}, {},
                 (401, "Key not authorized: invalid issuer claim: {issuer}"), id="issuer"),
    pytest.param({"jwt_policy_field_name": "https://example.com/pol", "jwt_default_policies": []},
                 {"pol": gw.DEFAULT_POLICY_ID}, (403, "key not authorized: no matching policy found"),
                 id="policy claim name"),
    pytest.param({"jwt_scope_to_policy_mapping": {"read:live": "no-access"}}, {"scope": "read:live"},
                 (403, "Access to this API has been disallowed"), id="scope-to-policy mapping"),
    pytest.param({"custom_claim_validation": {"azp": {"type": "exact_match", "allowedValues": ["someone-else"]}}},
                 {}, (401, "Key not authorized: claim azp value does not match any expected values"),
                 id="required claim"),
    pytest.param({"max_token_lifetime": 60}, {},
                 (401, "Key not authorized: token lifetime exceeds the maximum of 60 seconds"), id="max token lifetime"),
]


@pytest.mark.parametrize(("config", "claims", "after"), CONFIG_CHANGES)
def test_a_config_data_change_judges_a_cached_token_by_the_new_config_at_the_next_request(
        live: Stack, config: dict[str, Any], claims: dict[str, Any], after: tuple[int, str]) -> None:
    token = live.token(sub=sub(), drop=() if "pol" in claims else ["pol"], **claims)  # no pol: the default policy
    assert answer(live, SUBJECT, token) == (200, "")
    hits = cache_hits(live)
    assert answer(live, SUBJECT, token) == (200, "")
    assert cache_hits(live) == hits + 1  # the plugin answered from its verified-token cache
    with changed(live, apis=(plugin_api_with(live, **config),)):
        changed_answer = answer(live, SUBJECT, token)
    assert changed_answer == (after[0], after[1].format(issuer=live.issuer))
    assert answer(live, SUBJECT, token) == (200, "")  # the old config back: the token passes again


def test_a_signing_method_change_refuses_a_cached_token_at_once_as_native_jwt_does(live: Stack) -> None:
    assert live.gateway is not None
    token = live.token(sub=sub())
    assert [answer(live, path, token) for path in (NATIVE, SUBJECT, SUBJECT)] == [(200, "")] * 3
    native = copy.deepcopy(live.gateway.apis[gw.NATIVE_API_ID])
    native["jwt_signing_method"] = "ecdsa"
    with changed(live, apis=(native, plugin_api_with(live, jwt_signing_method="ecdsa"))):
        answers = [answer(live, path, token) for path in (NATIVE, SUBJECT)]
    assert answers == [(403, "Key not authorized: Unexpected signing method")] * 2
    assert [answer(live, path, token) for path in (NATIVE, SUBJECT)] == [(200, "")] * 2


def test_with_the_id_extractor_a_session_the_gateway_holds_outlives_a_config_change_until_its_deadline(
        live: Stack) -> None:
    """README, Reliability: the gateway answers a token it holds a session for without calling the
    plugin, so a tightened config_data reaches that token only at the session's id_extractor_deadline
    (at most id_extractor_ttl after the plugin granted it); other tokens meet the new config at once."""
    with changed(live, apis=(plugin_api_with(live, gw.PLUGIN_API_ID, id_extractor_ttl=3),)):
        held = live.token(sub=sub())
        assert answer(live, EXTRACTOR, held) == (200, "")
        granted_at = time.monotonic()
        with changed(live, apis=(plugin_api_with(live, gw.PLUGIN_API_ID, id_extractor_ttl=3, audience=OTHER_AUDIENCE),)):
            assert answer(live, EXTRACTOR, held) == (200, "")  # served from the gateway's session
            assert answer(live, EXTRACTOR, live.token(sub=sub()))[0] == 401
            time.sleep(max(0.0, granted_at + 4.2 - time.monotonic()))
            assert answer(live, EXTRACTOR, held)[0] == 401


# -- 2. policies edited or deleted in the gateway ------------------------------------------------------


def test_a_policy_losing_the_api_refuses_at_once_on_every_api_even_a_held_session(live: Stack) -> None:
    """The gateway applies the policies itself on every request, to the sessions it holds too."""
    assert live.gateway is not None
    token = live.token(sub=sub(), pol=EDITED_POLICY)
    assert [answer(live, path, token) for path in (NATIVE, SUBJECT, EXTRACTOR)] == [(200, "")] * 3
    narrowed = copy.deepcopy(live.gateway.policies[EDITED_POLICY])
    narrowed["access_rights"] = {gw.KEYLESS_API_ID: {"api_id": gw.KEYLESS_API_ID, "api_name": gw.KEYLESS_API_ID,
                                                      "versions": ["Default"], "allowed_urls": []}}
    with changed(live, policies=(narrowed,)):
        answers = [answer(live, path, token) for path in (NATIVE, SUBJECT, EXTRACTOR)]
    assert answers == [(403, "Access to this API has been disallowed")] * 3


def test_a_policy_rate_change_meets_an_existing_subject_as_it_does_natively(live: Stack) -> None:
    """The gateway's rate limiter keeps a subject's counters across the edit: the plugin's sessions
    fare exactly as native JWT's, and a new subject gets the new rate on both."""
    assert live.gateway is not None
    limited = copy.deepcopy(live.gateway.policies[EDITED_POLICY])
    limited.update(rate=2, per=60)
    raised = copy.deepcopy(limited)
    raised["rate"] = 100
    statuses: dict[str, list[int]] = {}
    with changed(live, policies=(limited,)):
        tokens = {path: live.token(sub=sub(), pol=EDITED_POLICY) for path in (NATIVE, SUBJECT)}
        for path, token in tokens.items():
            statuses[path] = [answer(live, path, token)[0] for _ in range(3)]
        with changed(live, policies=(raised,)):
            for path, token in tokens.items():
                statuses[path].append(answer(live, path, token)[0])
                fresh = live.token(sub=sub(), pol=EDITED_POLICY)
                statuses[path] += [answer(live, path, fresh)[0] for _ in range(3)]
    assert statuses[SUBJECT] == statuses[NATIVE] == [200, 200, 429, 429, 200, 200, 200]


def test_a_deleted_policy_is_refused_at_once_and_in_natives_words_after_a_plugin_reload(live: Stack) -> None:
    """docs/troubleshooting.md: the plugin reads the policy list every 30 s (and on SIGHUP); until
    then the gateway refuses the policy it no longer has with its own 403 `Forbidden`."""
    token = live.token(sub=sub(), pol=EDITED_POLICY)
    assert [answer(live, path, token) for path in (NATIVE, SUBJECT)] == [(200, "")] * 2
    with changed(live, removed_policies=(EDITED_POLICY,)):
        native = answer(live, NATIVE, token)
        before = answer(live, SUBJECT, token)
        reload_plugin(live)
        after = answer(live, SUBJECT, token)
    assert native == (403, "key not authorized: no matching policy")
    assert before in {(403, "Forbidden"), native}
    assert after == native
    wait_until(lambda: answer(live, SUBJECT, token) == (200, ""), timeout=5, interval=0.3,
               what="the plugin to grant the policy restored")


def test_a_policy_added_while_the_plugin_runs_is_granted_at_once_as_native_jwt_grants_it(live: Stack) -> None:
    """docs/troubleshooting.md: before refusing for a policy its list lacks, the plugin reads the list again."""
    assert live.gateway is not None
    added = copy.deepcopy(live.gateway.policies[EDITED_POLICY])
    added["id"] = added["name"] = "live-added"
    token = live.token(sub=sub(), pol="live-added")
    time.sleep(1.0)  # past the once-a-second limit of any read another test caused
    with changed(live, policies=(added,)):
        assert answer(live, NATIVE, token) == (200, "")
        assert answer(live, SUBJECT, token) == (200, "")


# -- 3. APIs removed, added, and sharing a token ---------------------------------------------------


def test_an_api_removed_and_added_again_with_another_config_judges_by_the_new_config(live: Stack) -> None:
    token = live.token(sub=sub())
    strict = plugin_api_with(live, audience=OTHER_AUDIENCE)
    assert [answer(live, SUBJECT, token) for _ in range(2)] == [(200, "")] * 2
    with changed(live, removed_apis=(gw.PLUGIN_SUBJECT_API_ID,)):
        assert live.get(SUBJECT, token=token).status == 404
        with changed(live, apis=(strict,)):
            assert answer(live, SUBJECT, token)[0] == 401
    assert answer(live, SUBJECT, token) == (200, "")


def test_two_plugin_apis_with_different_config_data_judge_one_token_each_by_its_own(live: Stack) -> None:
    strict = plugin_api_with(live, audience=OTHER_AUDIENCE)
    strict["api_id"] = strict["name"] = "auth0-plugin-strict"
    strict["proxy"]["listen_path"] = "/auth0-plugin-strict/"
    token = live.token(sub=sub())
    with changed(live, apis=(strict,)):
        answers = [answer(live, path, token)[0] for _ in range(3) for path in (SUBJECT, "/auth0-plugin-strict/get")]
    assert answers == [200, 401] * 3


# -- 4. restarts and reloads -------------------------------------------------------------------


def test_after_a_gateway_restart_the_running_plugin_answers_as_before(live: Stack) -> None:
    assert live.gateway is not None
    token, forged = live.token(sub=sub()), live.token(sub=sub(), key="unknown")
    paths = (NATIVE, SUBJECT, EXTRACTOR)
    assert [answer(live, path, token) for path in paths] == [(200, "")] * 3
    live.gateway.restart()
    assert [answer(live, path, token) for path in paths] == [(200, "")] * 3
    assert [answer(live, path, forged)[0] for path in paths] == [403] * 3
    assert answer(live, EXTRACTOR, live.token(sub=sub(), audience=OTHER_AUDIENCE))[0] == 401


def test_while_the_plugin_restarts_the_gateway_refuses_and_serves_only_what_it_holds(live: Stack) -> None:
    held, fresh = live.token(sub=sub()), live.token(sub=sub())
    assert answer(live, EXTRACTOR, held) == (200, "")
    live.stop_plugin()
    try:
        down = [answer(live, SUBJECT, held), answer(live, EXTRACTOR, fresh), answer(live, EXTRACTOR, held)]
    finally:
        live.start_plugin()
    assert down == [(403, "Key not authorised"), (403, "Key not authorised"), (200, "")]
    wait_until(lambda: answer(live, SUBJECT, fresh) == (200, ""), timeout=10, interval=0.3,
               what="the gateway to reach the restarted plugin")
    assert answer(live, EXTRACTOR, fresh) == (200, "")


def test_a_plugin_reload_under_traffic_refuses_no_valid_request(live: Stack) -> None:
    tokens = [live.token(sub=sub()) for _ in range(8)]
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            statuses.append(live.get(SUBJECT, token=tokens[n % len(tokens)]).status)
            n += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        for _ in range(3):
            time.sleep(0.3)
            reload_plugin(live)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
    assert len(statuses) > 10
    assert set(statuses) == {200}


def test_a_rotated_hmac_secret_file_takes_effect_on_a_plugin_reload(live: Stack, tmp_path: Path) -> None:
    """README, Reliability: kill -HUP reads a secret behind jwt_source_file again."""
    assert live.idp is not None
    secret_file = tmp_path / "hmac-secret"
    secret_file.write_text(base64.b64encode(live.idp.hs256_secret.encode()).decode())
    hmac_api = plugin_api_with(live, jwt_signing_method="hmac", jwt_source=None, jwt_source_file=str(secret_file))
    first_secret = live.idp.hs256_secret
    old = live.token(sub=sub(), alg="HS256")
    try:
        with changed(live, apis=(hmac_api,)):
            assert answer(live, SUBJECT, old) == (200, "")
            live.idp.hs256_secret = "rotated-" + uuid.uuid4().hex
            secret_file.write_text(base64.b64encode(live.idp.hs256_secret.encode()).decode())
            new = live.token(sub=sub(), alg="HS256")
            assert answer(live, SUBJECT, old) == (200, "")  # the file is read again only on a reload
            reload_plugin(live)
            assert [answer(live, SUBJECT, token)[0] for token in (old, new)] == [403, 200]
    finally:
        live.idp.hs256_secret = first_secret


@contextmanager
def api_refused_for_its_secret_file(live: Stack, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An HMAC API whose jwt_source_file is missing, refused with a 500; yields (that file, a token for it)."""
    secret_file = tmp_path / "hmac-secret"
    hmac_api = plugin_api_with(live, jwt_signing_method="hmac", jwt_source=None, jwt_source_file=str(secret_file))
    token = live.token(sub=sub(), alg="HS256")
    with changed(live, apis=(hmac_api,)):
        assert answer(live, SUBJECT, token) == (500, "Auth plugin misconfigured: jwt_source_file")
        yield secret_file, token


def test_a_secret_file_put_right_after_the_api_was_refused_is_read_at_once_on_a_plugin_reload(
        live: Stack, tmp_path: Path) -> None:
    """docs/troubleshooting.md: the plugin reads the file again on SIGHUP, at once."""
    assert live.idp is not None
    with api_refused_for_its_secret_file(live, tmp_path) as (secret_file, token):
        secret_file.write_text(base64.b64encode(live.idp.hs256_secret.encode()).decode())
        reload_plugin(live)
        assert answer(live, SUBJECT, token) == (200, "")


def test_a_secret_file_mounted_after_the_api_was_refused_is_picked_up_without_any_signal(
        live: Stack, tmp_path: Path) -> None:
    """docs/troubleshooting.md: an unusable jwt_source_file is tried again every 10 s; a gateway
    reload is not needed (nor enough: the config_data text has not changed)."""
    assert live.idp is not None
    with api_refused_for_its_secret_file(live, tmp_path) as (secret_file, token):
        secret_file.write_text(base64.b64encode(live.idp.hs256_secret.encode()).decode())
        deadline = time.monotonic() + 15
        while answer(live, SUBJECT, token) != (200, "") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert answer(live, SUBJECT, token) == (200, "")
