"""An unknown policy id gets native JWT's words once the plugin knows the gateway's policies."""

from __future__ import annotations

import contextlib
import email.message
import io
import json
import logging
import threading
import time
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plugin.policies import BasePolicy
from plugin.policy_index import PolicyIndex, from_gateway, from_path, gateway_source
from tests.support import tokens as t
from tests.support.http_servers import serving
from tests.support.objects import auth_object, config_data


def write_policies(directory, *ids, org="default", granting_nothing=(), partitions=None):
    """Policies granting one API each, except those named in ``granting_nothing`` (no access rights)."""
    directory.mkdir(exist_ok=True)
    for pid in ids:
        rights = {} if pid in granting_nothing else {"auth0-plugin": {"api_id": "auth0-plugin"}}
        policy = {"id": pid, "org_id": org, "access_rights": rights}
        if partitions and pid in partitions:
            policy["partitions"] = partitions[pid]
        (directory / f"{pid}.json").write_text(json.dumps(policy))


def test_policies_are_read_from_a_policy_path_directory(tmp_path):
    write_policies(tmp_path / "p", "gold", "silver")
    index = PolicyIndex(from_path(tmp_path / "p"))
    assert index.refresh()
    assert index.known("default", "gold") is True
    assert index.known("default", "bronze") is False
    assert index.known("other-org", "gold") is False


def test_a_policy_record_file_maps_ids_to_policies(tmp_path):
    (tmp_path / "policies.json").write_text(json.dumps({"gold": {"org_id": "default"}}))
    index = PolicyIndex(from_path(tmp_path / "policies.json"))
    assert index.refresh() and index.known("default", "gold")


def test_nothing_loaded_means_unknown_not_refused(tmp_path):
    index = PolicyIndex(from_path(tmp_path / "missing"))
    assert not index.refresh()
    assert index.known("default", "gold") is None
    (tmp_path / "empty").mkdir()
    assert not PolicyIndex(from_path(tmp_path / "empty")).refresh()


def test_unknown_policy_is_refused_with_native_jwt_words(plugin, signing_key, tmp_path):
    write_policies(tmp_path / "p", "auth0-policy")
    index = PolicyIndex(from_path(tmp_path / "p"))
    index.refresh()
    plugin.authenticator.policy_index = index
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="no-such"))))
    assert (reply.request.return_overrides.response_code, reply.request.return_overrides.response_error) == (
        403, "key not authorized: no matching policy")
    ok = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key)))
    assert ok.request.return_overrides.response_code == -1


def test_grants_tells_whether_any_policy_gives_access_to_the_api(tmp_path):
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "a.json").write_text(json.dumps({"id": "a", "org_id": "default", "access_rights": {"api-1": {}}}))
    (directory / "b.json").write_text(json.dumps({"id": "b", "org_id": "default", "access_rights": {"api-2": {}}}))
    index = PolicyIndex(from_path(directory))
    index.refresh()
    assert index.grants("default", ["a"], "api-1") is True
    assert index.grants("default", ["a", "b"], "api-2") is True
    assert index.grants("default", ["a"], "api-2") is False
    assert index.grants("default", ["nope"], "api-1") is None


def test_a_protocol_error_from_the_gateway_keeps_the_last_list_and_the_refresher(tmp_path):
    import http.client
    import time

    write_policies(tmp_path / "p", "gold")
    good = from_path(tmp_path / "p")
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) > 1:
            raise http.client.IncompleteRead(b"")
        return good()

    index = PolicyIndex(flaky, interval=0.01)
    index.start()
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) >= 3
        assert index._thread is not None and index._thread.is_alive()
        assert index.known("default", "gold") is True
    finally:
        index.stop()


def _wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_policy_added_after_the_last_read_is_granted_at_once_as_the_index_reads_again_before_refusing(tmp_path):
    write_policies(tmp_path / "p", "gold")
    index = PolicyIndex(from_path(tmp_path / "p"), interval=3600)
    assert index.refresh()
    write_policies(tmp_path / "p", "silver")  # added to the gateway after the last read
    silver = BasePolicy("silver", lone_default=False, applied=("silver",))
    assert index.base_refusal("default", silver) is None
    assert index.refusal("default", silver, ("silver",)) is None
    assert index.known("default", "silver") is True


