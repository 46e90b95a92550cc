"""Claims are read as the gateway's getClaimValue reads them: literal name first, then the dotted path."""

from __future__ import annotations

import pytest

from plugin.claims import identity, lookup, scopes, string_claim
from plugin.errors import IdentityNotFound


def test_a_url_named_claim_is_found_by_its_literal_name():
    claims = {"https://example.com/pol": "gold"}
    assert string_claim(claims, "https://example.com/pol") == "gold"


def test_a_dotted_name_reaches_into_nested_objects():
    assert string_claim({"org": {"team": "blue"}}, "org.team") == "blue"


def test_the_literal_name_wins_when_it_holds_a_non_empty_string():
    assert string_claim({"a.b": "literal", "a": {"b": "nested"}}, "a.b") == "literal"


@pytest.mark.parametrize("literal", ["", 5, None, ["x"], {"y": 1}])
def test_the_dotted_path_is_read_when_the_literal_name_holds_no_non_empty_string(literal):
    assert string_claim({"a.b": literal, "a": {"b": "nested"}}, "a.b") == "nested"


def test_an_identity_under_a_dotted_path_is_found_past_an_empty_literal():
    assert identity({"a.b": "", "a": {"b": "alice"}, "sub": "s"}, "a.b") == "alice"


def test_an_empty_identity_under_a_dotted_path_is_refused_by_name():
    with pytest.raises(IdentityNotFound, match="claim: a.b"):
        identity({"a": {"b": ""}, "sub": "s"}, "a.b")


def test_a_missing_dotted_base_field_falls_back_to_sub():
    assert identity({"sub": "auth0|1", "app": {"other": "x"}}, "app.user") == "auth0|1"


def test_a_missing_base_field_falls_back_to_sub():
    assert identity({"sub": "auth0|1"}, "email") == "auth0|1"


def test_scopes_split_a_string_and_flatten_arrays():
    assert scopes({"scope": "read:a write:b"}, "scope") == ["read:a", "write:b"]
    assert scopes({"scp": ["read:a", ["write:b c"]]}, "scp") == ["read:a", "write:b c"]


def test_lookup_reads_a_dotted_path_when_no_claim_has_the_literal_name():
    assert lookup({"org": {"scope": "read:a"}}, "org.scope") == "read:a"


def test_lookup_reads_the_dotted_path_past_a_literal_claim_that_is_null():
    assert lookup({"org.scope": None, "org": {"scope": "read:a"}}, "org.scope") == "read:a"


def test_scopes_under_a_dotted_path_are_read():
    assert scopes({"org": {"scope": "read:a write:b"}}, "org.scope") == ["read:a", "write:b"]


@pytest.mark.parametrize("value", [5, ["gold"], {"tier": "gold"}, True])
def test_a_dotted_path_holding_no_string_is_no_string_claim(value):
    assert string_claim({"org": {"pol": value}}, "org.pol") is None


def test_lookup_of_a_name_nowhere_is_none():
    assert lookup({"a": {"b": 1}}, "a.c") is None
    assert lookup({}, "x") is None


# -- a list of identity claims: Tyk OAS subjectClaims ------------------------------------------------

def test_a_claim_list_takes_the_first_listed_claim_present():
    assert identity({"user_id": "u1", "sub": "s"}, ("email", "user_id")) == "u1"
    assert identity({"email": "e1", "user_id": "u1", "sub": "s"}, ("email", "user_id")) == "e1"


def test_a_listed_claim_holding_no_string_passes_to_the_next():
    assert identity({"email": 5, "user_id": "u1", "sub": "s"}, ("email", "user_id")) == "u1"


def test_an_empty_listed_claim_is_refused_even_with_a_later_one_present():
    with pytest.raises(IdentityNotFound, match="^found an empty user ID in predefined base claim, claim: email$"):
        identity({"email": "", "user_id": "u1", "sub": "s"}, ("email", "user_id"))


def test_a_claim_list_falls_back_to_sub_naming_it_as_a_base_claim_when_empty():
    assert identity({"sub": "s"}, ("email",)) == "s"
    with pytest.raises(IdentityNotFound, match="^found an empty user ID in predefined base claim, claim: sub$"):
        identity({"sub": ""}, ("email",))


def test_an_empty_claim_list_reads_sub_alone():
    assert identity({"sub": "s"}, ()) == "s"
    with pytest.raises(IdentityNotFound, match="^no suitable claims for user ID were found$"):
        identity({"sub": 7}, ())


def test_a_claim_list_naming_sub_does_not_read_it_twice():
    with pytest.raises(IdentityNotFound, match="^no suitable claims for user ID were found$"):
        identity({"user_id": "u1"}, ("sub",))
    assert identity({"sub": "s", "user_id": "u1"}, ("sub", "user_id")) == "s"
