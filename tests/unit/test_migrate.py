"""`migrate`: native JWT settings become config_data that makes the plugin act as native JWT did."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from plugin import migrate as m

ROOT = Path(__file__).resolve().parents[2]
JWKS = "https://tenant.example/.well-known/jwks.json"
MIDDLEWARE = {"driver": "grpc", "auth_check": {"name": "Auth0JWTAuthCheck"},
              "id_extractor": {"extract_from": "header", "extract_with": "value",
                               "extractor_config": {"header_name": "Authorization"}}}
INLINE = m.PluginHook(bundle=None, custom_middleware=MIDDLEWARE)


def classic(**fields: Any) -> dict[str, Any]:
    return {"api_id": "a1", "org_id": "o1", "enable_jwt": True, "jwt_source": JWKS, "jwt_signing_method": "rsa",
            **fields}


def oas(scheme: dict[str, Any] | None = None, **tyk: Any) -> dict[str, Any]:
    jwt = {"enabled": True, "source": JWKS, "signingMethod": "rsa", "header": {"enabled": True, "name": "Authorization"},
           **(scheme or {})}
    return {
        "openapi": "3.0.3", "info": {"title": "a", "version": "1"}, "paths": {},
        "components": {"securitySchemes": {"jwtAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"jwtAuth": []}],
        "x-tyk-api-gateway": {"info": {"id": "a1", "orgId": "o1", "name": "a", "state": {"active": True}},
                              "upstream": {"url": "http://upstream/"},
                              "server": {"listenPath": {"value": "/a/"},
                                         "authentication": {"enabled": True, "securitySchemes": {"jwtAuth": jwt}}},
                              **tyk},
    }


def refusal(document: dict[str, Any]) -> str:
    with pytest.raises(m.MigrationError) as info:
        m.migrate(document, INLINE)
    return str(info.value)


# -- classic ------------------------------------------------------------------------------------------

def test_a_classic_api_turns_native_jwt_off_and_plugin_auth_on():
    document = m.migrate(classic(use_keyless=False), INLINE).document
    assert (document["enable_jwt"], document["enable_coprocess_auth"], document["use_keyless"]) == (False, True, False)
    assert document["custom_middleware"] == MIDDLEWARE and document["config_data_disabled"] is False


def test_a_classic_api_keeps_its_native_fields_so_the_change_can_be_undone():
    document = m.migrate(classic(jwt_policy_field_name="pol"), INLINE).document
    assert document["jwt_source"] == JWKS and document["jwt_policy_field_name"] == "pol"


def test_with_a_bundle_the_api_names_it_instead_of_inlining_the_middleware():
    document = m.migrate(classic(), m.PluginHook(bundle="b-1.zip", custom_middleware=MIDDLEWARE)).document
    assert document["custom_middleware_bundle"] == "b-1.zip" and "custom_middleware" not in document


def test_native_defaults_are_written_out_where_the_plugin_defaults_differ():
    data = m.migrate({"api_id": "a1", "enable_jwt": True, "jwt_source": JWKS}, INLINE).config_data
    assert data == {"jwt_source": JWKS, "jwt_signing_method": "hmac", "jwt_identity_base_field": "",
                    "jwt_policy_field_name": ""}


@pytest.mark.parametrize("method", ["RSA", "", None, "rs256"])
def test_a_signing_method_native_does_not_know_becomes_hmac_with_a_note(method):
    migration = m.migrate(classic(jwt_signing_method=method), INLINE)
    assert migration.config_data["jwt_signing_method"] == "hmac"
    assert any("admits HMAC tokens only" in note for note in migration.notes)


def test_every_classic_twin_is_copied():
    data = m.migrate(classic(
        jwt_identity_base_field="email", jwt_policy_field_name="https://example.com/pol",
        jwt_default_policies=["d1", ""], jwt_scope_claim_name="permissions",
        jwt_scope_to_policy_mapping={"read:x": "px"}, jwt_expires_at_validation_skew=5,
        jwt_issued_at_validation_skew=6, jwt_not_before_validation_skew=7,
        auth_configs={"jwt": {"auth_header_name": "X-Token", "use_param": True, "param_name": "at",
                              "use_cookie": True, "cookie_name": "c"}}), INLINE).config_data
    assert data == {
        "jwt_source": JWKS, "jwt_signing_method": "rsa", "jwt_identity_base_field": "email",
        "jwt_policy_field_name": "https://example.com/pol", "jwt_default_policies": ["d1"],
        "jwt_scope_claim_name": "permissions", "jwt_scope_to_policy_mapping": {"read:x": "px"},
        "jwt_expires_at_validation_skew": 5, "jwt_issued_at_validation_skew": 6,
        "jwt_not_before_validation_skew": 7, "auth_header_name": "X-Token", "use_param": True, "param_name": "at",
        "use_cookie": True, "cookie_name": "c"}


def test_scopes_jwt_wins_over_the_top_level_scope_fields_as_in_the_gateway():
    data = m.migrate(classic(jwt_scope_claim_name="ignored", jwt_scope_to_policy_mapping={"x": "ignored"},
                             scopes={"jwt": {"scope_claim_name": "scp", "scope_to_policy": {"read:x": "px"}}}),
                     INLINE).config_data
    assert (data["jwt_scope_claim_name"], data["jwt_scope_to_policy_mapping"]) == ("scp", {"read:x": "px"})


def test_without_auth_configs_jwt_the_older_auth_object_gives_the_token_source():
    data = m.migrate(classic(auth={"use_param": True, "param_name": "at"}), INLINE).config_data
    assert (data["use_param"], data["param_name"]) == (True, "at")


def test_the_apis_own_config_data_is_kept_and_a_replaced_value_is_noted():
    migration = m.migrate(classic(config_data={"audience": "https://api", "jwt_signing_method": "hmac"}), INLINE)
    assert migration.config_data["audience"] == "https://api" and migration.config_data["jwt_signing_method"] == "rsa"
    assert any("config_data.jwt_signing_method was \"hmac\"" in note for note in migration.notes)


def test_a_classic_api_without_native_jwt_is_refused():
    assert "enable_jwt is not true" in refusal(classic(enable_jwt=False))


def test_one_to_one_mode_is_refused():
    assert "one-to-one mode" in refusal(classic(jwt_source=""))


def test_config_data_the_plugin_would_refuse_is_refused_naming_the_key():
    assert "jwt_source" in refusal(classic(jwt_source="http://idp.example/jwks"))  # plain http off loopback
    assert "unknown setting" in refusal(classic(config_data={"other_plugin": 1}))


def test_a_refusal_of_the_migrated_config_data_names_the_key_once():
    said = refusal(classic(config_data={"jwks_cache_ttl": 1}))
    assert said.endswith("jwks_cache_ttl: must be a whole number of seconds >= 5")
    assert said.count("jwks_cache_ttl") == 1


@pytest.mark.parametrize(("field", "value", "kind"), [
    ("jwt_source", 5, "a string"),
    ("enable_jwt", "true", "true or false"),
    ("jwt_default_policies", "p1", "a list of strings"),
    ("jwt_scope_to_policy_mapping", ["read"], "an object of strings"),
    ("jwt_expires_at_validation_skew", -5, "a whole number >= 0"),
    ("jwt_not_before_validation_skew", 1.5, "a whole number >= 0"),
    ("jwt_skip_kid", "yes", "true or false"),
])
def test_a_mistyped_classic_field_is_refused_naming_it(field, value, kind):
    assert refusal(classic(**{field: value})).startswith(f"{field} must be {kind}, not {json.dumps(value)}")


def test_a_mistyped_nested_classic_field_is_refused_by_its_path():
    said = refusal(classic(auth_configs={"jwt": {"use_param": "true"}}))
    assert said.startswith("auth_configs.jwt.use_param must be true or false")


@pytest.mark.parametrize(("field", "value", "path"), [
    ("defaultPolicies", "p1", "defaultPolicies"), ("expiresAtValidationSkew", "30", "expiresAtValidationSkew"),
    ("query", {"enabled": 1, "name": "t"}, "query.enabled"), ("skipKid", "true", "skipKid")])
def test_a_mistyped_oas_scheme_field_is_read_as_unset_as_the_gateway_reads_it_and_noted(field, value, path):
    # The gateway decodes a scheme from a map and logs a type error only at debug level: the field is
    # Go's zero value and the rest of the scheme still loads.
    migrated = m.migrate(oas({field: value}), INLINE)
    assert any(note.startswith(f"securitySchemes.jwtAuth.{path} is not ") for note in migrated.notes)
    assert migrated.config_data == m.migrate(oas(), INLINE).config_data


def test_a_whole_float_oas_skew_is_read_as_its_whole_number():
    migrated = m.migrate(oas({"expiresAtValidationSkew": 5.0}), INLINE)
    assert migrated.config_data["jwt_expires_at_validation_skew"] == 5
    assert not any("expiresAtValidationSkew" in note for note in migrated.notes)


def test_an_oas_scheme_whose_enabled_is_not_a_boolean_is_not_native_jwt():
    assert refusal(oas({"enabled": "true"})).startswith("native JWT is not on")


def test_an_oas_name_list_keeps_its_strings_and_reads_other_elements_as_empty():
    migrated = m.migrate(oas({"defaultPolicies": ["p1", 5]}), INLINE)
    assert migrated.config_data["jwt_default_policies"] == ["p1"]


def test_a_null_native_field_is_read_as_absent_as_go_reads_it():
    assert m.migrate(classic(jwt_default_policies=None, jwt_skip_kid=None), INLINE).config_data == \
        m.migrate(classic(), INLINE).config_data


def test_a_client_base_field_without_a_policy_claim_is_noted():
    notes = m.migrate(classic(jwt_client_base_field="azp"), INLINE).notes
    assert any("jwt_client_base_field has no twin" in note for note in notes)


# -- Tyk OAS ------------------------------------------------------------------------------------------

def test_an_oas_api_turns_the_jwt_scheme_off_and_custom_auth_on():
    tyk = m.migrate(oas(), INLINE).document["x-tyk-api-gateway"]
    authentication = tyk["server"]["authentication"]
    assert authentication["securitySchemes"]["jwtAuth"]["enabled"] is False
    assert authentication["custom"]["enabled"] is True
    assert authentication["custom"]["config"] == {
        "enabled": True, "functionName": "Auth0JWTAuthCheck", "path": "",
        "idExtractor": {"enabled": True, "source": "header", "with": "value", "config": {"headerName": "Authorization"}}}
    plugin_config = tyk["middleware"]["global"]["pluginConfig"]
    assert plugin_config["driver"] == "grpc" and plugin_config["data"]["enabled"] is True


def test_an_oas_api_with_a_bundle_names_it_in_the_plugin_config():
    tyk = m.migrate(oas(), m.PluginHook(bundle="b.zip", custom_middleware=MIDDLEWARE)).document["x-tyk-api-gateway"]
    assert tyk["middleware"]["global"]["pluginConfig"]["bundle"] == {"enabled": True, "path": "b.zip"}
    assert "config" not in tyk["server"]["authentication"]["custom"]


def test_oas_claim_names_become_lists_read_with_oas_rules():
    data = m.migrate(oas({"identityBaseField": "email", "policyFieldName": "pol",
                          "scopes": {"claimName": "permissions",
                                     "scopeToPolicyMapping": [{"scope": "read:x", "policyId": "px"}]}}),
                     INLINE).config_data
    assert data["jwt_identity_base_field"] == ["email"] and data["jwt_policy_field_name"] == ["pol"]
    assert data["jwt_scope_claim_name"] == ["permissions"]
    assert data["jwt_scope_to_policy_mapping"] == {"read:x": "px"}


def test_oas_claim_lists_win_over_the_single_names():
    data = m.migrate(oas({"identityBaseField": "sub", "subjectClaims": ["email", "", "user_id"],
                          "policyFieldName": "pol", "basePolicyClaims": ["tier", "pol"]}), INLINE).config_data
    assert data["jwt_identity_base_field"] == ["email", "user_id"]
    assert data["jwt_policy_field_name"] == ["tier", "pol"]


def test_base_policy_claims_without_a_policy_field_name_read_no_policy_as_native_does():
    migration = m.migrate(oas({"basePolicyClaims": ["tier"]}), INLINE)
    assert migration.config_data["jwt_policy_field_name"] == ""
    assert any("basePolicyClaims but no policyFieldName" in note for note in migration.notes)


def test_the_oas_claim_checks_are_copied():
    rules = {"azp": {"type": "exact_match", "allowedValues": ["c1"]}}
    data = m.migrate(oas({"allowedIssuers": ["https://t/"], "allowedAudiences": ["https://api"],
                          "jtiValidation": {"enabled": True}, "customClaimValidation": rules,
                          "expiresAtValidationSkew": 3}), INLINE).config_data
    assert (data["issuer"], data["audience"], data["require_jti"]) == (["https://t/"], ["https://api"], True)
    assert data["custom_claim_validation"] == rules and data["jwt_expires_at_validation_skew"] == 3


def test_one_jwks_uri_is_preferred_to_the_source_with_its_cache_timeout():
    data = m.migrate(oas({"source": "ignored", "jwksURIs": [{"url": JWKS, "cacheTimeout": "2m30s"}]}),
                     INLINE).config_data
    assert (data["jwt_source"], data["jwks_cache_ttl"]) == (JWKS, 150)


def test_several_jwks_uris_become_a_list_with_the_shortest_cache_timeout():
    data = m.migrate(oas({"jwksURIs": [{"url": JWKS, "cacheTimeout": "10m"}, {"url": JWKS + "2", "cacheTimeout": "2m"}]}),
                     INLINE).config_data
    assert (data["jwt_source"], data["jwks_cache_ttl"]) == ([JWKS, JWKS + "2"], 120)


def test_allowed_subjects_are_refused_rather_than_dropped():
    assert "allowedSubjects has no twin" in refusal(oas({"allowedSubjects": ["s1"]}))


def test_an_oas_scheme_without_a_header_object_reads_no_header_as_native_does():
    document = oas({"query": {"enabled": True, "name": "at"}})
    del document["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"]["jwtAuth"]["header"]
    data = m.migrate(document, INLINE).config_data
    assert (data["disable_header"], data["use_param"], data["param_name"]) == (True, True, "at")


def test_an_oas_api_without_an_enabled_jwt_scheme_is_refused():
    document = oas()
    document["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"]["jwtAuth"]["enabled"] = False
    assert "native JWT is not on" in refusal(document)


# -- command line -------------------------------------------------------------------------------------

def run(*argv: str) -> tuple[int, str, str]:
    root = argparse.ArgumentParser(prog="tyk-auth0-plugin")
    m.add_cli(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(["migrate", *argv])
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, out=out, err=err), out.getvalue(), err.getvalue()


def test_the_command_prints_the_migrated_definition_and_its_notes_apart(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(classic()))
    code, out, err = run("--api", str(path))
    assert code == 0 and json.loads(out)["enable_coprocess_auth"] is True
    assert err.startswith("note: ") and "note: " not in out


def test_the_command_inlines_the_repository_manifest_unless_told_to_drop_its_id_extractor(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(classic()))
    manifest = json.loads((ROOT / "manifest.json").read_text())["custom_middleware"]
    assert json.loads(run("--api", str(path))[1])["custom_middleware"] == manifest
    assert "id_extractor" not in json.loads(run("--api", str(path), "--no-id-extractor")[1])["custom_middleware"]


def test_the_command_exits_1_naming_why_an_api_cannot_be_migrated(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(classic(jwt_source="")))
    code, out, err = run("--api", str(path))
    assert (code, out) == (1, "") and "one-to-one mode" in err


@pytest.mark.parametrize("content", ["{not json", "[1]"])
def test_the_command_exits_2_on_input_that_is_not_an_api_definition(tmp_path, content):
    path = tmp_path / "api.json"
    path.write_text(content)
    assert run("--api", str(path))[0] == 2


def test_a_manifest_variable_listing_several_files_asks_which_one_to_write_in(tmp_path, monkeypatch):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(classic()))
    monkeypatch.setenv("TYK_AUTH0_MANIFEST", f"{ROOT / 'manifest.json'}{os.pathsep}{tmp_path / 'previous.json'}")
    code, out, err = run("--api", str(path))
    assert (code, out) == (2, "") and "TYK_AUTH0_MANIFEST lists 2 manifests" in err and "--manifest" in err
    code, out, _ = run("--api", str(path), "--manifest", str(ROOT / "manifest.json"))
    assert code == 0 and json.loads(out)["custom_middleware"]["auth_check"]["name"] == "Auth0JWTAuthCheck"


def test_a_bundle_and_no_id_extractor_together_are_a_usage_error(tmp_path):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(classic()))
    code, _, err = run("--api", str(path), "--bundle", "b.zip", "--no-id-extractor")
    assert code == 2 and "the bundle's manifest decides" in err


def test_the_migrated_repository_example_passes_check(tmp_path):
    """The walkthrough's native definition, migrated, is one `check --api` accepts without notes of leftovers."""
    from plugin import check

    path, out_path = tmp_path / "api.json", tmp_path / "migrated.json"
    path.write_text(json.dumps(classic(jwt_identity_base_field="sub", jwt_policy_field_name="pol",
                                       jwt_default_policies=["auth0-policy"], enable_coprocess_auth=False)))
    assert run("--api", str(path), "--output", str(out_path))[0] == 0
    source = check.load_api(str(out_path))
    assert not [note for note in source.notes if "ignored by the plugin" in note or "enable_jwt" in note], source.notes