def test_a_policy_still_missing_after_the_read_again_is_refused_in_natives_words(tmp_path):
    write_policies(tmp_path / "p", "gold")
    index = PolicyIndex(from_path(tmp_path / "p"), interval=3600)
    assert index.refresh()
    refusal = index.base_refusal("default", BasePolicy("silver", lone_default=False, applied=("silver",)))
    assert refusal is not None and refusal.message == "key not authorized: no matching policy"


def test_a_refusal_after_the_recheck_interval_reads_again(tmp_path):
    write_policies(tmp_path / "p", "gold")
    now = [1000.0]
    index = PolicyIndex(from_path(tmp_path / "p"), interval=3600, recheck_interval=1.0, clock=lambda: now[0])
    assert index.refresh()
    assert index.base_refusal("default", BasePolicy("bronze", lone_default=False, applied=("bronze",)))
    write_policies(tmp_path / "p", "silver")
    silver = BasePolicy("silver", lone_default=False, applied=("silver",))
    assert index.base_refusal("default", silver) is not None  # within the interval: refused from the list
    now[0] += 1.0
    assert index.base_refusal("default", silver) is None


def test_refusals_read_again_at_most_once_per_recheck_interval(tmp_path):
    reads = []
    write_policies(tmp_path / "p", "gold")
    load = from_path(tmp_path / "p")

    def counting():
        reads.append(1)
        return load()

    index = PolicyIndex(counting, interval=3600, recheck_interval=3600)
    index.start()
    try:
        assert _wait_for(lambda: index.known("default", "gold"))
        for _ in range(50):
            index.base_refusal("default", BasePolicy("missing", lone_default=False, applied=("missing",)))
        assert len(reads) == 2  # the first refusal read once more, on its own thread
        time.sleep(0.2)
        assert len(reads) == 2  # and no background read was asked for on top of it
    finally:
        index.stop()


def _known(plugin, tmp_path, *ids, granting_nothing=(), partitions=None):
    write_policies(tmp_path / "p", *ids, granting_nothing=granting_nothing, partitions=partitions)
    index = PolicyIndex(from_path(tmp_path / "p"))
    index.refresh()
    plugin.authenticator.policy_index = index


def _answer(reply):
    overrides = reply.request.return_overrides
    return overrides.response_code, overrides.response_error


def test_an_unknown_policy_beside_a_known_base_policy_is_left_to_the_gateway_to_skip(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "auth0-policy")
    config = config_data(jwt_scope_to_policy_mapping={"read:reports": "no-such"})
    token = t.sign(signing_key, t.claims(scope="read:reports"))
    reply = plugin.dispatch(auth_object("Bearer " + token, config=config))
    assert _answer(reply) == (-1, "")
    assert list(reply.session.apply_policies) == ["auth0-policy", "no-such"]


def test_an_unknown_second_default_policy_is_left_to_the_gateway_to_skip(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "d1")
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["d1", "no-such"])
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=t.DROP)), config=config))
    assert _answer(reply) == (-1, "")


def test_an_unknown_first_default_policy_is_refused_as_no_matching_policy(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "d2")
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["no-such", "d2"])
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=t.DROP)), config=config))
    assert _answer(reply) == (403, "key not authorized: no matching policy")


def test_a_lone_unknown_scope_mapped_policy_cannot_be_applied(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "auth0-policy")
    config = config_data(jwt_policy_field_name="", jwt_scope_to_policy_mapping={"read:reports": "no-such"})
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="read:reports"))
    reply = plugin.dispatch(auth_object("Bearer " + token, config=config))
    assert _answer(reply) == (403, "key not authorized: could not apply several policies")


NO_VALID_POLICIES = (500, "failed to create key: key has no valid policies to be applied")
CANNOT_APPLY = (403, "key not authorized: could not apply several policies")


