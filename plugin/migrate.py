"""Moving an API from Tyk's native JWT middleware to the plugin, as one definition rewritten.

Native JWT is turned off and plugin auth on, and every native JWT setting goes into the API's
``config_data`` under its twin's name (docs/migration.md). Where native JWT's defaults differ from
the plugin's (the signing method, the identity and policy claims), the value native JWT acts on
is written out, so that the same token gets the same answer. Settings with no twin that would
make the plugin admit more than native JWT did stop the migration; the others become notes.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from plugin.check import UsageError, read_json
from plugin.config import build_config
from plugin.errors import ConfigurationError
from plugin.extract import TokenSource
from plugin.manifest import ManifestError, load_manifest, manifest_path, read_manifest

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
_SIGNING_METHODS = ("rsa", "hmac", "ecdsa")
_SKEWS = (("expiresAtValidationSkew", "jwt_expires_at_validation_skew"),
          ("issuedAtValidationSkew", "jwt_issued_at_validation_skew"),
          ("notBeforeValidationSkew", "jwt_not_before_validation_skew"))
# What native JWT acts on when its field is unset. A key the API's own config_data already holds is
# set back to it (None: dropped, so the plugin derives the default as native does), so that no
# leftover makes the plugin admit a token native JWT refused.
_NATIVE_UNSET: Mapping[str, Any] = {
    "jwt_expires_at_validation_skew": 0, "jwt_issued_at_validation_skew": 0, "jwt_not_before_validation_skew": 0,
    "jwt_default_policies": [], "jwt_scope_to_policy_mapping": {},
    "auth_header_name": "Authorization", "disable_header": False, "use_param": False, "use_cookie": False,
    "param_name": None, "cookie_name": None,
}
# The Go type each native field migrate reads is unmarshalled into. In a classic definition a value of
# another type makes the gateway refuse the whole definition ("Couldn't unmarshal"), so there is no
# native behaviour to keep: such a field is refused by name rather than read as absent. An OAS scheme
# is read field by field (_as_gateway_reads). null is Go's zero value, as absent.
_STRING, _FLAG, _NAMES, _SECONDS = "a string", "true or false", "a list of strings", "a whole number >= 0"
_MAP, _LIST, _OBJECT = "an object of strings", "a list", "an object"
_SKEW_TYPES = {key: _SECONDS for _, key in _SKEWS}
_CLASSIC_TYPES: Mapping[str, str] = {
    "enable_jwt": _FLAG, "use_keyless": _FLAG, "use_openid": _FLAG, "jwt_source": _STRING,
    "jwt_signing_method": _STRING, "jwt_identity_base_field": _STRING, "jwt_policy_field_name": _STRING,
    "jwt_client_base_field": _STRING, "jwt_default_policies": _NAMES, "jwt_skip_kid": _FLAG,
    "idp_client_id_mapping_disabled": _FLAG, "jwt_scope_to_policy_mapping": _MAP, "jwt_scope_claim_name": _STRING,
    **_SKEW_TYPES, "scopes": _OBJECT, "auth_configs": _OBJECT, "auth": _OBJECT,
    **{f"scopes.{kind}.{key}": kind_type for kind in ("jwt", "oidc")
       for key, kind_type in (("scope_claim_name", _STRING), ("scope_to_policy", _MAP))},
    **{f"{auth}.{key}": kind_type for auth in ("auth", "auth_configs.jwt")
       for key, kind_type in (("auth_header_name", _STRING), ("use_param", _FLAG), ("param_name", _STRING),
                              ("use_cookie", _FLAG), ("cookie_name", _STRING), ("disable_header", _FLAG))},
}
_OAS_TYPES: Mapping[str, str] = {
    "enabled": _FLAG, "source": _STRING, "jwksURIs": _LIST, "signingMethod": _STRING, "identityBaseField": _STRING,
    "subjectClaims": _NAMES, "skipKid": _FLAG, "policyFieldName": _STRING, "basePolicyClaims": _NAMES,
    "clientBaseField": _STRING, "scopes": _OBJECT, "defaultPolicies": _NAMES,
    **{oas: _SECONDS for oas, _ in _SKEWS}, "allowedIssuers": _NAMES, "allowedAudiences": _NAMES,
    "allowedSubjects": _NAMES, "idpClientIdMappingDisabled": _FLAG, "jtiValidation": _OBJECT,
    "customClaimValidation": _OBJECT, "scopes.claimName": _STRING, "scopes.claims": _NAMES,
    "scopes.scopeToPolicyMapping": _LIST,
    **{f"{place}.{key}": kind for place in ("header", "query", "cookie")
       for key, kind in (("enabled", _FLAG), ("name", _STRING))},
}
_REPLACED_SOURCES = ("jwt_source_env", "jwt_source_file")  # jwt_source is written; these would compete with it
_HOOK_SECTIONS = ("pre", "post", "post_key_auth", "response")
_EXTRACTOR_SHARED = ("with the ID extractor, the gateway serves a session the plugin built on this API to every API "
                     "of the same org whose extractor reads the same place, until its deadline, if the session's "
                     "policies grant that API; that API's own checks (issuer, audience, custom claims) are not run. "
                     "Give APIs with different token requirements policies that grant only their own APIs, or "
                     "use --no-id-extractor (README, Token location)")
_GATEWAY_NOTE = ("tyk.conf needs coprocess_options with enable_coprocess true and coprocess_grpc_server "
                 "tcp://HOST:PORT of the plugin (docs/migration.md)")
_HASH_NOTE = ("if tyk.conf sets hash_key_function (Tyk's shipped tyk.conf sets murmur64), set the same in "
              "config_data (or TYK_HASH_KEY_FUNCTION for the plugin) so sessions keep the keys native JWT gave them; "
              "check --tyk-conf compares the two")


class MigrationError(Exception):
    """The definition cannot be moved as it is; the message says what to change first."""


@dataclass
class Migration:
    document: dict[str, Any]
    config_data: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PluginHook:
    """How the migrated API calls the plugin: a bundle by name, or the manifest's middleware inline."""

    bundle: str | None
    custom_middleware: Mapping[str, Any]