# -- the ID extractor reads where the token is --------------------------------------------------------

def extractor_of(document: dict[str, Any]) -> Any:
    return document["custom_middleware"].get("id_extractor")


def test_a_token_in_another_header_keys_the_extractor_on_that_header():
    document = m.migrate(classic(auth_configs={"jwt": {"auth_header_name": "x-token"}}), INLINE).document
    assert extractor_of(document)["extractor_config"] == {"header_name": "X-Token"}


def test_a_token_only_in_a_query_parameter_keys_a_form_extractor_on_it():
    migration = m.migrate(classic(auth_configs={"jwt": {"disable_header": True, "use_param": True,
                                                         "param_name": "at"}}), INLINE)
    assert extractor_of(migration.document) == {"extract_from": "form", "extract_with": "value",
                                                "extractor_config": {"param_name": "at"}}
    assert any("urlencoded POST body" in note for note in migration.notes)


@pytest.mark.parametrize("auth", [{"disable_header": True, "use_cookie": True, "cookie_name": "at"},
                                  {"use_param": True}])
def test_a_token_in_a_cookie_or_in_several_places_gets_no_extractor(auth):
    migration = m.migrate(classic(auth_configs={"jwt": auth}), INLINE)
    assert extractor_of(migration.document) is None
    assert any("no ID extractor can key on that alone" in note for note in migration.notes)