def test_a_policy_claim_naming_a_policy_that_grants_nothing_fails_creating_the_key(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "auth0-policy", "empty", granting_nothing={"empty"})
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="empty"))))
    assert _answer(reply) == NO_VALID_POLICIES


def test_default_policies_that_all_grant_nothing_fail_creating_the_key(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "e1", "e2", granting_nothing={"e1", "e2"})
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["e1", "e2"])
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=t.DROP)), config=config))
    assert _answer(reply) == NO_VALID_POLICIES


def test_a_first_default_policy_granting_nothing_passes_when_another_default_grants(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "e1", "d2", granting_nothing={"e1"})
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["e1", "d2"])
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=t.DROP)), config=config))
    assert _answer(reply) == (-1, "")


def test_the_base_policy_is_judged_before_any_scope_mapping(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "empty", "gold", granting_nothing={"empty"})
    config = config_data(jwt_scope_to_policy_mapping={"read:reports": "gold"})
    token = t.sign(signing_key, t.claims(pol="empty", scope="read:reports"))
    assert _answer(plugin.dispatch(auth_object("Bearer " + token, config=config))) == NO_VALID_POLICIES


def test_scope_mapped_policies_that_grant_nothing_cannot_be_applied(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "d1", "empty", granting_nothing={"empty"})
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["d1"],
                         jwt_scope_to_policy_mapping={"read:reports": "empty"})
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="read:reports"))
    assert _answer(plugin.dispatch(auth_object("Bearer " + token, config=config))) == CANNOT_APPLY


def test_several_unknown_scope_mapped_policies_cannot_be_applied(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "d1")
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["d1"],
                         jwt_scope_to_policy_mapping={"read:a": "no-such-a", "read:b": "no-such-b"})
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="read:a read:b"))
    assert _answer(plugin.dispatch(auth_object("Bearer " + token, config=config))) == CANNOT_APPLY


def test_a_scope_mapped_policy_granting_nothing_beside_one_that_grants_passes(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "auth0-policy", "empty", granting_nothing={"empty"})
    config = config_data(jwt_scope_to_policy_mapping={"read:reports": "empty"})
    token = t.sign(signing_key, t.claims(scope="read:reports"))
    reply = plugin.dispatch(auth_object("Bearer " + token, config=config))
    assert _answer(reply) == (-1, "")
    assert list(reply.session.apply_policies) == ["auth0-policy", "empty"]


def test_a_missing_first_default_beside_defaults_that_grant_nothing_fails_creating_the_key(plugin, signing_key,
                                                                                           tmp_path):
    _known(plugin, tmp_path, "d1", "empty", granting_nothing={"empty"})
    for defaults in (["no-such", "empty"], ["no-such", "no-such-2"]):
        config = config_data(jwt_policy_field_name="", jwt_default_policies=defaults)
        reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=t.DROP)), config=config))
        assert _answer(reply) == NO_VALID_POLICIES, defaults


def test_a_quota_only_partitioned_policy_grants_no_api(plugin, signing_key, tmp_path):
    quota_only = {"quota": True, "rate_limit": False, "complexity": False, "acl": False, "per_api": False}
    _known(plugin, tmp_path, "auth0-policy", "quota-only", partitions={"quota-only": quota_only})
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="quota-only"))))
    assert _answer(reply) == NO_VALID_POLICIES


def test_an_acl_partitioned_policy_grants_its_apis(plugin, signing_key, tmp_path):
    acl = {"quota": True, "rate_limit": False, "complexity": False, "acl": True, "per_api": False}
    _known(plugin, tmp_path, "auth0-policy", "with-acl", partitions={"with-acl": acl})
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="with-acl"))))
    assert _answer(reply) == (-1, "")


def test_a_listed_policy_claim_whose_policies_all_grant_nothing_fails_creating_the_key(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "auth0-policy", "e1", "e2", granting_nothing={"e1", "e2"})
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=["e1", "e2"]))))
    assert _answer(reply) == NO_VALID_POLICIES


def test_a_missing_default_listed_twice_is_the_lone_default_that_fails_creating_the_key(plugin, signing_key,
                                                                                         tmp_path):
    _known(plugin, tmp_path, "d1")
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["gone", "gone"])
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=t.DROP)), config=config))
    assert _answer(reply) == (500, 'failed to create key: policy not found: "gone"')