def migrate(document: Mapping[str, Any], hook: PluginHook) -> Migration:
    """A classic API definition or a Tyk OAS document with native JWT, rewritten for the plugin."""
    tyk = document.get("x-tyk-api-gateway")
    if isinstance(tyk, dict):
        return _migrate_oas(document, hook)
    if isinstance(document.get("api_definition"), dict) and "api_id" not in document:
        raise MigrationError("this is a Dashboard export: migrate its api_definition object")
    return _migrate_classic(document, hook)


# -- classic -----------------------------------------------------------------------------------------


def _migrate_classic(original: Mapping[str, Any], hook: PluginHook) -> Migration:
    document = copy.deepcopy(dict(original))
    _check_types(document, _CLASSIC_TYPES, "")
    if not document.get("enable_jwt"):
        raise MigrationError("enable_jwt is not true: this API does not use native JWT")
    if document.get("use_keyless"):
        raise MigrationError("use_keyless is true: native JWT never runs on this API")
    notes: list[str] = []
    _check_classic_middleware(document, hook, notes)
    data: dict[str, Any] = {}
    source = document.get("jwt_source") or ""
    if not isinstance(source, str) or not source:
        raise MigrationError("jwt_source is empty: native JWT then looks a key up per token kid (one-to-one mode), "
                             "which the plugin does not do")
    data["jwt_source"] = source
    data["jwt_signing_method"] = _signing_method(document.get("jwt_signing_method"), "jwt_signing_method", notes)
    data["jwt_identity_base_field"] = _text(document.get("jwt_identity_base_field"))
    data["jwt_policy_field_name"] = _text(document.get("jwt_policy_field_name"))
    if not data["jwt_policy_field_name"] and document.get("jwt_client_base_field"):
        notes.append("jwt_client_base_field has no twin: the plugin does not take policies from an OAuth client's "
                     "key; tokens without a policy claim get jwt_default_policies")
    if document.get("idp_client_id_mapping_disabled"):
        notes.append(_CLIENT_ID_NOTE.format("idp_client_id_mapping_disabled"))
    _copy_list(document.get("jwt_default_policies"), "jwt_default_policies", data)
    scopes = _object(document.get("scopes"))
    scoped = any(_present(scopes.get(kind)) for kind in ("jwt", "oidc"))  # the gateway's IsEmpty(Scopes)
    chosen = _object(scopes.get("oidc" if document.get("use_openid") else "jwt")) if scoped else {}
    claim_name = chosen.get("scope_claim_name") if scoped else document.get("jwt_scope_claim_name")
    mapping = chosen.get("scope_to_policy") if scoped else document.get("jwt_scope_to_policy_mapping")
    if isinstance(mapping, dict) and mapping:
        data["jwt_scope_to_policy_mapping"] = dict(mapping)
        data["jwt_scope_claim_name"] = _text(claim_name) or "scope"
        _dotted_scope_note(data["jwt_scope_claim_name"], notes)
    for _, key in _SKEWS:
        if document.get(key):
            data[key] = document[key]
    auth_configs = _object(document.get("auth_configs"))
    auth = _object(auth_configs.get("jwt")) if "jwt" in auth_configs else _object(document.get("auth"))
    _classic_token_source(auth, data)
    notes.append("classic native JWT checks neither iss nor aud; to check them, add issuer and audience to "
                 "config_data (Auth0 advises checking aud)")
    notes.extend((_GATEWAY_NOTE, _HASH_NOTE))

    config_data, token_source = _merged(document.get("config_data"), data, "config_data", notes)
    document["enable_jwt"] = False
    document["enable_coprocess_auth"] = True
    document["use_keyless"] = False
    if document.get("base_identity_provided_by") == "jwt_claim":
        document["base_identity_provided_by"] = "custom_auth"
    if document.get("enable_context_vars"):
        notes.append(_CONTEXT_VARS_NOTE)
    document["config_data"] = config_data
    document["config_data_disabled"] = False
    middleware = _keyed_extractor(hook, token_source, notes)
    if hook.bundle:
        document["custom_middleware_bundle"] = hook.bundle
        document.pop("custom_middleware_bundle_disabled", None)
    else:
        document["custom_middleware"] = middleware
    return Migration(document, config_data, notes)