def test_an_oas_form_extractor_is_written_in_oas_names():
    document = oas({"query": {"enabled": True, "name": "at"}})
    del document["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"]["jwtAuth"]["header"]
    config = m.migrate(document, INLINE).document["x-tyk-api-gateway"]["server"]["authentication"]["custom"]["config"]
    assert config["idExtractor"] == {"enabled": True, "source": "form", "with": "value",
                                     "config": {"formParamName": "at"}}


def test_with_a_bundle_a_token_place_its_extractor_may_not_read_is_noted():
    bundle = m.PluginHook(bundle="b.zip", custom_middleware=MIDDLEWARE)
    notes = m.migrate(classic(auth_configs={"jwt": {"use_param": True}}), bundle).notes
    assert any("the bundle's ID extractor must read that place alone" in note for note in notes)
    assert not any("must read that place alone" in note for note in m.migrate(classic(), bundle).notes)


# -- what the gateway really runs, and what must not be lost ------------------------------------------

def test_leftover_config_data_twins_are_set_back_to_what_native_acted_on():
    migration = m.migrate(classic(config_data={
        "jwt_expires_at_validation_skew": 86400, "jwt_default_policies": ["admin"],
        "jwt_scope_to_policy_mapping": {"read": "admin"}, "use_param": True}), INLINE)
    data = migration.config_data
    assert (data["jwt_expires_at_validation_skew"], data["jwt_default_policies"],
            data["jwt_scope_to_policy_mapping"], data["use_param"]) == (0, [], {}, False)
    assert any("config_data.jwt_default_policies was [\"admin\"]" in note for note in migration.notes)