@pytest.mark.parametrize("flag", [1, "true"])
def test_a_partition_flag_that_is_not_json_true_does_not_partition(plugin, signing_key, tmp_path, flag):
    _known(plugin, tmp_path, "auth0-policy", "odd", partitions={"odd": {"quota": flag}})
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="odd"))))
    assert _answer(reply) == (-1, "")


def test_a_verdict_made_from_the_old_list_never_reaches_the_memo_of_a_new_one(tmp_path, monkeypatch):
    """A full memo is emptied in place, so a refresh between deciding and remembering wins."""
    from plugin import policy_index
    from plugin.policies import BasePolicy

    monkeypatch.setattr(policy_index, "VERDICT_MEMO_SIZE", 1)
    write_policies(tmp_path / "p", "d1", "gold", granting_nothing={"gold"})
    index = PolicyIndex(from_path(tmp_path / "p"))
    index.refresh()
    index.refusal("default", BasePolicy("d1", lone_default=False, applied=("d1",)), ("d1",))  # the memo is full
    base = BasePolicy("gold", lone_default=False, applied=("gold",))
    decide = index._base_verdict

    def decide_then_refresh(org_id, policy):
        made = decide(org_id, policy)  # against the old list: gold grants nothing
        write_policies(tmp_path / "p", "gold")
        index.refresh()  # gold now grants an API
        return made

    monkeypatch.setattr(index, "_base_verdict", decide_then_refresh)
    assert index.refusal("default", base, ("gold",)) is not None  # this call's own, old verdict
    monkeypatch.setattr(index, "_base_verdict", decide)
    assert index.refusal("default", base, ("gold",)) is None


def test_each_refusal_is_a_new_error_with_the_same_words(tmp_path):
    from plugin.policies import BasePolicy

    write_policies(tmp_path / "p", "d1", "empty", granting_nothing={"empty"})
    index = PolicyIndex(from_path(tmp_path / "p"))
    index.refresh()
    base = BasePolicy("empty", lone_default=False, applied=("empty",))
    first, second = index.refusal("default", base, ("empty",)), index.refusal("default", base, ("empty",))
    assert first is not second
    assert (first.status, first.message) == (second.status, second.message) == NO_VALID_POLICIES


def test_a_remembered_verdict_is_dropped_when_the_policy_list_changes(tmp_path):
    from plugin.policies import BasePolicy

    write_policies(tmp_path / "p", "d1", "gold", granting_nothing={"gold"})
    index = PolicyIndex(from_path(tmp_path / "p"))
    index.refresh()
    base = BasePolicy("gold", lone_default=False, applied=("gold",))
    assert index.refusal("default", base, ("gold",)) is not None
    write_policies(tmp_path / "p", "gold")  # gold now grants an API
    assert index.refresh()
    assert index.refusal("default", base, ("gold",)) is None


def test_a_repeated_failure_is_logged_once_naming_the_source(tmp_path, caplog):
    import logging

    index = PolicyIndex(from_path(tmp_path / "missing"), source=str(tmp_path / "missing"))
    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        for _ in range(5):
            index.refresh()
    assert len(caplog.records) == 1
    assert str(tmp_path / "missing") in caplog.records[0].getMessage()


def test_a_missing_lone_default_policy_fails_creating_the_key_as_native_does(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "auth0-policy")
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["no-such"])
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=t.DROP)), config=config))
    assert _answer(reply) == (500, 'failed to create key: policy not found: "no-such"')


def test_the_base_policy_is_looked_up_before_the_scope_mapping(plugin, signing_key, tmp_path):
    _known(plugin, tmp_path, "auth0-policy")
    config = config_data(jwt_policy_field_name="", jwt_default_policies=["no-such", "auth0-policy"],
                         jwt_scope_to_policy_mapping={"admin": "admin-policy"})
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="read:reports"))
    reply = plugin.dispatch(auth_object("Bearer " + token, config=config))
    assert _answer(reply) == (403, "key not authorized: no matching policy")