def _check_classic_middleware(document: Mapping[str, Any], hook: PluginHook, notes: list[str]) -> None:
    """Refuse to drop the API's own plugins: a bundle's manifest replaces all of custom_middleware."""
    bundle = "" if document.get("custom_middleware_bundle_disabled") else _text(document.get("custom_middleware_bundle"))
    if bundle and bundle != hook.bundle:
        raise MigrationError(f"the API already loads the bundle {bundle!r}, whose manifest would replace the plugin's "
                             "middleware: add the plugin's auth_check to that manifest, build it, and pass --bundle")
    middleware = _object(document.get("custom_middleware"))
    hooks = [s for s in _HOOK_SECTIONS if middleware.get(s)]
    if _text(_object(middleware.get("auth_check")).get("name")):
        hooks.append("auth_check")
    if hooks and not hook.bundle:
        raise MigrationError(f"the API already runs custom middleware ({', '.join(hooks)}), which the plugin's would "
                             "replace: put both in one manifest, build a bundle, and pass --bundle")
    if hooks:
        notes.append(f"the bundle's manifest replaces the API's own custom_middleware ({', '.join(hooks)}): it must "
                     "carry those hooks too")


def _classic_token_source(auth: Mapping[str, Any], data: dict[str, Any]) -> None:
    name = _text(auth.get("auth_header_name"))
    if name and name.lower() != "authorization":
        data["auth_header_name"] = name
    for flag, name_key in (("use_param", "param_name"), ("use_cookie", "cookie_name")):
        if auth.get(flag) is True:
            data[flag] = True
            if _text(auth.get(name_key)):
                data[name_key] = _text(auth.get(name_key))
    if auth.get("disable_header") is True:
        data["disable_header"] = True