def test_kept_config_data_keys_that_native_did_not_act_on_are_named_in_a_note():
    migration = m.migrate(classic(config_data={"audience": "https://api", "jwks_cache_ttl": 60}), INLINE)
    assert migration.config_data["audience"] == "https://api"
    assert any("keeps audience, jwks_cache_ttl from the API's own config_data" in note for note in migration.notes)


def test_a_key_source_in_an_environment_variable_or_file_gives_way_to_the_native_one():
    migration = m.migrate(classic(config_data={"jwt_source_env": "SECRET"}), INLINE)
    assert "jwt_source_env" not in migration.config_data and migration.config_data["jwt_source"] == JWKS


def test_a_scope_mapping_without_a_claim_name_reads_scope_whatever_config_data_held():
    data = m.migrate(classic(jwt_scope_to_policy_mapping={"read:x": "px"},
                             config_data={"jwt_scope_claim_name": "permissions"}), INLINE).config_data
    assert data["jwt_scope_claim_name"] == "scope"


def test_scopes_with_only_unknown_keys_leave_the_top_level_scope_fields_in_force():
    data = m.migrate(classic(jwt_scope_to_policy_mapping={"read:x": "px"}, scopes={"other": {"a": 1}}),
                     INLINE).config_data
    assert data["jwt_scope_to_policy_mapping"] == {"read:x": "px"}