def test_a_failure_is_logged_by_its_kind_never_by_the_exceptions_own_text(caplog):
    def leaky() -> dict:
        raise ValueError("Invalid header value b'S3cretGatewayKey\\n'")  # http.client's words for a bad secret

    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        assert not PolicyIndex(leaky, source="http://127.0.0.1:8080/tyk/policies").refresh()
    assert "(ValueError)" in caplog.text and "S3cretGatewayKey" not in caplog.text


def test_a_gateway_that_refuses_the_secret_is_logged_with_its_status(caplog):
    def refused() -> dict:
        raise urllib.error.HTTPError("http://gw/tyk/policies", 403, "Forbidden", email.message.Message(), io.BytesIO())

    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        PolicyIndex(refused, source="http://gw/tyk/policies").refresh()
    assert "(HTTP 403)" in caplog.text


def test_a_policy_file_that_is_not_json_is_logged_with_where_it_breaks(tmp_path, caplog):
    (tmp_path / "policies.json").write_text("{oops")
    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        PolicyIndex(from_path(tmp_path / "policies.json"), source=str(tmp_path / "policies.json")).refresh()
    assert "not JSON (Expecting property name enclosed in double quotes at line 1 column 2)" in caplog.text


def test_the_source_url_is_logged_without_credentials(caplog):
    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        PolicyIndex(lambda: {}, source="http://admin:GwPassw0rd@127.0.0.1/tyk/policies").refresh()
    assert "http://***@127.0.0.1/tyk/policies" in caplog.text and "GwPassw0rd" not in caplog.text


def test_a_malformed_policy_file_is_skipped_and_named_while_the_others_load(tmp_path, caplog):
    write_policies(tmp_path / "p", "gold")
    (tmp_path / "p" / "silver.json").write_text('{"id": "silver",')
    index = PolicyIndex(from_path(tmp_path / "p"))
    with caplog.at_level(logging.WARNING, logger="plugin.policies"):
        assert index.refresh() and index.refresh()
    assert index.known("default", "gold") is True
    assert index.known("default", "silver") is False
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [f"policy file skipped: {tmp_path / 'p' / 'silver.json'} (not JSON (Expecting property name "
                       "enclosed in double quotes at line 1 column 17))"]


class _Recorder(BaseHTTPRequestHandler):
    """A loopback HTTP server that records the X-Tyk-Authorization it receives, as raw bytes."""

    received: list[bytes]
    redirect_to: str = ""

    def do_GET(self) -> None:
        raw = self.headers.get("X-Tyk-Authorization", "")
        self.received.append(raw.encode("latin-1", "surrogateescape"))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps([{"id": "p1", "org_id": "default", "access_rights": {"api": {}}}]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _recording_server(redirect_to: str = "") -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("Handler", (_Recorder,), {"received": received, "redirect_to": redirect_to})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as base:
        yield base, received


def test_the_gateway_secret_is_never_sent_where_a_redirect_points(caplog):
    with _recording_server() as (elsewhere, leaked), \
            _recording_server(redirect_to=f"{elsewhere}/tyk/policies") as (gateway, received), \
            caplog.at_level(logging.WARNING, logger="plugin.policies"):
        assert not PolicyIndex(from_gateway(gateway, "GwS3cret"), source=gateway_source(gateway)).refresh()
    assert received == [b"GwS3cret"] and leaked == []
    assert "HTTP 302 redirect not followed" in caplog.text and "--tyk-gateway-url" in caplog.text


@pytest.mark.parametrize("secret", ["sécret", "s€cret"])
def test_a_gateway_secret_beyond_ascii_is_sent_as_its_utf8_bytes(secret):
    with _recording_server() as (gateway, received):
        assert PolicyIndex(from_gateway(gateway, secret)).refresh()
    assert received == [secret.encode("utf-8")]


# -- the base policy's values, which native JWT starts a new session from ---------------------------

ACL_ONLY = {"quota": False, "rate_limit": False, "complexity": False, "acl": True, "per_api": False}


def _with_policies(plugin, tmp_path, *policies):
    directory = tmp_path / "p"
    directory.mkdir(exist_ok=True)
    for policy in policies:
        full = {"org_id": "default", "access_rights": {"auth0-plugin": {"api_id": "auth0-plugin"}}, **policy}
        (directory / f"{policy['id']}.json").write_text(json.dumps(full))
    index = PolicyIndex(from_path(directory))
    index.refresh()
    plugin.authenticator.policy_index = index
    return index


def test_an_acl_only_base_policy_sends_its_rate_and_quota_with_the_session(plugin, signing_key, tmp_path):
    """Applying policies clears only what their partitions cover: natively the ACL-only base
    policy's rate and quota stay in force, so the gateway gets them from the plugin too."""
    _with_policies(plugin, tmp_path, {"id": "acl", "partitions": ACL_ONLY, "rate": 3, "per": 60, "quota_max": 10,
                                      "quota_renewal_rate": 3600, "max_query_depth": -1})
    session = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="acl")))).session
    assert (session.rate, session.per, session.allowance) == (3, 60, 3)
    assert (session.quota_max, session.quota_renewal_rate, session.max_query_depth) == (10, 3600, -1)
    assert list(session.apply_policies) == ["acl"]