# -- Tyk OAS -----------------------------------------------------------------------------------------


def _migrate_oas(original: Mapping[str, Any], hook: PluginHook) -> Migration:
    document = copy.deepcopy(dict(original))
    tyk = document["x-tyk-api-gateway"]
    authentication = _section(_section(tyk, "server", "x-tyk-api-gateway"), "authentication", "server")
    name, scheme, notes = _jwt_scheme(document, authentication)
    data: dict[str, Any] = {}
    plugin_config = _object(_object(_object(tyk.get("middleware")).get("global")).get("pluginConfig"))
    _check_oas_plugins(plugin_config, hook)

    listed = scheme.get("jwksURIs")
    jwks: list[Any] = listed if isinstance(listed, list) else []
    if jwks:  # native JWT prefers jwksURIs to source, and takes the first set publishing the kid
        urls = [_text(_object(entry).get("url")) for entry in jwks]
        if not all(urls):
            raise MigrationError(f"securitySchemes.{name}.jwksURIs has an entry without a url: native JWT then "
                                 "refuses every token")
        data["jwt_source"] = urls[0] if len(urls) == 1 else urls
        ttls = [ttl for entry in jwks if (ttl := _duration_seconds(_object(entry).get("cacheTimeout"))) >= 5]
        if ttls:
            data["jwks_cache_ttl"] = min(ttls)
    elif _text(scheme.get("source")):
        data["jwt_source"] = scheme["source"]
    else:
        raise MigrationError(f"securitySchemes.{name} has no source and no jwksURIs: native JWT then looks a key "
                             "up per token kid (one-to-one mode), which the plugin does not do")
    data["jwt_signing_method"] = _signing_method(scheme.get("signingMethod"), f"securitySchemes.{name}.signingMethod",
                                                 notes)
    subject = _listed(scheme.get("subjectClaims"), scheme.get("identityBaseField"))
    data["jwt_identity_base_field"] = list(subject)  # a list: read with OAS native JWT's rules
    base_claims = _nonempty(scheme.get("basePolicyClaims"))
    if scheme.get("idpClientIdMappingDisabled"):
        notes.append(_CLIENT_ID_NOTE.format("idpClientIdMappingDisabled"))
    if not _text(scheme.get("policyFieldName")):
        data["jwt_policy_field_name"] = ""
        if base_claims:
            notes.append(f"securitySchemes.{name} has basePolicyClaims but no policyFieldName, so native JWT takes "
                         "no policy from the token; config_data keeps that (jwt_policy_field_name \"\")")
        if _text(scheme.get("clientBaseField")):
            notes.append("clientBaseField has no twin: the plugin does not take policies from an OAuth client's "
                         "key; tokens without a policy claim get jwt_default_policies")
    else:
        data["jwt_policy_field_name"] = list(_listed(scheme.get("basePolicyClaims"), scheme["policyFieldName"]))
    _copy_list(scheme.get("defaultPolicies"), "jwt_default_policies", data)
    scopes = _object(scheme.get("scopes"))
    mapping = {m["scope"]: m["policyId"] for m in scopes.get("scopeToPolicyMapping") or ()
               if isinstance(m, dict) and isinstance(m.get("scope"), str) and isinstance(m.get("policyId"), str)}
    if mapping:
        data["jwt_scope_to_policy_mapping"] = mapping
        data["jwt_scope_claim_name"] = list(_listed(scopes.get("claims"), scopes.get("claimName")))
        for claim in data["jwt_scope_claim_name"]:
            _dotted_scope_note(claim, notes)
    for oas_name, key in _SKEWS:
        if scheme.get(oas_name):
            data[key] = scheme[oas_name]
    if _nonempty(scheme.get("allowedIssuers")):
        data["issuer"] = list(_nonempty(scheme.get("allowedIssuers")))
    if _nonempty(scheme.get("allowedAudiences")):
        data["audience"] = list(_nonempty(scheme.get("allowedAudiences")))
    if _object(scheme.get("jtiValidation")).get("enabled") is True:
        data["require_jti"] = True
    if scheme.get("customClaimValidation"):
        data["custom_claim_validation"] = copy.deepcopy(scheme["customClaimValidation"])
    if scheme.get("allowedSubjects"):
        raise MigrationError(f"securitySchemes.{name}.allowedSubjects has no twin: write it as custom_claim_validation "
                             "on sub (docs/migration.md) and remove it, then migrate again")
    _oas_token_source(scheme, data)
    notes.extend((_GATEWAY_NOTE, _HASH_NOTE))

    middleware_global = _section(_section(tyk, "middleware", "x-tyk-api-gateway"), "global", "middleware")
    plugin_config = _section(middleware_global, "pluginConfig", "middleware.global")
    if _object(_object(_object(tyk.get("middleware")).get("global")).get("contextVariables")).get("enabled"):
        notes.append(_CONTEXT_VARS_NOTE)
    existing = _object(_object(plugin_config.get("data")).get("value"))
    config_data, token_source = _merged(existing, data, "middleware.global.pluginConfig.data.value", notes)
    authentication["securitySchemes"][name]["enabled"] = False  # the document's scheme, not the copy read
    custom = _section(authentication, "custom", "server.authentication")
    custom["enabled"] = True
    for place in ("header", "query", "cookie"):  # the coprocess auth sources: what strip_auth_data removes
        if isinstance(scheme.get(place), dict):
            custom[place] = copy.deepcopy(scheme[place])
        else:
            custom.pop(place, None)
    if authentication.get("baseIdentityProvider") == "jwt_claim":
        authentication["baseIdentityProvider"] = "custom_auth"
    plugin_config["driver"] = "grpc"
    plugin_config["data"] = {"enabled": True, "value": config_data}
    middleware = _keyed_extractor(hook, token_source, notes)
    if hook.bundle:
        plugin_config["bundle"] = {"enabled": True, "path": hook.bundle}
        custom.pop("config", None)
    else:
        custom["config"] = _oas_auth_plugin(middleware)
    return Migration(document, config_data, notes)