def test_a_dotted_scope_claim_name_is_noted():
    notes = m.migrate(classic(jwt_scope_claim_name="https://example.com/roles",
                              jwt_scope_to_policy_mapping={"read:x": "px"}), INLINE).notes
    assert any("reads it only as a nested path" in note for note in notes)


def test_a_keyless_classic_api_is_refused():
    assert "use_keyless is true" in refusal(classic(use_keyless=True))


def test_an_api_loading_another_bundle_is_refused():
    assert "already loads the bundle 'other.zip'" in refusal(classic(custom_middleware_bundle="other.zip"))


def test_an_api_with_its_own_custom_middleware_is_refused_unless_a_bundle_carries_both():
    document = classic(custom_middleware={"driver": "grpc", "pre": [{"name": "MyPre"}]})
    assert "already runs custom middleware (pre)" in refusal(document)
    notes = m.migrate(document, m.PluginHook(bundle="both.zip", custom_middleware=MIDDLEWARE)).notes
    assert any("must carry those hooks too" in note for note in notes)


def test_context_variables_are_noted_as_no_longer_filled():
    assert any("jwt_claims_*" in note for note in m.migrate(classic(enable_context_vars=True), INLINE).notes)


def test_the_id_extractor_written_in_comes_with_the_note_on_sessions_shared_across_apis():
    assert any("every API of the same org" in note for note in m.migrate(classic(), INLINE).notes)
    no_extractor = m.PluginHook(bundle=None, custom_middleware={"driver": "grpc", "auth_check": {"name": "A"}})
    assert not any("every API of the same org" in note for note in m.migrate(classic(), no_extractor).notes)


