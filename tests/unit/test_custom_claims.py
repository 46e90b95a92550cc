"""custom_claim_validation answers as Tyk OAS native JWT's customClaimValidation does, quirks included."""

from __future__ import annotations

from typing import Any

import pytest

from plugin.config import parse_config_data
from plugin.custom_claims import (
    MISSING,
    check_custom_claims,
    contains_match,
    go_equal,
    lookup,
    parse_rules,
    segments_of,
)
from plugin.errors import ConfigurationError, CustomClaimInvalid
from plugin.gojson import equal_fold
from tests.support import tokens as t
from tests.support.objects import auth_object, config_data


def verdict(rules: dict[str, Any], claims: dict[str, Any]) -> str:
    try:
        check_custom_claims(claims, parse_rules(rules))
    except CustomClaimInvalid as refused:
        return refused.detail
    return "ok"


AZP = {"azp": {"type": "exact_match", "allowedValues": ["client-a", "client-b"]}}


@pytest.mark.parametrize(("claims", "expected"), [
    ({"azp": "client-a"}, "ok"),
    ({"azp": "client-c"}, "claim azp value does not match any expected values"),
    ({"azp": ["client-a"]}, "claim azp value does not match any expected values"),
    ({"azp": None}, "claim azp value does not match any expected values"),
    ({}, "custom claim azp is required but not present in token"),
])
def test_exact_match_compares_the_whole_value(claims, expected):
    assert verdict(AZP, claims) == expected


@pytest.mark.parametrize(("value", "passes"), [
    (1, True), (1.0, True), (True, True), ("x", True), (None, True), ([1, 2], True), ({"k": "v"}, True),
    (2, False), ([2, 1], False), ({"k": "v", "z": 0}, False), ("1", False),
    (False, False), ([1, 2, 3], False), ([1], False), ({"k": "w"}, False), ({"k": ["v"]}, False),
])
def test_exact_match_follows_go_equality_on_decoded_json(value, passes):
    rules = {"v": {"type": "exact_match", "allowedValues": [1, True, "x", None, [1, 2], {"k": "v"}]}}
    assert (verdict(rules, {"v": value}) == "ok") is passes


def test_values_nested_deeper_than_the_interpreter_recurses_compare():
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    other: Any = "x"
    for _ in range(5000):
        other = [other]
    assert go_equal(deep, other)
    assert contains_match((deep,), [other])


def test_true_is_not_the_number_one():
    assert not go_equal(True, 1) and not go_equal(1, True)


def test_an_integer_and_a_float_of_the_same_value_are_one_number():
    assert go_equal(1, 1.0)


def test_an_empty_allowed_list_matches_nothing():
    assert verdict({"n": {"type": "exact_match", "allowedValues": []}}, {"n": 1}) != "ok"


@pytest.mark.parametrize(("claims", "expected"), [
    ({"org_id": "org_1"}, "ok"),
    ({"org_id": ""}, "ok"),
    ({"org_id": None}, "custom claim org_id expects a non nil value"),
    ({}, "custom claim org_id is required but not present in token"),
])
def test_required_wants_the_claim_present_and_not_null(claims, expected):
    assert verdict({"org_id": {"type": "required"}}, claims) == expected


@pytest.mark.parametrize(("claim", "passes"), [
    (["read:x", "write:y"], True),
    (["write:y"], False),
    ("read:xyz", True),  # a substring of a string claim
    ("read", False),
    ({"read:x": 1}, False),
])
def test_contains_is_membership_for_lists_and_a_substring_test_for_strings(claim, passes):
    rules = {"permissions": {"type": "contains", "allowedValues": ["read:x"]}}
    assert (verdict(rules, {"permissions": claim}) == "ok") is passes


@pytest.mark.parametrize(("claim", "passes"), [(3, False), (None, True), ([3], True), ([None], True), (4, False)])
def test_contains_on_a_scalar_claim_compares_only_the_last_allowed_value(claim, passes):
    assert contains_match((3, None), claim) is passes


def test_contains_on_a_string_claim_ignores_allowed_values_that_are_not_strings():
    assert not contains_match((1, None, ["read"]), "read 1 None")


def test_an_empty_allowed_string_is_contained_in_every_string():
    assert contains_match(("",), "anything") and not contains_match(("",), 1)


@pytest.mark.parametrize(("path", "claims", "found"), [
    ("a.b", {"a": {"b": 1}}, 1),
    ("a.b", {"a.b": 1}, MISSING),  # dots always separate names
    ("arr.1", {"arr": ["x", "y"]}, "y"),
    ("arr.01", {"arr": ["x", "y"]}, "y"),
    ("arr.1", {"arr": {"1": "y"}}, "y"),
    ("arr.1", {"arr": ["x"]}, MISSING),
    ("a.b", {"a": 5}, MISSING),
    ("a.b", {"a": {"b": None}}, None),
    ("s.0", {"s": "abc"}, MISSING),  # digits index lists only, never a string
])
def test_paths_are_names_joined_by_dots_and_numbers_index_lists(path, claims, found):
    assert lookup(claims, segments_of(path)) == found


@pytest.mark.parametrize(("segment", "index"), [
    ("1", 1), ("01", 1), (str(2**63 - 1), 2**63 - 1),
    (str(2**64 + 1), 1),  # gjson reads digits into a uint64 without an overflow check
    (str(2**64), 0),
    (str(2**63), -1),  # and then into an int: from 2**63 on, negative, selecting nothing
    ("1" + "0" * 4399, pow(10, 4399, 2**64) if pow(10, 4399, 2**64) < 2**63 else -1),
    ("name", -1),
])
def test_a_list_index_is_read_as_gjson_reads_it(segment, index):
    assert segments_of(segment) == ((segment, index),)