def _section(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An object of the document to write into, created when absent (or null)."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise MigrationError(f"{where}.{key} is not a JSON object")
    return value


def _jwt_scheme(document: Mapping[str, Any], authentication: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """The native JWT scheme the gateway runs, as it reads it, with notes on what it reads as unset: in
    legacy mode, a scheme of the first security requirement declared in components as exactly
    http / bearer / JWT, and enabled."""
    if not authentication.get("enabled"):
        raise MigrationError("server.authentication.enabled is not true: native JWT never runs on this API")
    if authentication.get("securityProcessingMode", "legacy") != "legacy":
        raise MigrationError("securityProcessingMode is not legacy: migrate rewrites only legacy-mode APIs; move "
                             "the JWT requirement to the custom scheme by hand (docs/migration.md)")
    declared = _object(_object(document.get("components")).get("securitySchemes"))
    schemes = _object(authentication.get("securitySchemes"))
    security = document.get("security")
    first = _object(security[0]) if isinstance(security, list) and security else {}
    found = [name for name in first if name in schemes and _is_jwt(_object(declared.get(name)))]
    scheme, notes = _as_gateway_reads(_object(schemes[found[0]]) if found else {}, f"securitySchemes.{found[0]}."
                                      if found else "")
    if not found or scheme.get("enabled") is not True:
        raise MigrationError("native JWT is not on: no enabled scheme of the first security requirement is declared "
                             "in components as type http, scheme bearer, bearerFormat JWT")
    return found[0], scheme, notes


def _as_gateway_reads(scheme: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """An OAS scheme as the gateway decodes it. Unlike a classic definition's fields, a scheme is
    re-marshalled from a map and decoded with its errors logged only at debug level: a field of the
    wrong type is Go's zero value (a list element, its own) and the rest still loads; a number that
    is a whole float (5.0) is read as that whole number."""
    clean = copy.deepcopy(dict(scheme))
    notes: list[str] = []
    for path, kind in _OAS_TYPES.items():
        *parents, leaf = path.split(".")
        holder: Any = clean
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        value = holder.get(leaf) if isinstance(holder, dict) else None
        if value is None:
            continue
        if kind == _SECONDS and isinstance(value, float) and value.is_integer() and 0 <= value < 2**64:
            holder[leaf] = int(value)
        elif kind == _NAMES and isinstance(value, list):
            holder[leaf] = [v if isinstance(v, str) else "" for v in value]
        elif not _is_kind(value, kind):
            del holder[leaf]
            notes.append(f"{where}{path} is not {kind} ({json.dumps(value)}): the gateway reads it as unset, and so "
                         "does the migration")
    return clean, notes


def _is_jwt(declaration: Mapping[str, Any]) -> bool:
    return (declaration.get("type"), declaration.get("scheme"), declaration.get("bearerFormat")) == (
        "http", "bearer", "JWT")


def _check_oas_plugins(plugin_config: Mapping[str, Any], hook: PluginHook) -> None:
    driver = plugin_config.get("driver")
    if driver not in (None, "", "grpc"):
        raise MigrationError(f"the API's plugins use driver {driver!r}; the plugin needs \"grpc\", and an API has one "
                             "driver")
    bundle = _object(plugin_config.get("bundle"))
    path = _text(bundle.get("path")) if bundle.get("enabled") else ""
    if path and path != hook.bundle:
        raise MigrationError(f"the API already loads the bundle {path!r}, whose manifest would replace the plugin's "
                             "middleware: add the plugin's auth_check to that manifest, build it, and pass --bundle")


def _oas_token_source(scheme: Mapping[str, Any], data: dict[str, Any]) -> None:
    """OAS auth sources as the gateway reads them: no ``header`` object means no header at all."""
    header = scheme.get("header")
    if not isinstance(header, dict) or not header.get("enabled"):
        data["disable_header"] = True
    elif _text(header.get("name")) and _text(header.get("name")).lower() != "authorization":
        data["auth_header_name"] = _text(header.get("name"))
    for place, flag, name_key in (("query", "use_param", "param_name"), ("cookie", "use_cookie", "cookie_name")):
        source = _object(scheme.get(place))
        if source.get("enabled") is True:
            data[flag] = True
            if _text(source.get("name")):
                data[name_key] = _text(source.get("name"))


def _oas_auth_plugin(middleware: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's auth hook and ID extractor in Tyk OAS form (server.authentication.custom.config)."""
    config: dict[str, Any] = {"enabled": True, "functionName": middleware["auth_check"]["name"], "path": ""}
    extractor = _object(middleware.get("id_extractor"))
    if extractor and not extractor.get("disabled"):
        settings = _object(extractor.get("extractor_config"))
        oas_settings = {camel: settings[snake] for snake, camel in (
            ("header_name", "headerName"), ("param_name", "formParamName"), ("regex_expression", "regexp"),
            ("regex_match_index", "regexpMatchIndex"), ("xpath_expression", "xPathExp")) if snake in settings}
        config["idExtractor"] = {"enabled": True, "source": extractor.get("extract_from", ""),
                                 "with": extractor.get("extract_with", ""), "config": oas_settings}
    return config


# -- shared ------------------------------------------------------------------------------------------


def _keyed_extractor(hook: PluginHook, source: TokenSource, notes: list[str]) -> dict[str, Any]:
    """The middleware with its ID extractor reading the one place the token comes from (README,
    *Token location*); without such a place, no extractor."""
    middleware = copy.deepcopy(dict(hook.custom_middleware))
    extractor = _object(middleware.get("id_extractor"))
    if not extractor or extractor.get("disabled"):
        return middleware
    notes.append(_EXTRACTOR_SHARED)
    if extractor.get("extract_with") != "value":
        notes.append("the ID extractor is a regex or xpath one: it must yield the whole token, or tokens that share "
                     "the matched part share one session (README, Token location)")
        return middleware
    if source.places == 1 and source.header is not None:
        keyed = {"extract_from": "header", "extractor_config": {"header_name": source.header}}
    elif source.places == 1 and source.param is not None:
        keyed = {"extract_from": "form", "extractor_config": {"param_name": source.param}}
    else:
        keyed = None
    if hook.bundle:
        if keyed is None or (extractor.get("extract_from"), extractor.get("extractor_config")) != (
                keyed["extract_from"], keyed["extractor_config"]):
            notes.append(f"the token is read from {source.describe()}: the bundle's ID extractor must read that "
                         "place alone, or be left out (README, Token location)")
        return middleware
    if keyed is None:
        del middleware["id_extractor"]
        notes.append(f"the token is read from {source.describe()}: no ID extractor can key on that alone, so "
                     "none is written and the plugin is called on every request")
    else:
        middleware["id_extractor"] = {**extractor, **keyed}
        if keyed["extract_from"] == "form":
            notes.append("the ID extractor reads the query parameter as a form value, which also takes a "
                         "urlencoded POST body (README, Token location)")
    return middleware


_CLIENT_ID_NOTE = ("{} has no twin: the plugin always sets the session's oauth_client_id from the token's client "
                   "id claim")
_CONTEXT_VARS_NOTE = ("native JWT put the token's claims in jwt_claims_* context variables; the plugin does not: "
                      "rewrites or transforms that read them need the session metadata ($tyk_meta.*, "
                      "session_metadata_claims) or the claims_to_headers hook (docs/hooks.md)")


def _dotted_scope_note(name: str, notes: list[str]) -> None:
    if "." in name:
        notes.append(f"the scope claim {name!r} has a dot: native JWT reads it only as a nested path, the plugin "
                     "first as a claim of that literal name (an Auth0 namespaced claim), so tokens carrying such a "
                     "claim get the policies it maps to")


def _duration_seconds(value: Any) -> int:
    """A Tyk OAS duration ("5m", "1h30m", "90s"; Go's time.ParseDuration) in whole seconds; 0 when unreadable."""
    if not isinstance(value, str):
        return 0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return 0
    return int(sum(float(number) * units[unit] for number, unit in parts))


def _signing_method(value: Any, where: str, notes: list[str]) -> str:
    """What native JWT acts on: exactly rsa, hmac or ecdsa, and HMAC for anything else."""
    if value in _SIGNING_METHODS:
        return str(value)
    notes.append(f"{where} is {json.dumps(value)}: native JWT then admits HMAC tokens only, and so will the plugin "
                 "(jwt_signing_method \"hmac\"); for Auth0's RS256 tokens set \"rsa\"")
    return "hmac"


def _merged(existing: Any, data: dict[str, Any], where: str, notes: list[str]) -> tuple[dict[str, Any], TokenSource]:
    """The API's own config_data with the twins added, refused as the plugin would refuse it, and
    where the plugin will read the token."""
    merged = dict(existing) if isinstance(existing, dict) else {}
    for key, value in _NATIVE_UNSET.items():
        if key in merged and key not in data:
            if value is None:
                notes.append(f"{where}.{key} is dropped: native JWT used the default name there")
                del merged[key]
            else:
                data[key] = value
    for key in _REPLACED_SOURCES:
        if merged.pop(key, None) is not None:
            notes.append(f"{where}.{key} is dropped: jwt_source now holds the native key source")
    kept = sorted(key for key in merged if key not in data)
    if kept:
        notes.append(f"{where} keeps {', '.join(kept)} from the API's own config_data; native JWT did not act on them, "
                     "so check that they are wanted")
    for key, value in data.items():
        if key in merged and merged[key] != value:
            notes.append(f"{where}.{key} was {json.dumps(merged[key])}; the native setting's value replaces it")
        merged[key] = value
    try:
        config = build_config(merged, environ={})
    except ConfigurationError as exc:
        raise MigrationError(f"the plugin would refuse the migrated config_data: {exc.key}: {exc.problem}") from None
    return merged, config.token_source


def _check_types(section: Mapping[str, Any], types: Mapping[str, str], where: str) -> None:
    """Refuse, naming it, a native field whose value the gateway's JSON decoder would refuse."""
    for path, kind in types.items():
        value: Any = section
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not _is_kind(value, kind):
            raise MigrationError(f"{where}{path} must be {kind}, not {json.dumps(value)}: the gateway cannot load "
                                 "this definition (Go's JSON decoder refuses it), so it has no native behaviour "
                                 "to keep; correct it first")


def _is_kind(value: Any, kind: str) -> bool:
    if kind == _STRING:
        return isinstance(value, str)
    if kind == _FLAG:
        return isinstance(value, bool)
    if kind == _SECONDS:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64
    if kind == _NAMES:
        return isinstance(value, list) and all(isinstance(v, str) or v is None for v in value)
    if kind == _MAP:
        return isinstance(value, dict) and all(isinstance(v, str) or v is None for v in value.values())
    if kind == _LIST:
        return isinstance(value, list)
    return isinstance(value, dict)


def _copy_list(value: Any, key: str, data: dict[str, Any]) -> None:
    names = _nonempty(value)
    if names:
        data[key] = list(names)


def _listed(names: Any, single: Any) -> tuple[str, ...]:
    """An OAS claim list, else its single-name field; a list of only empty names stays empty, as the
    gateway skips each of them (and then reads sub, or scope)."""
    if isinstance(names, list) and names:
        return _nonempty(names)
    return _nonempty([single])


def _nonempty(value: Any) -> tuple[str, ...]:
    """The non-empty strings of a list (native skips empty names; the plugin refuses them)."""
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _present(value: Any) -> bool:
    return isinstance(value, dict) and any(v not in (None, "", {}, []) for v in value.values())


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- command line ------------------------------------------------------------------------------------


def add_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate", help="rewrite an API definition that uses native JWT to use the plugin",
        description="Reads a classic API definition or a Tyk OAS document that uses Tyk's native JWT middleware "
                    "and writes it back with native JWT off, plugin auth on, and every JWT setting in config_data. "
                    "Notes go to stderr. Run `check --api` on the result with a real token before deploying it.")
    parser.add_argument("--api", required=True, metavar="FILE", help="the API definition (JSON)")
    parser.add_argument("--bundle", metavar="NAME", help="call the plugin through this bundle (e.g. bundle.zip); "
                        "without it the manifest's middleware is written into the definition")
    parser.add_argument("--manifest", metavar="FILE", help="the manifest whose middleware is written in "
                        "(default: TYK_AUTH0_MANIFEST when it names one file, else the repository's manifest.json, "
                        "or installed, the same built in)")
    parser.add_argument("--no-id-extractor", action="store_true",
                        help="leave the manifest's ID extractor out: the plugin is called on every request and "
                             "sessions stay per subject, as native JWT keeps them")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the result here instead of stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        hook = _plugin_hook(args)
        document = read_json(args.api, "API definition")
        if not isinstance(document, dict):
            raise UsageError(f"API definition {args.api} is not a JSON object")
    except UsageError as exc:
        err.write(f"migrate: {exc}\n")
        return EXIT_USAGE
    try:
        migration = migrate(document, hook)
    except MigrationError as exc:
        err.write(f"migrate: cannot migrate {args.api}: {exc}\n")
        return EXIT_REFUSED
    text = json.dumps(migration.document, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    for note in migration.notes:
        err.write(f"note: {note}\n")
    return EXIT_OK


def _plugin_hook(args: argparse.Namespace) -> PluginHook:
    if args.bundle and args.no_id_extractor:
        raise UsageError("--no-id-extractor applies to the middleware written into the definition; with --bundle "
                          "the bundle's manifest decides")
    try:
        path = manifest_path(args.manifest)
        load_manifest(path)  # a manifest the plugin itself would accept
        middleware = dict(json.loads(read_manifest(path))["custom_middleware"])
    except (ManifestError, ValueError, KeyError) as exc:
        raise UsageError(str(exc)) from None
    if args.no_id_extractor:
        middleware.pop("id_extractor", None)
    return PluginHook(bundle=args.bundle, custom_middleware=middleware)