def test_an_oas_api_in_compliant_mode_is_refused():
    document = oas()
    document["x-tyk-api-gateway"]["server"]["authentication"]["securityProcessingMode"] = "compliant"
    assert "securityProcessingMode is not legacy" in refusal(document)


def test_an_oas_jwt_scheme_outside_the_first_security_requirement_is_not_native_jwt():
    document = oas()
    document["security"] = [{"apiKey": []}, {"jwtAuth": []}]
    assert "native JWT is not on" in refusal(document)


def test_an_oas_scheme_declared_with_another_bearer_format_is_not_native_jwt():
    document = oas()
    document["components"]["securitySchemes"]["jwtAuth"]["bearerFormat"] = "jwt"
    assert "native JWT is not on" in refusal(document)


def test_an_oas_api_with_authentication_off_is_refused():
    document = oas()
    document["x-tyk-api-gateway"]["server"]["authentication"]["enabled"] = False
    assert "server.authentication.enabled is not true" in refusal(document)


def test_an_oas_jwt_base_identity_becomes_the_custom_one():
    document = oas()
    document["x-tyk-api-gateway"]["server"]["authentication"]["baseIdentityProvider"] = "jwt_claim"
    authentication = m.migrate(document, INLINE).document["x-tyk-api-gateway"]["server"]["authentication"]
    assert authentication["baseIdentityProvider"] == "custom_auth"


