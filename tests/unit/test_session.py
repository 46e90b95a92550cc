"""The session key is the one the gateway's generateToken derives for the identity, and the session
carries native JWT's OAuth client id."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from plugin.config import parse_config_data
from plugin.coprocess import SessionState
from plugin.session import build_session, extractor_deadline, key_id
from tests.support.objects import config_data

IDENTITY = "client-abc@clients"
DIGEST = hashlib.md5(IDENTITY.encode()).hexdigest()


def hashed_key(org: str, key: str, function: str) -> str:
    """The gateway's key record: base64 of {"org":..,"id":..,"h":..}, in that order, without spaces."""
    record = json.dumps({"org": org, "id": key, "h": function}, separators=(",", ":"))
    return base64.b64encode(record.encode()).decode()


def test_the_key_is_the_org_id_followed_by_the_md5_of_the_identity():
    assert key_id("5e9d9544a1dcd60001d0ed20", IDENTITY) == "5e9d9544a1dcd60001d0ed20" + DIGEST


def test_an_org_id_the_digest_starts_with_is_trimmed_from_the_digest_before_joining():
    org = DIGEST[:4]  # the gateway trims the org prefix off the key id, so it appears once
    assert key_id(org, IDENTITY) == org + DIGEST[4:]


def test_an_org_id_the_digest_does_not_start_with_is_not_trimmed():
    org = "z" + DIGEST[1:4]  # never a prefix of a hex digest
    assert key_id(org, IDENTITY) == org + DIGEST


@pytest.mark.parametrize("function", ["murmur32", "murmur64", "murmur128", "sha256"])
def test_with_a_hash_key_function_the_key_is_the_base64_json_record_naming_it(function):
    assert key_id("default", IDENTITY, function) == hashed_key("default", DIGEST, function)


@pytest.mark.parametrize("function", ["md5", "Murmur128", "sha512"])
def test_an_unknown_hash_key_function_is_recorded_as_murmur64(function):
    assert key_id("default", IDENTITY, function) == hashed_key("default", DIGEST, "murmur64")


def test_the_hashed_record_carries_the_digest_with_the_org_prefix_trimmed():
    org = DIGEST[:4]
    assert key_id(org, IDENTITY, "murmur64") == hashed_key(org, DIGEST[4:], "murmur64")


def session_for(claims: dict[str, str]) -> SessionState:
    session = SessionState()
    build_session(claims, IDENTITY, ("auth0-policy",), parse_config_data(config_data()), "key", None, session)
    return session


@pytest.mark.parametrize(("claims", "expected"), [
    ({"client_id": "from-client_id", "cid": "from-cid", "clientId": "from-clientId"}, "from-clientId"),
    ({"client_id": "from-client_id", "cid": "from-cid"}, "from-cid"),
    ({"client_id": "from-client_id"}, "from-client_id"),
])
def test_the_oauth_client_id_is_the_first_present_of_clientid_cid_client_id_in_that_order(claims, expected):
    assert session_for(claims).oauth_client_id == expected


def session_with(claims: dict, **config: object) -> SessionState:
    session = SessionState()
    build_session(claims, IDENTITY, ("auth0-policy",), parse_config_data(config_data(**config)), "key", None, session)
    return session


def test_the_session_carries_the_claims_the_claims_to_headers_hook_turns_into_headers():
    session = session_with({"sub": "auth0|1", "org": {"team": "blue"}}, claims_to_headers={"org.team": "X-Team"})
    assert session.metadata["claim:org.team"] == "blue"


def test_without_claims_to_headers_the_session_carries_no_claim_metadata():
    session = session_with({"sub": "auth0|1", "org": {"team": "blue"}})
    assert not [key for key in session.metadata if key.startswith("claim:")]


def test_a_null_claim_is_not_copied_to_the_session_metadata():
    assert "azp" not in session_with({"sub": "auth0|1", "azp": None}).metadata


def test_a_claim_that_is_not_a_string_is_copied_as_compact_json_keeping_its_text_as_utf8():
    session = session_with({"sub": "auth0|1", "org": {"name": "Café", "ids": [1, 2]}}, session_metadata_claims=["org"])
    assert session.metadata["org"] == '{"name":"Café","ids":[1,2]}'


def test_without_exp_the_cache_deadline_is_the_ttl_from_now():
    assert extractor_deadline(1000.5, None, 30) == 1030


def test_an_exp_before_the_ttl_runs_out_is_the_cache_deadline():
    assert extractor_deadline(1000.5, 1010.9, 30) == 1010