def test_the_base_policys_tags_and_flags_are_sent_with_the_session(plugin, signing_key, tmp_path):
    _with_policies(plugin, tmp_path, {"id": "gold", "tags": ["gold", "eu"], "hmac_enabled": True, "is_inactive": True,
                                      "post_expiry_action": "delete", "post_expiry_grace_period": 30})
    session = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="gold")))).session
    assert list(session.tags) == ["gold", "eu"]
    assert session.hmac_enabled and session.is_inactive
    assert (session.post_expiry_action, session.post_expiry_grace_period) == ("delete", 30)


def test_the_first_default_policy_gives_the_values_even_when_scopes_replace_the_defaults(plugin, signing_key,
                                                                                        tmp_path):
    """Native JWT builds the session from the first default before the scope mapping replaces its policies."""
    _with_policies(plugin, tmp_path, {"id": "d1", "rate": 7, "per": 1, "tags": ["d1"]}, {"id": "mapped", "rate": 1})
    config = config_data(jwt_default_policies=["d1"], jwt_scope_to_policy_mapping={"read:x": "mapped"})
    token = t.sign(signing_key, t.claims(pol=t.DROP, scope="read:x"))
    session = plugin.dispatch(auth_object("Bearer " + token, config=config)).session
    assert list(session.apply_policies) == ["mapped"]
    assert (session.rate, list(session.tags)) == (7, ["d1"])


def test_only_the_base_policy_gives_the_values(plugin, signing_key, tmp_path):
    _with_policies(plugin, tmp_path, {"id": "first", "rate": 2, "per": 60}, {"id": "second", "rate": 9, "per": 1})
    session = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol=["first", "second"])))).session
    assert (session.rate, session.per) == (2, 60)


def test_without_the_policy_list_no_policy_values_are_sent(plugin, signing_key):
    session = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="gold")))).session
    assert (session.rate, session.per, session.quota_max, list(session.tags)) == (0, 0, 0, [])


def test_a_cached_token_gets_the_values_of_the_policy_list_read_last(plugin, signing_key, tmp_path):
    index = _with_policies(plugin, tmp_path, {"id": "gold", "rate": 2, "per": 60})
    token = "Bearer " + t.sign(signing_key, t.claims(pol="gold"))
    assert plugin.dispatch(auth_object(token)).session.rate == 2
    (tmp_path / "p" / "gold.json").write_text(json.dumps({"id": "gold", "org_id": "default", "rate": 5, "per": 60,
                                                        "access_rights": {"auth0-plugin": {}}}))
    assert index.refresh()
    assert plugin.dispatch(auth_object(token)).session.rate == 5
    assert plugin.authenticator.hits == 1


@pytest.mark.parametrize(("field", "value"), [("rate", "3"), ("rate", True), ("quota_max", 2.5), ("quota_max", 2**63),
                                              ("tags", ["a", 1]), ("is_inactive", "true")])