def test_the_custom_auth_sources_are_the_jwt_schemes():
    document = oas({"header": {"enabled": True, "name": "X-Token"}, "query": {"enabled": True, "name": "at"}})
    custom = m.migrate(document, INLINE).document["x-tyk-api-gateway"]["server"]["authentication"]["custom"]
    assert (custom["header"], custom["query"]) == ({"enabled": True, "name": "X-Token"}, {"enabled": True, "name": "at"})


def test_an_oas_api_whose_plugins_use_another_driver_or_bundle_is_refused():
    assert "driver 'goplugin'" in refusal(oas(middleware={"global": {"pluginConfig": {"driver": "goplugin"}}}))
    other = oas(middleware={"global": {"pluginConfig": {"driver": "grpc", "bundle": {"enabled": True,
                                                                                     "path": "o.zip"}}}})
    assert "already loads the bundle 'o.zip'" in refusal(other)


@pytest.mark.parametrize("jwks", [[{"url": ""}], [{"url": JWKS}, {}]])
def test_jwks_uris_native_would_fail_on_are_refused(jwks):
    assert "an entry without a url" in refusal(oas({"jwksURIs": jwks}))


@pytest.mark.parametrize(("value", "seconds"), [("5m", 300), ("1h30m", 5400), ("90s", 90), ("1.5m", 90),
                                                ("", 0), ("5", 0), ("5 m", 0), (300, 0)])
def test_oas_durations_are_read_as_go_reads_them(value, seconds):
    assert m._duration_seconds(value) == seconds


def test_an_oas_subject_claim_list_of_empty_names_reads_sub_not_the_single_name():
    data = m.migrate(oas({"subjectClaims": [""], "identityBaseField": "email"}), INLINE).config_data
    assert data["jwt_identity_base_field"] == []


def test_an_xpath_extractor_keeps_the_oas_spelling():
    middleware = {**MIDDLEWARE, "id_extractor": {"extract_from": "body", "extract_with": "xpath",
                                                 "extractor_config": {"xpath_expression": "//token"}}}
    migration = m.migrate(oas(), m.PluginHook(bundle=None, custom_middleware=middleware))
    config = migration.document["x-tyk-api-gateway"]["server"]["authentication"]["custom"]["config"]
    assert config["idExtractor"]["config"] == {"xPathExp": "//token"}
    assert any("regex or xpath" in note for note in migration.notes)


@pytest.mark.parametrize(("document", "field"), [(classic(idp_client_id_mapping_disabled=True), "idp_client_id_mapping_disabled"),
                                                 (oas({"idpClientIdMappingDisabled": True}), "idpClientIdMappingDisabled")])
def test_turning_off_the_client_id_mapping_is_noted_as_having_no_twin(document, field):
    assert any(note.startswith(f"{field} has no twin") for note in m.migrate(document, INLINE).notes)


def test_a_leftover_parameter_name_is_dropped_so_the_default_name_native_used_applies():
    migration = m.migrate(classic(auth_configs={"jwt": {"use_param": True}}, config_data={"param_name": "foo"}),
                          INLINE)
    assert "param_name" not in migration.config_data
    assert any("config_data.param_name is dropped" in note for note in migration.notes)


def test_the_gateway_settings_migrate_cannot_write_are_noted():
    assert any("coprocess_options" in note for note in m.migrate(classic(), INLINE).notes)


def test_an_oas_section_that_is_not_an_object_is_refused_by_name():
    document = oas(middleware=["not", "an", "object"])
    assert "x-tyk-api-gateway.middleware is not a JSON object" in refusal(document)
    assert m.migrate(oas(middleware=None), INLINE).config_data["jwt_source"] == JWKS