def test_an_index_past_two_to_the_64_wraps_round_as_in_the_gateway():
    rules = {f"arr.{2**64 + 1}": {"type": "exact_match", "allowedValues": ["y"]}}
    assert verdict(rules, {"arr": ["x", "y"]}) == "ok"


def test_a_very_long_index_is_read_without_a_crash():
    path = "arr.1" + "0" * 4399  # past the length Python's int() reads; 10**4399 is 0 modulo 2**64
    assert verdict({path: {"type": "exact_match", "allowedValues": ["x"]}}, {"arr": ["x", "y"]}) == "ok"


def test_rule_fields_match_case_insensitively_and_null_is_their_zero_value():
    rules = parse_rules({"azp": {"Type": "exact_match", "ALLOWEDVALUES": ["a"], "nonblocking": None}})
    assert (rules[0].type, rules[0].allowed, rules[0].non_blocking) == ("exact_match", ("a",), False)


@pytest.mark.parametrize(("key", "matches"), [
    ("TYPE", True),
    ("Typ\u0065", True),
    ("tipe", False),
    ("types", False),
    ("type\u017f", False),
])
def test_a_rule_field_name_matches_as_go_s_equal_fold_matches(key, matches):
    assert equal_fold("type", key) is matches


@pytest.mark.parametrize(("a", "b"), [("k", "\u212a"), ("s", "\u017f"), ("\u017f", "S")])
def test_equal_fold_joins_letters_that_fold_to_one_another(a, b):
    """As Go's simple case folding does: the Kelvin sign with k, the long s with s."""
    assert equal_fold(a, b)


def test_a_non_blocking_rule_never_refuses():
    rules = {"n": {"type": "required", "nonBlocking": True},
             "m": {"type": "exact_match", "allowedValues": ["q"], "nonBlocking": True}}
    assert verdict(rules, {}) == "ok"
    assert verdict(rules, {"n": None, "m": "z"}) == "ok"


def test_a_blocking_rule_still_refuses_next_to_a_non_blocking_one():
    rules = {"azp": {"type": "exact_match", "allowedValues": ["a"], "nonBlocking": True},
             "scope": {"type": "contains", "allowedValues": ["read"]}}
    assert verdict(rules, {"azp": "b", "scope": "read:all"}) == "ok"
    assert verdict(rules, {"azp": "b", "scope": "write"}) == "claim scope value does not contain any expected values"


def test_of_several_failing_rules_the_first_by_path_is_reported():
    rules = {"zeta": {"type": "required"}, "alpha": {"type": "required"}}
    assert verdict(rules, {}) == "custom claim alpha is required but not present in token"


@pytest.mark.parametrize("path", ["a-b", "https://example.com/roles", "https://example\\.com/roles", "a.*", "a.#",
                                  "a|b", "a[0]", "a..b", "", "a?", "x y", "a%b", "{a}"])
def test_a_path_the_gateway_cannot_read_literally_is_a_configuration_error(path):
    with pytest.raises(ConfigurationError) as raised:
        parse_rules({path: {"type": "required"}})
    assert raised.value.key == "custom_claim_validation"
    assert repr(path) in raised.value.problem


@pytest.mark.parametrize("path", ["a_b", "a:b", "a;b", "a~b", "\u00fcml", "1", "org.team.0"])
def test_plain_paths_are_accepted(path):
    assert parse_rules({path: {"type": "required"}})[0].path == path


@pytest.mark.parametrize(("rule", "problem"), [
    ("required", "the rule must be an object"),
    ({"type": "weird"}, "type must be one of"),
    ({}, "type must be one of"),
    ({"type": "exact_match", "allowedValues": "a"}, "allowedValues must be a list"),
    ({"type": "required", "nonBlocking": "yes"}, "nonBlocking must be true or false"),
    ({"type": "required", "allowed_values": []}, "unknown field 'allowed_values'"),
    ({"type": "exact_match", "allowedValues": [10 ** 400]}, "beyond float64"),
    ({"type": "exact_match", "allowedValues": [[float("nan")]]}, "beyond float64"),
    ({"type": "exact_match", "allowedValues": [{"k": 10 ** 400}]}, "beyond float64"),
])
def test_a_bad_rule_is_named(rule, problem):
    with pytest.raises(ConfigurationError) as raised:
        parse_config_data(config_data(custom_claim_validation={"azp": rule}))
    assert raised.value.key == "custom_claim_validation" and problem in raised.value.problem


def test_rules_must_be_an_object():
    with pytest.raises(ConfigurationError) as raised:
        parse_config_data(config_data(custom_claim_validation=["azp"]))
    assert raised.value.key == "custom_claim_validation"


def test_the_auth_check_refuses_a_failing_rule_with_401_and_the_gateway_text(plugin, signing_key):
    config = config_data(custom_claim_validation=AZP)
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(azp="client-z")), config=config))
    overrides = reply.request.return_overrides
    assert (overrides.response_code, overrides.response_error) == (
        401, "Key not authorized: claim azp value does not match any expected values")


def test_the_auth_check_passes_a_token_every_rule_accepts(plugin, signing_key):
    config = config_data(custom_claim_validation=AZP)
    reply = plugin.dispatch(auth_object("Bearer " + t.sign(signing_key, t.claims(azp="client-b")), config=config))
    assert reply.request.return_overrides.response_code == -1
    assert list(reply.session.apply_policies) == ["auth0-policy"]