def test_a_policy_value_of_a_type_go_would_not_decode_is_not_sent(plugin, signing_key, tmp_path, field, value):
    _with_policies(plugin, tmp_path, {"id": "odd", field: value})
    session = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(pol="odd")))).session
    assert (session.rate, session.quota_max, list(session.tags), session.is_inactive) == (0, 0, [], False)


def test_a_list_read_before_a_reload_never_replaces_the_reloaded_one():
    """SIGHUP may reload while the background refresh is still reading: the older read must not win."""
    from plugin.policy_index import PolicyFacts

    grants = PolicyFacts(frozenset({"auth0-plugin"}), b"")
    before = {("default", "gold"): grants}
    after = {**before, ("default", "platinum"): grants}
    reads = iter([before, after])
    in_first_read, end_first_read = threading.Event(), threading.Event()

    def loader():
        listed = next(reads)
        if listed is before:
            in_first_read.set()
            assert end_first_read.wait(5)
        return listed

    index = PolicyIndex(loader)
    background = threading.Thread(target=index.refresh)
    background.start()
    assert in_first_read.wait(5)
    assert index.refresh()  # the reload: reads, and stores, the list with the new policy
    end_first_read.set()
    background.join(5)
    assert index.known("default", "platinum") is True


class FailingAfterFirst:
    """A policy source that answers once, then fails (a rotated gateway secret, say)."""

    def __init__(self, directory) -> None:
        self.first = from_path(directory)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls > 1:
            raise OSError("unavailable")
        return self.first()


def stale_index(tmp_path, now: list[float]) -> PolicyIndex:
    write_policies(tmp_path / "p", "gold", partitions={"gold": {"quota": True, "rate_limit": True, "acl": False}})
    index = PolicyIndex(FailingAfterFirst(tmp_path / "p"), interval=30.0, clock=lambda: now[0])
    assert index.refresh()
    return index


def test_a_policy_missing_from_a_fresh_list_is_refused_in_natives_words(tmp_path):
    now = [1000.0]
    index = stale_index(tmp_path, now)
    now[0] += 100
    assert not index.refresh()
    refusal = index.refusal("default", BasePolicy("platinum", lone_default=False, applied=("platinum",)), ("platinum",))
    assert refusal is not None and refusal.message == "key not authorized: no matching policy"


def test_a_policy_missing_from_a_list_that_could_not_be_read_again_for_long_is_left_to_the_gateway(tmp_path, caplog):
    now = [1000.0]
    index = stale_index(tmp_path, now)
    base = BasePolicy("platinum", lone_default=False, applied=("platinum",))
    assert index.refusal("default", base, ("platinum",)) is not None  # remembered while the list is fresh
    now[0] += 121  # past 4 intervals without a read
    with caplog.at_level(logging.WARNING, logger="plugin.policy_index"):
        assert not index.refresh()
    assert index.known("default", "platinum") is None
    assert index.refusal("default", base, ("platinum",)) is None
    assert "policies missing from it are now left to the gateway" in caplog.text


def test_a_stale_list_still_knows_and_seeds_the_policies_it_holds(tmp_path):
    now = [1000.0]
    index = stale_index(tmp_path, now)
    now[0] += 121
    base = BasePolicy("gold", lone_default=False, applied=("gold",))
    assert index.known("default", "gold") is True
    assert index.seed("default", base) != b""


def test_a_list_read_again_after_going_stale_refuses_unknown_policies_again(tmp_path):
    write_policies(tmp_path / "p", "gold")
    now = [1000.0]
    index = PolicyIndex(from_path(tmp_path / "p"), interval=30.0, clock=lambda: now[0])
    assert index.refresh()
    now[0] += 121
    assert index.known("default", "platinum") is None
    assert index.refresh()
    assert index.known("default", "platinum") is False


def test_a_missing_policy_id_is_quoted_as_go_s_percent_q_quotes_it():
    from plugin.errors import PolicyNotFound

    assert PolicyNotFound('team "a"\\b').message == r'failed to create key: policy not found: "team \"a\"\\b"'
