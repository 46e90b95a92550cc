"""Which policies a token names, and where its scopes come from, for one claim or a Tyk OAS list."""

from __future__ import annotations

import json

from plugin.config import parse_config_data
from plugin.policies import policy_claim, resolve, token_scopes


def config(**data):
    return parse_config_data(json.dumps({"jwt_source": "https://tenant.example/jwks", **data}), environ={})


def test_a_policy_claim_list_takes_the_first_claim_naming_a_policy():
    assert policy_claim({"pb": "gold"}, ("pa", "pb")) == ("gold",)
    assert policy_claim({"pa": "silver", "pb": "gold"}, ("pa", "pb")) == ("silver",)


def test_a_listed_policy_claim_that_is_empty_or_not_a_name_passes_to_the_next():
    assert policy_claim({"pa": "", "pb": "gold"}, ("pa", "pb")) == ("gold",)
    assert policy_claim({"pa": 3, "pb": "gold"}, ("pa", "pb")) == ("gold",)


def test_a_listed_policy_claim_may_hold_a_list_of_ids():
    assert policy_claim({"pa": ["gold", "silver"]}, ("pa",)) == ("gold", "silver")


def test_an_empty_policy_claim_list_names_no_policy():
    assert policy_claim({"pol": "gold"}, ()) == ()


def test_the_defaults_apply_when_no_listed_claim_names_a_policy():
    assert resolve({"pol": "gold"}, config(jwt_policy_field_name=["pa", "pb"], jwt_default_policies=["d"])) == ("d",)


def test_a_scope_claim_list_reads_the_first_listed_claim_the_token_has():
    api = config(jwt_scope_claim_name=["permissions", "scp"], jwt_scope_to_policy_mapping={"read:x": "p"})
    assert token_scopes({"scp": "read:x write:y", "scope": "other"}, api) == ["read:x", "write:y"]
    assert token_scopes({"permissions": ["read:x"], "scp": "write:y"}, api) == ["read:x"]


def test_a_listed_scope_claim_counts_as_present_whatever_it_holds():
    api = config(jwt_scope_claim_name=["permissions"], jwt_scope_to_policy_mapping={"read:x": "p"})
    assert token_scopes({"permissions": None, "scope": "read:x"}, api) == []
    assert token_scopes({"permissions": [], "scope": "read:x"}, api) == []


def test_a_scope_claim_list_falls_back_to_scope_when_the_token_has_none_of_them():
    api = config(jwt_scope_claim_name=["permissions"], jwt_scope_to_policy_mapping={"read:x": "p"})
    assert token_scopes({"scope": "read:x"}, api) == ["read:x"]


def test_a_listed_dotted_scope_claim_is_chosen_only_by_its_literal_name():
    api = config(jwt_scope_claim_name=["realm.roles"], jwt_scope_to_policy_mapping={"read:x": "p"})
    assert token_scopes({"realm": {"roles": ["read:x"]}, "scope": "other"}, api) == ["other"]
    assert token_scopes({"realm.roles": ["read:x"], "scope": "other"}, api) == ["read:x"]


def test_a_single_scope_claim_never_falls_back_to_scope():
    api = config(jwt_scope_claim_name="permissions", jwt_scope_to_policy_mapping={"read:x": "p"})
    assert token_scopes({"scope": "read:x"}, api) == []


def test_a_policy_list_holding_an_empty_id_names_no_policy():
    assert policy_claim({"pol": ["gold", ""]}, "pol") == ()


def test_scope_mapped_policies_join_the_claimed_one_even_on_an_api_with_default_policies():
    api = config(jwt_policy_field_name="pol", jwt_default_policies=["d"], jwt_scope_to_policy_mapping={"read:x": "p"})
    assert resolve({"pol": "gold", "scope": "read:x"}, api) == ("gold", "p")


def test_scope_mapped_policies_replace_the_defaults_when_no_policy_is_claimed():
    api = config(jwt_policy_field_name="pol", jwt_default_policies=["d"], jwt_scope_to_policy_mapping={"read:x": "p"})
    assert resolve({"scope": "read:x"}, api) == ("p",)
