"""``tyk-auth0-plugin check``: what would the plugin answer for this token on this API, and why.

The verdict comes from the real auth check (the hook router, the authenticator and
the verifier the server runs), fed the same key set this command fetched, so it
is exactly what the gateway's client would see. The explanation walks the same
pipeline functions one step at a time (parse, algorithm, key, signature, header,
exp/iat/nbf, iss, aud, identity, policies) to say which check refuses the token
and what usually causes it. The token itself and its signature are never printed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import ipaddress
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import SplitResult, urlsplit

from plugin import claims as claimlib
from plugin import dpop as dpoplib
from plugin import policies as policylib
from plugin import tokens as tokenlib
from plugin.auth import Authenticator, ConfigStore
from plugin.cli import bounded
from plugin.config import SETTINGS, SIGNING_METHODS, ApiConfig, env_config_data, gateway_base64, parse_config_data
from plugin.coprocess import HookType, MiniRequestObject, Object
from plugin.custom_claims import check_custom_claims
from plugin.errors import (
    AuthError,
    BadSignature,
    ConfigurationError,
    DPoPBoundAsBearer,
    DPoPKeyMismatch,
    DPoPProofAlgorithm,
    DPoPProofMethod,
    DPoPProofTime,
    DPoPProofTokenHash,
    DPoPProofUrl,
    DPoPRefused,
    DPoPRequired,
    DPoPTokenNotBound,
    InvalidToken,
    JtiMissing,
    KeysUnavailable,
    MissingToken,
    UnexpectedSigningMethod,
    UnknownHook,
    UnknownKey,
)
from plugin.extract import DEFAULT_SOURCE, TokenSource
from plugin.hooks import HookRouter
from plugin.jwks import FetchError, JwksCache, JwksSettings, entry_key, entry_kid, http_fetch, keys_member, parse_jwks
from plugin.keys import KeyTypeMismatch, VerificationKey, load_static_public_key, verify_signature
from plugin.logs import exception_site
from plugin.manifest import ManifestError, ServedHooks, load_served_hooks, manifest_paths
from plugin.policy_index import PolicyIndex, from_path
from plugin.server import variable_of
from plugin.session import key_format, key_id
from plugin.verify import (
    DEFAULT_MAX_TOKEN_BYTES,
    Verifier,
    check_header,
    check_issuer_and_audience,
    check_lifetime,
    check_times,
)

EXIT_PASS, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
_HOOK = "TykAuth0PluginCheck"
_HOOK_STEP = "auth hook"
_MAX_DOC_BYTES = 256 * 1024
_NATIVE_KEYS = {s.native: s.key for s in SETTINGS if s.native and " " not in s.native}  # dotted: nested fields
# The scopes object, which native JWT reads before the two jwt_scope_* fields when it holds anything.
_NATIVE_KEYS |= {f"scopes.{kind}.{name}": key for kind in ("jwt", "oidc") for name, key in (
    ("scope_claim_name", "jwt_scope_claim_name"), ("scope_to_policy", "jwt_scope_to_policy_mapping"))}
_CLIENT_ID = "the plugin always sets the session's oauth_client_id from the token's clientId, cid or client_id claim"
_CLIENT_POLICY = ("the plugin does not take policies from an OAuth client's key: tokens without a policy claim get "
                  "jwt_default_policies")
_SKIP_KID = ("native JWT takes the identity from kid only without a key source (one-to-one mode), and OAS "
             "allowedSubjects compares kid rather than the identity unless skipKid is set; the plugin never reads "
             "kid as an identity")
# Native JWT fields with no config_data twin (docs/migration.md, section 3): what the plugin does instead.
NO_TWIN_CLASSIC: Mapping[str, str] = {
    "jwt_skip_kid": _SKIP_KID, "jwt_client_base_field": _CLIENT_POLICY, "idp_client_id_mapping_disabled": _CLIENT_ID,
    "jwt_jwks_uris": "classic native JWT does not read it either (Tyk OAS jwksURIs does): list the URLs in jwt_source",
}
NO_TWIN_OAS: Mapping[str, str] = {
    "skipKid": _SKIP_KID, "clientBaseField": _CLIENT_POLICY, "idpClientIdMappingDisabled": _CLIENT_ID,
    "allowedSubjects": "write it as custom_claim_validation on sub",
}
# Tyk OAS native JWT (server.authentication.securitySchemes.<name>) fields and their config_data twins.
OAS_NATIVE_KEYS = {
    "source": "jwt_source", "jwksURIs": "jwt_source (a list) / jwks_cache_ttl",
    "signingMethod": "jwt_signing_method", "identityBaseField": "jwt_identity_base_field",
    "subjectClaims": "jwt_identity_base_field (a list)", "policyFieldName": "jwt_policy_field_name",
    "basePolicyClaims": "jwt_policy_field_name (a list)", "defaultPolicies": "jwt_default_policies",
    "allowedIssuers": "issuer", "allowedAudiences": "audience", "scopes": "jwt_scope_claim_name / jwt_scope_to_policy_mapping",
    "expiresAtValidationSkew": "jwt_expires_at_validation_skew", "issuedAtValidationSkew": "jwt_issued_at_validation_skew",
    "notBeforeValidationSkew": "jwt_not_before_validation_skew",
    "jtiValidation": "require_jti", "customClaimValidation": "custom_claim_validation",
    "header": "auth_header_name / disable_header", "query": "use_param / param_name",
    "cookie": "use_cookie / cookie_name",
}
Fetch = Callable[[str, float, int], bytes]


class UsageError(Exception):
    """Bad input to the command itself (exit 2)."""


@dataclass(frozen=True)
class ProofRequest:
    """``--dpop-proof``: the token comes as ``Authorization: DPoP <token>`` with this proof, on a
    request of ``method`` to ``url`` (the URL the client calls)."""

    proof: str = field(repr=False)
    method: str = "GET"
    url: str = ""

    def place(self, request: MiniRequestObject, config: ApiConfig) -> None:
        """The request as the gateway would send it: behind dpop_base_url, the path after it."""
        parts = _split(self.url)
        path = parts.path or "/"
        base = config.dpop.base_url if config.dpop is not None else ""
        normalized = dpoplib.normalize_url(self.url) or ""
        if base and normalized.startswith(base + "/"):
            path = normalized[len(base):]
        request.headers[dpoplib.DPOP_HEADER] = self.proof
        request.headers["Host"] = parts.netloc
        request.scheme = parts.scheme
        request.method = self.method
        request.request_uri = request.url = path + (f"?{parts.query}" if parts.query else "")


# -- where the configuration comes from ----------------------------------------------------------------


@dataclass
class ApiSource:
    kind: str  # classic | oas | config_data | environment
    origin: str
    api_id: str = ""
    org_id: str = ""
    # config_data as the API definition holds it, and as the gateway would send it: either may
    # hold an HMAC secret, so neither is in a repr
    data: dict[str, Any] | None = field(default=None, repr=False)
    raw_config: str | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)
    # The auth hook name the definition itself gives the gateway ("" when it gives none), and the
    # bundle it loads instead ("" when none): a bundle's manifest replaces the definition's hooks.
    auth_hook: str = ""
    auth_hook_field: str = ""
    bundle: str = ""


def _go_number(value: float | int) -> float | int:
    """A JSON number as the gateway re-marshals it: through float64, a whole one below 1e21 written
    without a fraction (5.0 is 5; 9007199254740993 is 9007199254740992; 1e21 stays 1e+21)."""
    as_float = float(value)
    return int(as_float) if as_float.is_integer() and abs(as_float) < 1e21 else as_float


def _go_numbers(value: Any) -> Any:
    """Every number in ``value`` as the gateway re-marshals it (iteratively: config can nest deep)."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, bool):
            continue
        if isinstance(item, (int, float)):
            container[key] = _go_number(item)
        elif isinstance(item, dict):
            copy = dict(item)
            container[key] = copy
            stack.extend((copy, k) for k in copy)
        elif isinstance(item, list):
            copy_list = list(item)
            container[key] = copy_list
            stack.extend((copy_list, i) for i in range(len(copy_list)))
    return root[0]


def gateway_json(value: Any) -> str:
    """config_data as the gateway's json.Marshal sends it: compact, sorted keys, <>& escaped."""
    try:
        text = json.dumps(_go_numbers(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    except (RecursionError, ValueError) as exc:
        raise UsageError(f"config_data cannot be written as JSON: {type(exc).__name__}") from None
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def read_json(path: str, what: str) -> Any:
    """A JSON file given on the command line; UsageError names what it was meant to be."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{what} {path} is not valid JSON: {exc}") from None


def _with_data(source: ApiSource, data: Any, enabled: bool) -> ApiSource:
    if not isinstance(data, dict):
        if data is not None:
            raise UsageError(f"{source.origin}: config_data must be a JSON object")
        data = {}
    source.data = data
    source.raw_config = gateway_json(data) if enabled and data else None
    if not enabled and data:
        source.notes.append("config_data is disabled on this API: the gateway sends none, so the server-wide "
                            "environment defaults (AUTH0_DOMAIN, ...) apply")
    return source


def load_api(path: str) -> ApiSource:
    """A classic API definition (``config_data``) or a Tyk OAS one (``x-tyk-api-gateway``); a
    Dashboard export (``GET /api/apis/{id}``) wraps the classic one in ``api_definition``."""
    document = read_json(path, "API definition")
    if not isinstance(document, dict):
        raise UsageError(f"API definition {path} is not a JSON object")
    if isinstance(document.get("api_definition"), dict) and "api_id" not in document:
        document = document["api_definition"]
    tyk = document.get("x-tyk-api-gateway")
    if isinstance(tyk, dict):
        return _load_oas(path, tyk)
    source = ApiSource(kind="classic", origin=path, api_id=str(document.get("api_id", "")),
                       org_id=str(document.get("org_id", "")))
    notes = source.notes
    if document.get("use_keyless"):
        notes.append("use_keyless is true: the gateway never calls the auth hook on this API")
    if not (document.get("enable_coprocess_auth") or document.get("custom_plugin_auth_enabled")):
        notes.append("neither enable_coprocess_auth nor custom_plugin_auth_enabled is true: the auth hook is "
                     "not called (the API falls back to standard token auth)")
    if document.get("enable_jwt"):
        notes.append("enable_jwt is true: Tyk's native JWT middleware runs as well as the plugin; turn it off "
                     "once the plugin does the authentication (`tyk-auth0-plugin migrate` rewrites the definition)")
    data = document.get("config_data")
    jwt_auth = "auth_configs.jwt." if "jwt" in _object(document.get("auth_configs")) else "auth."
    for native, key in sorted(_NATIVE_KEYS.items()):
        native = native.replace("auth_configs.jwt.", jwt_auth)  # native JWT reads the old `auth` without it
        value = _native_value(document, native)
        if native.endswith(".auth_header_name") and isinstance(value, str) and value.lower() == "authorization":
            continue  # the default, which the plugin reads too
        if value not in (None, "", [], {}, 0) and not (isinstance(data, dict) and key in data):
            notes.append(f"native setting {native} is ignored by the plugin: put it in config_data as {key!r} "
                         "(docs/migration.md)")
    notes.extend(_no_twin_notes(document, NO_TWIN_CLASSIC, ""))
    bundle = document.get("custom_middleware_bundle")
    name = _object(_object(document.get("custom_middleware")).get("auth_check")).get("name")
    _hook_source(source, bundle if not document.get("custom_middleware_bundle_disabled") else None,
                 name, "custom_middleware.auth_check.name")
    return _with_data(source, data, not document.get("config_data_disabled", False))


def _hook_source(source: ApiSource, bundle: Any, name: Any, where: str) -> None:
    """Where the gateway takes the auth hook's name from: the bundle when the API loads one (its
    manifest's custom_middleware replaces the definition's), else the definition's own field."""
    if isinstance(bundle, str) and bundle:
        source.bundle = bundle
    elif isinstance(name, str) and name:
        source.auth_hook, source.auth_hook_field = name, where


def _no_twin_notes(section: Mapping[str, Any], fields: Mapping[str, str], where: str) -> list[str]:
    return [f"native setting {where}{name} has no twin in the plugin: {meaning} (docs/migration.md)"
            for name, meaning in fields.items() if section.get(name) not in (None, "", [], {}, 0, False)]


def _native_value(document: dict[str, Any], name: str) -> Any:
    """A classic definition's field; a dotted name walks nested objects (auth_configs.jwt.use_param)."""
    value: Any = document
    for part in name.split("."):
        value = _object(value).get(part)
    return value


def _load_oas(path: str, tyk: dict[str, Any]) -> ApiSource:
    info: dict[str, Any] = tyk["info"] if isinstance(tyk.get("info"), dict) else {}
    source = ApiSource(kind="oas", origin=path, api_id=str(info.get("id", "")), org_id=str(info.get("orgId", "")))
    auth = _object(_object(tyk.get("server")).get("authentication"))
    custom = auth.get("custom") if isinstance(auth, dict) else None
    if not (isinstance(auth, dict) and auth.get("enabled") and isinstance(custom, dict) and custom.get("enabled")):
        source.notes.append("server.authentication.custom is not enabled: the gateway never calls the auth hook")
    schemes = auth.get("securitySchemes") if isinstance(auth, dict) else None
    for name, scheme in sorted((schemes or {}).items()) if isinstance(schemes, dict) else ():
        if isinstance(scheme, dict) and scheme.get("enabled") and any(k in scheme for k in OAS_NATIVE_KEYS):
            fields = ", ".join(f"{k} -> {OAS_NATIVE_KEYS[k]}" for k in OAS_NATIVE_KEYS if k in scheme)
            source.notes.append(f"native JWT security scheme {name!r} is enabled: Tyk's JWT middleware runs as well "
                                f"as the plugin; its settings go to config_data as {fields} (docs/migration.md; "
                                "`tyk-auth0-plugin migrate` rewrites the definition)")
            if scheme.get("basePolicyClaims") and not scheme.get("policyFieldName"):
                source.notes.append(f"security scheme {name!r} has basePolicyClaims but no policyFieldName: native JWT "
                                    "then takes no policy from the token, where jwt_policy_field_name does")
        if isinstance(scheme, dict):
            source.notes.extend(_no_twin_notes(scheme, NO_TWIN_OAS, f"securitySchemes.{name}."))
    plugin_config = _object(_object(_object(tyk.get("middleware")).get("global")).get("pluginConfig"))
    if plugin_config.get("driver") not in (None, "grpc"):
        source.notes.append(f"pluginConfig.driver is {plugin_config.get('driver')!r}: this plugin needs 'grpc'")
    bundle = _object(plugin_config.get("bundle"))
    _hook_source(source, bundle.get("path") if bundle.get("enabled") else None,
                 _object(_object(custom).get("config")).get("functionName"),
                 "server.authentication.custom.config.functionName")
    data = plugin_config.get("data") or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: pluginConfig.data must be an object")
    return _with_data(source, data.get("value"), bool(data.get("enabled", False)))


def _object(value: Any) -> dict[str, Any]:
    """One level of an API definition: an object, or empty for anything else (absent, null, a list)."""
    return value if isinstance(value, dict) else {}


def load_config_data(value: str) -> ApiSource:
    """``--config-data``: inline JSON or a file holding the config_data object."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--config-data is not valid JSON: {exc}") from None
        return _with_data(ApiSource(kind="config_data", origin="--config-data"), data, True)
    return _with_data(ApiSource(kind="config_data", origin=value), read_json(value, "config_data file"), True)


GATEWAY_HASH_ENV = "TYK_GW_HASHKEYFUNCTION"  # the gateway's own variable; it wins over tyk.conf


def load_gateway_hash_function(path: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """``--tyk-conf``: the gateway's ``hash_key_function`` and where it came from. The gateway's
    environment variable wins over the file, as it does in the gateway, when this shell has it."""
    conf = read_json(path, "tyk.conf")
    if not isinstance(conf, dict):
        raise UsageError(f"tyk.conf {path} must hold a JSON object")
    if GATEWAY_HASH_ENV in environ:
        return environ[GATEWAY_HASH_ENV], GATEWAY_HASH_ENV  # read as is: the gateway trims no string setting
    value = conf.get("hash_key_function", "")
    if not isinstance(value, str):
        raise UsageError(f"tyk.conf {path}: hash_key_function must be a string")
    return value, path


def hash_function_notes(config: ApiConfig, gateway: str, origin: str) -> list[str]:
    """Whether this API's session key ids are the ones native JWT derives under the gateway's setting.
    A mismatch refuses nothing, so only this comparison (or the quotas) shows it."""
    mine = config.hash_key_function
    if key_format(mine) == key_format(gateway):
        return [f"hash_key_function {mine!r} keys sessions as the gateway's {gateway!r} ({origin}) does"]
    return [f"hash_key_function is {mine!r} here but {gateway!r} in {origin}: the plugin keeps each subject's "
            f"session under another key than native JWT, so their quotas and rate limits are counted apart and "
            f"the Gateway API finds no key under native's id for subjects only the plugin saw; set "
            f"hash_key_function (config_data) or TYK_HASH_KEY_FUNCTION (plugin server) to {gateway!r}"]


# -- the report ----------------------------------------------------------------------------------------


@dataclass
class KeySets:
    """The API's key sets as check fetched them: each URL's body, or why it could not be had."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Step:
    name: str
    status: str  # pass | fail | skip
    detail: str
    hints: list[str] = field(default_factory=list)
    reached: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Report:
    source: ApiSource
    org_id: str
    now: float
    config: ApiConfig | None = None
    config_error: ConfigurationError | None = None
    notes: list[str] = field(default_factory=list)
    discovery: dict[str, Any] | None = None
    jwks: dict[str, Any] | None = None
    token: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    response: dict[str, Any] | None = None
    session: dict[str, Any] | None = None
    failed_step: str | None = None  # the check whose refusal the client sees
    verdict: str = "no_token"  # pass | refused | config_error | no_token | keys_unavailable
    exit_code: int = EXIT_PASS

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "api": {"source": self.source.kind, "origin": self.source.origin, "api_id": self.source.api_id,
                    "org_id": self.org_id},
            "config": _config_summary(self.config) if self.config else None,
            "config_error": ({"key": self.config_error.key, "problem": self.config_error.problem}
                             if self.config_error else None),
            "notes": self.source.notes + self.notes,
            "discovery": self.discovery,
            "jwks": self.jwks,
            "token": self.token,
            "steps": [s.as_dict() for s in self.steps],
            "failed_step": self.failed_step,
            "response": self.response,
            "session": self.session,
        }


def _config_summary(config: ApiConfig) -> dict[str, Any]:
    return {
        "jwks_url": config.key_source.jwks_url,
        "jwks_urls": list(config.key_source.jwks_urls),
        "static_key": config.key_source.static_key is not None,
        "issuers": list(config.issuers),
        "audiences": list(config.audiences),
        "signing_method": config.signing_method,
        "allowed_algorithms": sorted(config.allowed_algorithms),
        "identity_field": config.identity_field,
        "policy_field": config.policy_field,
        "default_policies": list(config.default_policies),
        "scope_claim": config.scope_claim,
        "scope_to_policy": dict(config.scope_to_policy),
        "skew": {"exp": config.exp_skew, "iat": config.iat_skew, "nbf": config.nbf_skew},
        "max_token_lifetime": config.max_token_lifetime,
        "id_extractor_ttl": config.id_extractor_ttl,
        "hash_key_function": config.hash_key_function,
        "dpop": None if config.dpop is None else {
            "required": config.dpop.required, "algorithms": sorted(config.dpop.algorithms),
            "iat_offset": config.dpop.iat_offset, "iat_leeway": config.dpop.iat_leeway,
            "base_url": config.dpop.base_url or None},
    }


# -- time formatting -------------------------------------------------------------------------------------


def iso(value: Any) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} d"


def relative(claim: str, value: Any, now: float) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{claim} is not a number ({json.dumps(value)[:40]})"
    if value == 0:
        return f"{claim} is 0 (ignored, as the gateway ignores it)"
    if not -(2**63) <= float(value) < 2**63:
        return f"{claim} is outside the int64 seconds Go reads it as (so it counts as long past)"
    delta = int(value) - int(now)
    if claim == "exp":
        return f"expires in {span(delta)}" if delta > 0 else f"expired {span(delta)} ago"
    if claim == "iat":
        return f"issued {span(delta)} ago" if delta <= 0 else f"issued in {span(delta)}, in the future"
    return f"valid since {span(delta)} ago" if delta <= 0 else f"not valid for another {span(delta)}"


# -- the checker -------------------------------------------------------------------------------------------


class Checker:
    """Runs one check: configuration, discovery, JWKS, then the token through the real auth check."""

    def __init__(self, fetch: Fetch = http_fetch, clock: Callable[[], float] = time.time, timeout: float = 5.0,
                 environ: Mapping[str, str] | None = None, max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES) -> None:
        self.fetch = fetch
        self.clock = clock
        self.timeout = timeout
        self.max_token_bytes = max_token_bytes
        self.environ = os.environ if environ is None else environ
        self.policy_index: PolicyIndex | None = None
        self.served: ServedHooks | None = None

    def run(self, source: ApiSource, token: str | None, org_id: str | None = None,
            discovery: bool = True, policies_path: str | None = None,
            gateway_hash: tuple[str, str] | None = None, served: ServedHooks | None = None,
            proof: ProofRequest | None = None) -> Report:
        """``served``: the hook names of the plugin's manifests, which the API's own auth hook name
        is checked against (when the definition gives one)."""
        report = Report(source=source, org_id=source.org_id if org_id is None else org_id, now=self.clock())
        self.policy_index = None
        self.served = served
        self._check_hook(report)
        if policies_path:
            self.policy_index = PolicyIndex(from_path(Path(policies_path)))
            if not self.policy_index.refresh():
                report.notes.append(f"no policy could be read from {policies_path}: policy ids are not checked")
        if source.raw_config is None and source.kind == "config_data":
            source.notes.append("config_data is empty: the server-wide environment defaults apply")
        try:
            defaults = env_config_data(self.environ)
            if defaults:
                parse_config_data(None, defaults, self.environ)
        except ConfigurationError as exc:  # serve checks the environment before it listens
            report.config_error = exc
            report.notes.append(f"{variable_of(exc.key)} is server-wide: serve refuses to start with it as it is, "
                                "so no API that uses the plugin is served until it is fixed")
            report.verdict, report.exit_code = "config_error", EXIT_USAGE
            return report
        try:
            report.config = parse_config_data(source.raw_config, defaults, self.environ)
        except ConfigurationError as exc:
            report.config_error = exc
            report.notes += _config_error_hints(exc, source.data or {})
            if report.failed_step is None:  # a hook name the plugin does not serve is refused before config_data is read
                report.response = _response(exc.status, exc.message)
                report.verdict, report.exit_code = "config_error", EXIT_USAGE
            return report
        config = report.config
        report.notes += _config_notes(config, source.data or {})
        if gateway_hash is not None:
            report.notes += hash_function_notes(config, *gateway_hash)
        if not report.org_id:
            report.notes.append("no org id: pass --org-id (the API's org_id) to get the exact session key")
        if discovery:
            report.discovery = self._discovery(config)
        sets = self._jwks(config, report)
        if token is None:
            if report.jwks is not None and not report.jwks.get("ok") and report.failed_step is None:
                report.verdict, report.exit_code = "keys_unavailable", EXIT_REFUSED
            return report
        self._explain(report, token, config, sets, proof)
        return report

    # -- network ---------------------------------------------------------------------------------------

    def _get_json(self, url: str) -> tuple[Any, str | None]:
        try:
            body = self.fetch(url, self.timeout, _MAX_DOC_BYTES)
        except FetchError as exc:
            return None, str(exc)
        try:
            return json.loads(body), None
        except (ValueError, RecursionError):
            return None, "response is not JSON"

    def _discovery(self, config: ApiConfig) -> dict[str, Any] | None:
        issuer = next((i for i in config.issuers if _fetchable(i)), None)
        if issuer is None:
            return None
        url = issuer + ("" if issuer.endswith("/") else "/") + ".well-known/openid-configuration"
        document, error = self._get_json(url)
        result: dict[str, Any] = {"url": url, "ok": error is None and isinstance(document, dict)}
        if error is not None or not isinstance(document, dict):
            result["error"] = error or "not a JSON object"
            return result
        result["issuer"] = document.get("issuer")
        result["jwks_uri"] = document.get("jwks_uri")
        problems = []
        if document.get("issuer") not in config.issuers:
            problem = f"the discovery document's issuer is {document.get('issuer')!r}, not in the accepted {list(config.issuers)}"
            if isinstance(document.get("issuer"), str) and any(
                    i.rstrip("/") == document["issuer"].rstrip("/") for i in config.issuers):
                problem += ": they differ only by the trailing slash, and Auth0 issuers end with a slash"
            problems.append(problem)
        urls = config.key_source.jwks_urls
        if urls and document.get("jwks_uri") and document["jwks_uri"] not in urls:
            problems.append(f"the tenant publishes its keys at {document['jwks_uri']}, but the API fetches "
                            f"{', '.join(urls)}")
        result["problems"] = problems
        return result

    def _jwks(self, config: ApiConfig, report: Report) -> KeySets:
        """Each of the API's key sets, fetched once: the verdict and the explanation both use them."""
        sets = KeySets()
        entries = [self._jwks_entry(url, sets) for url in config.key_source.jwks_urls]
        if not entries:
            report.jwks = None
        elif len(entries) == 1:
            report.jwks = entries[0]
        else:
            report.jwks = {"ok": any(e["ok"] for e in entries), "sets": entries}
        return sets

    def _jwks_entry(self, url: str, sets: KeySets) -> dict[str, Any]:
        try:
            body = self.fetch(url, self.timeout, JwksSettings().max_bytes)
            keys = parse_jwks(body, JwksSettings().max_keys)
        except FetchError as exc:
            sets.errors[url] = str(exc)
            return {"url": url, "ok": False, "error": str(exc), "keys": []}
        sets.bodies[url] = body
        entries = []
        verified_with: set[str] = set()
        for jwk in keys_member(body):  # a list: parse_jwks has read the same document
            if isinstance(jwk, dict):
                kid = entry_kid(jwk)
                # As the server reads the set: an entry it skips, or one after the first usable key
                # with its kid, never verifies, whatever its kid.
                usable = isinstance(kid, str) and kid in keys and kid not in verified_with and entry_key(jwk) is not None
                if usable:
                    verified_with.add(kid)
                entries.append({"kid": kid, "kty": jwk.get("kty"), "alg": jwk.get("alg"), "use": jwk.get("use"),
                                "usable": usable})
        return {"url": url, "ok": True, "keys": entries}

    # -- the token -------------------------------------------------------------------------------------

    def _explain(self, report: Report, token: str, config: ApiConfig, sets: KeySets,
                 proof: ProofRequest | None = None) -> None:
        now = report.now
        reply = self._dispatch(report, token, config, sets, proof)
        overrides = reply.request.return_overrides
        walk = _Walk(config, report, sets, self.policy_index, self.max_token_bytes, proof)
        if report.failed_step == _HOOK_STEP:
            walk.failure = UnknownHook()  # the router refuses before any other check
        walk.run(token, report.org_id)
        if overrides.response_code >= 400:
            report.response = _response(overrides.response_code, overrides.response_error)
            report.verdict, report.exit_code = "refused", EXIT_REFUSED
        else:
            report.verdict, report.exit_code = "pass", EXIT_PASS
            report.response = {"status": None, "passes": True}
            session = reply.session
            report.session = {
                "policies": list(session.apply_policies),
                "key_id": reply.metadata.get("token", ""),
                "alias": session.alias,
                "expires": session.expires or None,
                "expires_iso": iso(session.expires) if session.expires else None,
                "expires_relative": relative("exp", session.expires, now) if session.expires else None,
                "deadline": session.id_extractor_deadline,
                "deadline_iso": iso(session.id_extractor_deadline),
                "metadata": dict(session.metadata),
            }
        self._access_rights(report, reply)
        expected = walk.failure
        explained = (expected.status, expected.message) if expected is not None else None
        answered = (overrides.response_code, overrides.response_error) if overrides.response_code >= 400 else None
        if explained != answered:
            report.notes.append(f"the step-by-step explanation ({expected.message if expected else 'pass'}) and the "
                                f"verdict ({answered or 'pass'}) disagree: please report this")

    def _access_rights(self, report: Report, reply: Object) -> None:
        """After the plugin, the gateway checks the session's access rights for this API."""
        index, api_id = self.policy_index, report.source.api_id
        if report.verdict != "pass" or index is None or not api_id:
            return
        if index.grants(report.org_id, list(reply.session.apply_policies), api_id) is False:
            report.steps.append(Step("access rights", "fail",
                                     f"none of {', '.join(reply.session.apply_policies)} grants API {api_id!r}",
                                     ["the gateway applies this after the plugin: add the API to the policy's "
                                      "access rights, or give the token another policy"]))
            report.failed_step = "access rights"
            report.response = _response(403, "Access to this API has been disallowed")
            report.verdict, report.exit_code = "refused", EXIT_REFUSED

    def _dispatch(self, report: Report, token: str, config: ApiConfig, sets: KeySets,
                  proof: ProofRequest | None = None) -> Object:
        """The real auth check, on the key sets fetched above, at the same instant."""

        def fetched(url: str, timeout: float, max_bytes: int) -> bytes:
            if url not in sets.bodies:
                raise FetchError(sets.errors.get(url, "not fetched"))
            return sets.bodies[url]

        clock = lambda: report.now  # noqa: E731 - one instant for the verdict and the explanation
        jwks = JwksCache(JwksSettings(fetch_timeout=self.timeout), fetcher=fetched, clock=time.monotonic)
        verifier = Verifier(jwks, clock=clock, max_token_bytes=self.max_token_bytes)
        authenticator = Authenticator(verifier, ConfigStore(defaults=env_config_data(self.environ)),
                                      cache_size=1, clock=clock, policy_index=self.policy_index)
        called, serving = ((report.source.auth_hook, self.served.auth_checks)
                           if self.served is not None and report.source.auth_hook else (_HOOK, (_HOOK,)))
        obj = Object(hook_type=HookType.CustomKeyCheck, hook_name=called)
        obj.request.url = "/"
        obj.request.method = "GET"
        if token:
            _place(obj, config.token_source, token, dpop_scheme=proof is not None)
        if proof is not None:
            proof.place(obj.request, config)
        obj.request.return_overrides.response_code = -1
        obj.spec["OrgID"] = report.org_id
        obj.spec["APIID"] = report.source.api_id
        if report.source.raw_config is not None:
            obj.spec["config_data"] = report.source.raw_config
        return HookRouter(serving, authenticator.authenticate).dispatch(obj)

    def _check_hook(self, report: Report) -> None:
        """The first thing the plugin checks: is the hook name the gateway calls one it serves?"""
        source, served = report.source, self.served
        if source.bundle:
            report.notes.append(f"the auth hook's name is in bundle {source.bundle!r}, which check does not read: "
                                "`tyk-auth0-plugin bundle verify BUNDLE --server-manifest FILE` compares it with "
                                "the plugin's manifests")
        if not source.auth_hook or served is None:
            return
        manifests = ", ".join(map(str, served.manifests))
        shown = ", ".join(repr(name) for name in served.auth_checks)
        if source.auth_hook in served.auth_checks:
            report.steps.append(Step(_HOOK_STEP, "pass", f"{source.auth_hook!r} ({source.auth_hook_field}) is served "
                                                         f"by the plugin's manifests ({manifests})"))
            return
        report.steps.append(Step(_HOOK_STEP, "fail",
                                 f"the gateway calls {source.auth_hook!r} ({source.auth_hook_field}); the plugin's "
                                 f"manifests ({manifests}) serve {shown}",
                                 ["the plugin refuses an auth call for any other name: serve a manifest naming "
                                  f"{source.auth_hook!r} beside the others (serve --manifest, repeatable), or name "
                                  "a served hook in the API definition"]))
        report.failed_step = _HOOK_STEP
        report.response = _response(UnknownHook().status, UnknownHook().message)
        report.verdict, report.exit_code = "refused", EXIT_REFUSED


def _split(url: str) -> SplitResult:
    """urlsplit for hints: a URL it cannot read (e.g. an unclosed IPv6 bracket) counts as empty."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises on a bad netloc
        return parts
    except ValueError:
        return urlsplit("")


def _custom_claim_hints(detail: str) -> list[str]:
    if "not present" in detail:
        return ["a path is claim names joined by dots, and a number picks a list entry: check the spelling "
                "against the token's claims above"]
    if "does not contain" in detail:
        return ["contains: an allowed string inside a string claim, an allowed value in a list claim; for any "
                "other claim only the last allowed value counts"]
    if "does not match" in detail:
        return ["exact_match: the whole value must equal an allowed one, type included (\"1\" is not 1)"]
    return ["the claim is null: required wants a value"]


def _place(obj: Object, source: TokenSource, token: str, dpop_scheme: bool = False) -> None:
    """Put the token where a client of this API would: its header, else its parameter, else its cookie."""
    if source.header is not None and dpop_scheme:
        obj.request.headers[source.header] = "DPoP " + dpoplib.split_authorization(token)[0]
    elif source.header is not None:
        obj.request.headers[source.header] = token if _has_bearer(token) else f"Bearer {token}"
    elif source.param is not None:
        obj.request.params[source.param] = token
    elif source.cookie is not None:
        obj.request.headers["Cookie"] = f"{source.cookie}={token}"


def _has_bearer(token: str) -> bool:
    return token[:7].upper() == "BEARER "


def _fetchable(url: str) -> bool:
    parts = _split(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme == "http" and parts.hostname:
        if parts.hostname == "localhost":
            return True
        try:
            return ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            return False
    return False


def _response(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "body": {"error": message}}


# -- the step-by-step walk ---------------------------------------------------------------------------------


class _Walk:
    """The pipeline's checks called one at a time, in its order, recording each outcome."""

    def __init__(self, config: ApiConfig, report: Report, sets: KeySets,
                 policy_index: PolicyIndex | None = None, max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
                 proof: ProofRequest | None = None) -> None:
        self.proof = proof
        self.config = config
        self.max_token_bytes = max_token_bytes
        self.policy_index = policy_index
        self.report = report
        self.sets = sets
        self.failure: AuthError | None = None
        self.data = report.source.data or {}

    def step(self, name: str, error: AuthError | None, detail: str, hints: Sequence[str] = (),
             counts: bool = True) -> bool:
        reached = self.failure is None
        status = "pass" if error is None else "fail"
        self.report.steps.append(Step(name, status, detail, list(hints), reached))
        if error is not None and reached and counts:
            self.failure = error
            self.report.failed_step = name
        return error is None

    def skip(self, name: str, detail: str = "not reached") -> None:
        self.report.steps.append(Step(name, "skip", detail, [], False))

    def run(self, token: str, org_id: str) -> None:
        config, now = self.config, self.report.now
        source = config.token_source
        where = "" if source is DEFAULT_SOURCE else f" (this API reads it from {source.describe()})"
        if not token:
            self.step("authorization", MissingToken(), f"no token: the request carries none{where}",
                      ["send 'Authorization: Bearer <access token>'" if source is DEFAULT_SOURCE
                       else f"send the access token in {source.describe()}"])
            for name in ("parse", "algorithm", "key", "signature"):
                self.skip(name)
            return
        if self.proof is not None:
            raw = dpoplib.split_authorization(token)[0]
            label = "Authorization: DPoP <token>, DPoP: <proof>"
        else:
            raw = tokenlib.strip_bearer(token if _has_bearer(token) else f"Bearer {token}")
            label = "Authorization: Bearer <token>" if source is DEFAULT_SOURCE else "token given"
        self.step("authorization", None, f"{label}{where} (the token itself is never printed)")
        limit = self.max_token_bytes
        if not self.step("size", InvalidToken() if len(raw) > limit else None, f"{len(raw)} bytes (limit {limit})",
                         ["a token this large is refused before parsing (serve --max-token-bytes)"]
                         if len(raw) > limit else ()):
            return
        try:
            parsed = tokenlib.parse(raw)
        except InvalidToken as exc:
            self.step("parse", exc, f"malformed: {exc.detail}", _parse_hints(raw))
            return
        self.step("parse", None, "three base64url segments, JSON header and payload")
        self.report.token = _token_summary(parsed, now)

        alg = parsed.alg
        family = next((m for m, algs in SIGNING_METHODS.items() if alg in algs), None)
        if alg in config.allowed_algorithms:
            self.step("algorithm", None, f"{alg} is admitted ({config.signing_method} family)")
        else:
            self.step("algorithm", UnexpectedSigningMethod(alg),
                      f"{alg} is not admitted: the API allows {' '.join(sorted(config.allowed_algorithms))}",
                      _alg_hints(alg, family, config))

        if self.failure is None:
            key = self._key(parsed.header, parsed.claims)
            if key is not None:
                self._signature(parsed, key)
            else:
                self.skip("signature")
        else:
            self.skip("key")
            self.skip("signature")

        try:
            check_header(parsed.header)
            self.step("header", None, f"typ {parsed.header.get('typ', '(absent)')}, no crit")
        except InvalidToken as exc:
            self.step("header", exc, exc.detail, _header_hints(parsed.header))

        self._times(parsed.claims, now)
        self._claims(parsed.claims, org_id)
        if config.dpop is not None:
            self._dpop(config.dpop, parsed.claims, raw)

    def _dpop(self, settings: dpoplib.DPoPSettings, claims: Mapping[str, Any], raw: str) -> None:
        """The DPoP step the server runs after the policies (only where the API turns DPoP on)."""
        jkt = dpoplib.confirmation(claims)
        proof = self.proof
        if proof is None:
            if jkt is not None:
                self.step("dpop", DPoPBoundAsBearer(settings.algs), f"the token is DPoP-bound (cnf.jkt {jkt!r}) "
                          "but came as a bearer token", [_DPOP_SEND_HINT, _DPOP_CHECK_HINT])
            elif settings.required:
                self.step("dpop", DPoPRequired(settings.algs), "the token has no cnf.jkt, and the API sets "
                          "dpop: required", ["request the token from Auth0 with a DPoP proof header (Auth0 then "
                                             "answers token_type DPoP and binds the token to the proof's key)"])
            else:
                self.step("dpop", None, "no cnf.jkt: a bearer token, which dpop: allowed admits")
            return
        if jkt is None:
            self.step("dpop", DPoPTokenNotBound(settings.algs), "the token has no cnf.jkt, but came with the DPoP "
                      "scheme", ["request the token from Auth0 with a DPoP proof header, or send it as Bearer"
                                 + ("" if settings.required else " (dpop: allowed admits bearer tokens)")])
            return
        request = MiniRequestObject()
        proof.place(request, self.config)
        url = dpoplib.request_url(request, settings)
        where = f"{proof.method} {dpoplib.normalize_url(url) or url}"
        try:
            thumbprint = dpoplib.check_proof(proof.proof, settings, proof.method, url, self.report.now,
                                             access_token=raw, jkt=jkt, remember=False)
        except DPoPRefused as exc:
            self.step("dpop", exc, f"{exc.detail} ({where})",
                      _dpop_hints(exc, settings, where, jkt, _proof_claims(proof.proof), self.report.now))
            return
        self.step("dpop", None, f"the proof for {where} is signed by the key the token is bound to ({thumbprint}); "
                  "it is accepted once, and the gateway never reuses this session")

    def _key(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> VerificationKey | None:
        source = self.config.key_source
        if not source.jwks_urls:
            assert source.static_key is not None
            if self.config.signing_method == "hmac":
                self.step("key", None, "the HMAC secret from jwt_source")
                return source.static_key
            key = load_static_public_key(source.static_key)
            self.step("key", None, f"the static {type(key).__name__.lstrip('_')} key from jwt_source")
            return key
        kid = header.get("kid")
        if not isinstance(kid, str):
            self.step("key", InvalidToken("kid is not a string"),
                      "the token has no kid header" if kid is None else f"kid is not a string ({json.dumps(kid)[:40]})",
                      ["a JWKS holds several keys: the token's kid header picks one; Auth0 access tokens "
                       "always carry one"])
            return None
        several = len(source.jwks_urls) > 1
        published: list[str] = []
        skipped = False  # the kid is on an entry the server ignores
        for url in source.jwks_urls:  # the first set publishing the kid verifies, as in the server
            body = self.sets.bodies.get(url)
            keys = parse_jwks(body, JwksSettings().max_keys) if body is not None else {}
            if kid in keys:
                self.step("key", None, f"kid {kid!r} found in the JWKS" + (f" {url}" if several else ""))
                return keys[kid]
            published.extend(keys)
            skipped = skipped or (body is not None and any(
                isinstance(jwk, dict) and entry_kid(jwk) == kid for jwk in keys_member(body)))
        if self.sets.errors:
            url, error = next(iter(self.sets.errors.items()))
            self.step("key", KeysUnavailable("JWKS fetch failed"),
                      f"the JWKS{' ' + url if several else ''} could not be fetched: {error}",
                      ["the server answers every token 403 \"Key not authorized\" until it has fetched the key set "
                       "once; afterwards it keeps serving the last good set through outages",
                       f"check that the plugin host can reach {url}"])
            return None
        hints = [f"the JWKS publish{'' if several else 'es'} {', '.join(sorted(published)) or 'no usable key'}",
                 "the token comes from another tenant or environment, or its key was rotated out and revoked"]
        if skipped:
            hints.insert(1, "that entry is no RSA or EC signing key (e.g. use enc, an RSA key under 1024 bits), or "
                            "the gateway's JWK parser refuses it (e.g. an x5t that is not its certificate's "
                            "thumbprint, an x5c entry that is not a certificate)")
        iss = claims.get("iss")
        if isinstance(iss, str) and self.config.issuers and iss not in self.config.issuers:
            hints.append(f"the token's issuer is {iss!r}: it was not issued by the configured tenant")
        self.step("key", UnknownKey("kid not in JWKS"),
                  f"kid {kid!r} is only on a JWKS entry the server ignores" if skipped
                  else f"kid {kid!r} is not in the JWKS", hints)
        return None

    def _signature(self, parsed: tokenlib.ParsedToken, key: VerificationKey) -> None:
        try:
            signature = tokenlib.decode_segment(parsed.signature_b64)
        except InvalidToken as exc:
            self.step("signature", exc, "the signature segment is not base64url")
            return
        try:
            valid = verify_signature(parsed.alg, key, parsed.signing_input, signature)
        except KeyTypeMismatch:
            kind = "HMAC secret" if isinstance(key, bytes) else f"{type(key).__name__.lstrip('_')}"
            self.step("signature", InvalidToken("key cannot verify this algorithm"),
                      f"the key found is a {kind} and cannot check {parsed.alg}",
                      ["the key published under this kid is of another type than the token's alg"])
            return
        if valid:
            self.step("signature", None, f"verifies ({parsed.alg})")
            return
        hints = ["the token was altered after signing, or was signed by another key published under the same kid "
                 "(another tenant or environment)"]
        if self.config.signing_method == "hmac":
            hints += _hmac_hints(parsed, signature, self.data, self.report)
        self.step("signature", BadSignature("signature does not verify"), "the signature does not verify", hints)

    def _times(self, claims: Mapping[str, Any], now: float) -> None:
        config = self.config
        try:
            check_times(claims, now, config)
            verdict: AuthError | None = None
        except AuthError as exc:
            verdict = exc
        skews = {"exp": config.exp_skew, "iat": config.iat_skew, "nbf": config.nbf_skew}
        for claim in ("exp", "iat", "nbf"):
            if claim not in claims:
                self.step(claim, None, "absent (not checked)", ["tokens without exp never expire"] if claim == "exp" else (),
                          counts=False)
                continue
            try:
                check_times({claim: claims[claim]}, now, config)
                error = None
            except AuthError as exc:
                error = exc
            detail = relative(claim, claims[claim], now)
            if iso(claims[claim]):
                detail += f" ({iso(claims[claim])})"
            hints = []
            if skews[claim]:
                hints.append(f"with a tolerance of {skews[claim]} s (jwt_{_SKEW_NAMES[claim]}_validation_skew)")
            if error is not None:
                hints += _TIME_HINTS[claim]
            counts = verdict is not None and error is not None and type(error) is type(verdict)
            if error is not None and not counts and verdict is not None:
                hints.append(f"the gateway reports the last failing time check instead: {verdict.detail}")
            self.step(claim, error, detail, hints, counts=counts)
        if verdict is not None and self.failure is None:
            self.failure = verdict
        if config.max_token_lifetime:
            self._lifetime(claims, now, config.max_token_lifetime)

    def _lifetime(self, claims: Mapping[str, Any], now: float, limit: int) -> None:
        try:
            check_lifetime(claims, now, limit)
            error: AuthError | None = None
        except AuthError as exc:
            error = exc
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)) or not exp:
            self.step("lifetime", error, f"no exp, and the API sets max_token_lifetime {limit} s")
            return
        since, start = ("iat", float(iat)) if isinstance(iat, (int, float)) and iat else ("now", now)
        detail = f"{span(float(exp) - start)} from {since} to exp (max_token_lifetime {span(limit)})"
        hints = [f"in Auth0, set the API's Token Expiration to at most {limit} seconds, or raise max_token_lifetime"]
        self.step("lifetime", error, detail, hints if error is not None else ())

    def _claims(self, claims: Mapping[str, Any], org_id: str) -> None:
        config = self.config
        if config.issuers:
            try:
                check_issuer_and_audience(claims, dataclasses.replace(config, audiences=()))
                self.step("issuer", None, f"{claims.get('iss')!r} is accepted")
            except AuthError as exc:
                self.step("issuer", exc, exc.detail, _issuer_hints(claims.get("iss"), config.issuers))
        else:
            self.step("issuer", None, "not checked (no issuer configured)", counts=False)
        if config.audiences:
            try:
                check_issuer_and_audience(claims, dataclasses.replace(config, issuers=()))
                self.step("audience", None, f"matches {' or '.join(repr(a) for a in config.audiences)}")
            except AuthError as exc:
                self.step("audience", exc, exc.detail, _audience_hints(claims, config.audiences))
        else:
            self.step("audience", None, "not checked (no audience configured)", counts=False)
        if config.require_jti:
            if "jti" in claims:
                self.step("jti", None, "present (require_jti)")
            else:
                self.step("jti", JtiMissing(), "absent, and the API sets require_jti",
                          ["Auth0 adds jti only to RFC 9068 profile access tokens (the API's token dialect)"])
        if config.claim_rules:
            paths = ", ".join(rule.path for rule in config.claim_rules)
            try:
                check_custom_claims(claims, config.claim_rules)
                self.step("custom claims", None, f"every blocking rule passes ({paths})")
            except AuthError as exc:
                self.step("custom claims", exc, exc.detail, _custom_claim_hints(exc.detail))
        try:
            identity = claimlib.identity(claims, config.identity_field)
        except AuthError as exc:
            self.step("identity", exc, exc.message, _identity_hints(claims, config))
            self.skip("policies")
            return
        self.step("identity", None, _identity_origin(claims, config.identity_field, identity))
        index = self.policy_index
        base = policylib.base_policy(claims, config)
        refusal = index.base_refusal(org_id, base) if index else None
        if refusal is not None and base is not None:
            if index is not None and index.known(org_id, base.id):
                applied = ", ".join(base.applied or (base.id,))
                self.step("policies", refusal, f"{applied} grant no API: their access rights are empty",
                          [_GRANT_NOTHING_HINT])
            else:
                self.step("policies", refusal, f"base policy {base.id} is not among the gateway's policies",
                          [_missing_policies([base.id], org_id)])
            return
        try:
            policies = policylib.resolve(claims, config)
        except AuthError as exc:
            self.step("policies", exc, exc.message, _policy_hints(claims, config))
            return
        origin = _policy_origin(claims, config, policies)
        unknown = [p for p in policies if index is not None and index.known(org_id, p) is False]
        missing = _missing_policies(unknown, org_id)
        refusal = index.refusal(org_id, base, policies) if index else None
        if refusal is not None:
            if unknown:
                self.step("policies", refusal,
                          f"{', '.join(policies)} ({origin}): {', '.join(unknown)} not among the gateway's policies",
                          [missing])
            else:
                self.step("policies", refusal, f"{', '.join(policies)} ({origin}) grant no API: their access "
                          "rights are empty", [_GRANT_NOTHING_HINT])
            return
        checked = index is not None and all(index.known(org_id, p) for p in policies)
        if unknown:
            hints = [missing + "; with several policies the gateway skips an unknown one"]
        elif checked:
            hints = []
        else:
            hints = ["the gateway then applies these policies from its own store (same org); an id "
                     "it does not know gives 403 {\"error\": \"Forbidden\"} (--tyk-policies checks them here)"]
        self.step("policies", None, f"{', '.join(policies)} ({origin})" + (", all known to the gateway" if checked else ""),
                  hints)
        if self.failure is None:
            self.step("session", None, f"key {key_id(org_id, identity, config.hash_key_function)}")


_DPOP_SEND_HINT = "send it as 'Authorization: DPoP <token>' with a fresh proof in the DPoP header of each request"
_DPOP_CHECK_HINT = "check a proof with --dpop-proof, and the request's --method and --url"


def _proof_claims(proof: str) -> dict[str, Any]:
    """The proof's claims as it states them, for hints (never its signature); empty when unreadable."""
    try:
        return tokenlib.json_segment(proof.split(".")[1])
    except (InvalidToken, IndexError):
        return {}


def _dpop_hints(error: DPoPRefused, settings: dpoplib.DPoPSettings, where: str, jkt: str,
                claims: Mapping[str, Any], now: float) -> list[str]:
    if isinstance(error, DPoPProofUrl):
        return [f"the proof names {str(claims.get('htu'))[:200]!r}; its htu must name {where.partition(' ')[2]} "
                "(query and fragment aside); behind a proxy that changes the scheme, host or path prefix, set "
                "dpop_base_url to the URL clients call"]
    if isinstance(error, DPoPProofMethod):
        return [f"the proof names the method {str(claims.get('htm'))[:20]!r}: make a proof per request, for its method"]
    if isinstance(error, DPoPProofTime):
        return [f"the proof's iat is {relative('iat', claims.get('iat'), now)}",
                f"a proof is accepted from {settings.iat_leeway} s before its iat (dpop_iat_leeway) to "
                f"{settings.iat_offset} s after it (dpop_iat_offset): make a fresh one per request, and check the clocks"]
    if isinstance(error, DPoPProofTokenHash):
        return ["ath is the SHA-256 of this very token: the proof was made for another token"]
    if isinstance(error, DPoPKeyMismatch):
        return [f"the token is bound to the key with thumbprint {jkt!r}: the client must sign its proofs with the "
                "key it requested the token with"]
    if isinstance(error, DPoPProofAlgorithm):
        return [f"the API accepts proofs signed with {settings.algs} (dpop_allowed_algorithms)"]
    return ["RFC 9449 section 4.2 says what a proof holds: typ dpop+jwt, an asymmetric alg, the public jwk, "
            "and the claims jti, htm, htu, iat and ath"]


_GRANT_NOTHING_HINT = ("a policy grants the APIs listed in its access_rights; give it this API "
                       "(or point the token at a policy that has it)")


def _missing_policies(ids: Sequence[str], org_id: str) -> str:
    return (f"the gateway has no policy {', '.join(repr(i) for i in ids)} in org {org_id!r} "
            "(policies are looked up by org id and policy id)")


_SKEW_NAMES = {"exp": "expires_at", "iat": "issued_at", "nbf": "not_before"}
_TIME_HINTS = {
    "exp": ["get a new access token (Auth0 access tokens live 24 h unless the API sets another lifetime)"],
    "iat": ["the token says it was issued in the future: this machine's clock or the IdP's is off; "
            "jwt_issued_at_validation_skew tolerates a few seconds of drift"],
    "nbf": ["the token is not valid yet: wait, or check the clocks; jwt_not_before_validation_skew tolerates drift"],
}


def _token_summary(parsed: tokenlib.ParsedToken, now: float) -> dict[str, Any]:
    header = parsed.header
    times = {c: {"value": parsed.claims[c], "iso": iso(parsed.claims[c]), "relative": relative(c, parsed.claims[c], now)}
             for c in ("exp", "iat", "nbf") if c in parsed.claims}
    return {
        "header": {"alg": header.get("alg"), "kid": header.get("kid"), "typ": header.get("typ"),
                   "other": sorted(k for k in header if k not in ("alg", "kid", "typ"))},
        "claims": parsed.claims,
        "times": times,
    }


# -- hints -------------------------------------------------------------------------------------------------


def _parse_hints(raw: str) -> list[str]:
    parts = raw.split(".")
    if len(parts) == 5:
        return ["five segments: an encrypted token (JWE). The Auth0 API has token encryption on; the plugin "
                "verifies signed tokens (JWS) only"]
    if len(parts) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{16,64}", raw):
        return ["this looks like an opaque Auth0 access token: request the token with an `audience` parameter "
                "(your API's identifier) to get a JWT"]
    if len(parts) != 3:
        return [f"{len(parts)} segment(s): a JWT has three (header.payload.signature); was it cut when copied?"]
    if any(c in raw for c in "+/="):
        return ["the token holds '+', '/' or '=': JWTs use unpadded base64url; was it URL-decoded or re-encoded?"]
    return ["a segment is not base64url-encoded JSON, or alg is missing or unknown"]


def _alg_hints(alg: str, family: str | None, config: ApiConfig) -> list[str]:
    if alg == "none":
        return ["unsigned tokens (alg none) are never accepted"]
    if alg == "EdDSA":
        return ["EdDSA is not supported by Tyk's JWT middleware, so not here either"]
    if family == config.signing_method:
        return [f"jwt_allowed_algorithms admits only {', '.join(sorted(config.allowed_algorithms))}"]
    if family == "hmac":
        return ["an HMAC-signed token on an API verified with public keys: either the Auth0 API signs with HS256 "
                "(then set jwt_signing_method to hmac and jwt_source to the base64 of its signing secret), or "
                "this is an algorithm-confusion forgery"]
    if config.signing_method == "hmac":
        return [f"jwt_signing_method is 'hmac' (Tyk's native default when the field is left empty) but the token "
                f"is {alg}: Auth0 signs with RS256, so set \"jwt_signing_method\": \"rsa\""]
    if family == "ecdsa":
        return [f"{alg} is ECDSA: Auth0 tenants sign with RS256 (or PS256); use jwt_signing_method 'ecdsa' only "
                "for an EC key you provide"]
    return [f"the API's jwt_signing_method is {config.signing_method!r}; a {alg} token needs {family!r}"]


def _header_hints(header: Mapping[str, Any]) -> list[str]:
    if "crit" in header:
        return ["the crit header demands extensions the plugin does not implement"]
    return [f"typ {header.get('typ')!r} is not an access-token type (JWT or at+jwt): ID tokens and logout tokens "
            "are not access tokens"]


def _issuer_hints(iss: Any, accepted: Sequence[str]) -> list[str]:
    if not isinstance(iss, str):
        return [f"accepted issuers: {', '.join(accepted)}"]
    hints = []
    for candidate in accepted:
        if iss.rstrip("/") == candidate.rstrip("/"):
            if candidate.endswith("/"):
                hints.append(f"issuer {iss!r} does not match {candidate!r} — Auth0 issuers end with a slash")
            else:
                hints.append(f"issuer {iss!r} does not match {candidate!r}: the configured issuer lacks the trailing "
                             "slash Auth0 issuers end with")
        else:
            a, b = _split(iss), _split(candidate)
            if a.path == b.path and a.hostname != b.hostname and a.hostname and b.hostname:
                hints.append(f"the token was issued by {a.hostname}, the API accepts {b.hostname}: Auth0 tokens carry "
                             "the issuer of the domain they were requested from (custom domain vs tenant domain); "
                             "list both in `issuer` if clients use both")
            elif a.hostname == b.hostname and a.scheme != b.scheme:
                hints.append(f"{a.scheme} vs {b.scheme}: the issuer is compared exactly")
    return hints or [f"accepted issuers: {', '.join(accepted)}"]


def _audience_hints(claims: Mapping[str, Any], accepted: Sequence[str]) -> list[str]:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
    hints = []
    if "aud" not in claims:
        hints.append("the token has no aud: request it with audience=<your API identifier>")
    elif any(a == claims.get("azp") or re.fullmatch(r"[A-Za-z0-9]{32}", a) for a in audiences):
        hints.append("its aud is a client id: this is an ID token; send the access token instead")
    elif audiences and all(a.endswith("/userinfo") for a in audiences):
        hints.append("the token is only for Auth0's /userinfo: request it with audience=<your API identifier>")
    hints.append(f"the API accepts {', '.join(repr(a) for a in accepted)} (Auth0 puts the API Identifier, exactly "
                 "as registered, in aud)")
    return hints


def _names(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """A claim-name setting as a list (an empty single name is no name)."""
    return value if isinstance(value, tuple) else ((value,) if value else ())


def _shown(value: str | tuple[str, ...]) -> str:
    return repr(value) if isinstance(value, str) else repr(list(value))


def _identity_origin(claims: Mapping[str, Any], field: str | tuple[str, ...], identity: str) -> str:
    names = _names(field)
    for name in names:
        if claimlib.string_claim(claims, name) == identity:
            return f"{name} = {identity!r}"
    absent = ", ".join(repr(n) for n in names)
    return f"sub = {identity!r}" + (f" (fallback: {absent} {'is' if len(names) == 1 else 'are'} absent)"
                                    if names else "")


def _identity_hints(claims: Mapping[str, Any], config: ApiConfig) -> list[str]:
    return [f"jwt_identity_base_field is {_shown(config.identity_field)}; the token's claims are "
            f"{', '.join(sorted(claims)) or 'none'}",
            "Auth0 access tokens carry no email or name unless an Action adds them (with a namespaced name)"]


def _policy_hints(claims: Mapping[str, Any], config: ApiConfig) -> list[str]:
    hints = []
    names = _names(config.policy_field)
    present = [(n, v) for n in names if (v := claimlib.lookup(claims, n)) is not None]
    if not present:
        hints.append(f"the policy claim {', '.join(repr(n) for n in names)} {'is' if len(names) == 1 else 'are'} absent"
                     if names else "no policy claim is configured (jwt_policy_field_name)")
        candidates = [k for k in claims if k not in names and re.search(r"(^|[/:_.])pol(icy|icies)?$", k, re.IGNORECASE)]
        if candidates:
            hints.append(f"the token has {', '.join(repr(c) for c in candidates)}: set jwt_policy_field_name to it")
        hints.append("add it in an Auth0 Action (api.accessToken.setCustomClaim('https://example.com/pol', "
                     "'<policy id>')), or set jwt_default_policies")
    else:
        name, value = present[0]
        hints.append(f"the policy claim {name!r} holds {json.dumps(value)[:60]}: it must be a policy id or a list of ids")
    if config.scope_to_policy:
        found = policylib.token_scopes(claims, config)
        hints.append(f"scopes {found or '(none)'}; mapped scopes: {', '.join(sorted(config.scope_to_policy))}")
    return hints


def _policy_origin(claims: Mapping[str, Any], config: ApiConfig, policies: Sequence[str]) -> str:
    base = policylib.policy_claim(claims, config.policy_field)
    if base and tuple(policies[:len(base)]) == base and len(policies) == len(base):
        name = next(n for n in _names(config.policy_field) if policylib.policy_claim(claims, n) == base)
        return f"from claim {name!r}"
    if not base and tuple(policies) == config.default_policies:
        return "jwt_default_policies"
    return "from the scope mapping"


def _hmac_hints(parsed: tokenlib.ParsedToken, signature: bytes, data: Mapping[str, Any], report: Report) -> list[str]:
    """Try the usual base64 mistakes with the secret; say which one would have verified."""
    source = data.get("jwt_source")
    if not isinstance(source, str) or not source or re.match(r"(?i)^https?://", source):
        return ["jwt_source must be the base64 of the Auth0 API's signing secret"]
    candidates = [("jwt_source is used as the secret as-is", source.encode())]
    once = gateway_base64(source)
    twice = gateway_base64(once.decode("latin-1")) if once is not None else None
    if twice is not None:
        candidates.append(("jwt_source decoded twice (it was base64-encoded twice)", twice))
    for label, key in candidates:
        try:
            if verify_signature(parsed.alg, key, parsed.signing_input, signature):
                return [f"the signature verifies when {label}: jwt_source must be base64 of the secret, exactly once "
                        "(printf %s \"$SECRET\" | base64 -w0)"]
        except KeyTypeMismatch:
            continue
    return ["jwt_source must be the base64 of the Auth0 API's signing secret (printf %s \"$SECRET\" | base64 -w0)"]


_BASE64ISH = re.compile(r"[A-Za-z0-9+/=_\s-]*")  # base64 in either alphabet, padded or not, maybe wrapped


def _config_error_hints(error: ConfigurationError, data: Mapping[str, Any]) -> list[str]:
    hints = [f"every request to this API would get 500 {json.dumps({'error': error.message})}"]
    if error.key in ("jwt_source", "jwt_source_env", "jwt_source_file"):
        value = data.get("jwt_source")
        if isinstance(value, str) and (not _BASE64ISH.fullmatch(value) or "-----BEGIN" in value):
            secret = data.get("jwt_signing_method") == "hmac"
            hints.append("jwt_source is not base64: the gateway base64-decodes it (standard alphabet, with '=' "
                         f"padding) and uses the decoded bytes as {'the HMAC secret' if secret else 'the key'}, so "
                         + ("a raw secret must be base64-encoded: printf %s \"$SECRET\" | base64 -w0" if secret else
                            "a PEM key must be base64-encoded (base64 -w0 key.pem), or give a JWKS URL"))
        elif isinstance(value, str):
            if "-" in value or "_" in value:
                hints.append("jwt_source uses the base64url alphabet ('-', '_'): the gateway wants standard base64 "
                             "(base64 -w0)")
            if re.search(r"[^\S\r\n]", value.strip()):  # line breaks are skipped, as by the gateway
                hints.append("jwt_source has spaces or tabs: encode with base64 -w0")
            elif len(value.strip()) % 4:
                hints.append("jwt_source is missing its '=' padding")
    return hints


def _config_notes(config: ApiConfig, data: Mapping[str, Any]) -> list[str]:
    notes = []
    if "YOUR_TENANT" in " ".join((*config.key_source.jwks_urls, *config.issuers)):
        notes.append("the configuration still holds the YOUR_TENANT placeholder: put your Auth0 tenant domain there")
    if not config.audiences:
        notes.append("audience is not set: any token of the tenant passes, whatever API it was issued for, and so "
                     "do its ID tokens, which carry typ JWT as its access tokens do (Auth0 advises checking aud)")
    if not config.issuers:
        notes.append("no issuer is configured: iss is not checked")
    for issuer in config.issuers:
        host = _split(issuer).hostname or ""
        if host.endswith("auth0.com") and not issuer.endswith("/"):
            notes.append(f"issuer {issuer!r} does not end with a slash: Auth0 issuers do "
                         f"({issuer + '/'!r}), so every token would fail the issuer check")
    if config.signing_method == "hmac" and config.key_source.jwks_urls:
        notes.append("jwt_signing_method is hmac but the keys come from a JWKS: a JWKS publishes public keys, "
                     "never HMAC secrets, so every token is refused; Auth0 RS256 APIs need 'rsa'")
    source = data.get("jwt_source")
    if isinstance(source, str) and source:
        if re.match(r"(?i)^https?://", source):
            notes.append("jwt_source is a plain URL: the plugin accepts it; Tyk's native JWT middleware wants it "
                         "base64-encoded (a plain URL fails on its JWKS cache hits)")
        else:
            try:
                decoded = base64.b64decode(source, validate=True).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                decoded = ""
            if re.match(r"(?i)^\s*https?://", decoded):
                notes.append(f"jwt_source is base64 of the URL {decoded.strip()}")
                if decoded != decoded.strip():
                    notes.append("the decoded jwt_source ends with a newline or spaces (echo without -n?): the "
                                 "plugin strips them, Tyk's native middleware would not")
    return notes


# -- output ------------------------------------------------------------------------------------------------

_MARK = {"pass": "[ok]  ", "fail": "[FAIL]", "skip": "[--]  "}


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Escape control and bidi characters inside a line: a token's claims are shown before its
    signature is known, so they must not be able to draw lines (or hide them) on the terminal."""
    lead = len(text) - len(text.lstrip("\n"))  # a section's blank line, always from the report's own text
    trail = 1 if text.endswith("\n") and len(text) > lead else 0  # the line's own end; a value's are escaped
    body = text[lead:len(text) - trail]
    if not _UNPRINTABLE.search(body):
        return text
    escaped = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), body)
    return "\n" * lead + escaped + "\n" * trail


def render_text(report: Report, out: TextIO) -> None:
    def w(text: str) -> None:
        out.write(terminal_safe(text))

    source = report.source
    label = {"classic": "classic API definition", "oas": "Tyk OAS API definition", "config_data": "config_data",
             "environment": "environment"}[source.kind]
    w(f"API        {source.api_id or '-'} ({label} {source.origin}), org {report.org_id or '-'}\n")
    if report.config_error is not None:
        w(f"Config     INVALID: {report.config_error.key}: {report.config_error.problem}\n")
    elif report.config is not None:
        c = report.config
        w("Config     ok\n")
        keys = (f"JWKS {', '.join(c.key_source.jwks_urls)}" if c.key_source.jwks_urls
                else f"static key from jwt_source ({c.signing_method})")
        w(f"  keys       {keys}\n")
        w(f"  issuer     {', '.join(c.issuers) or '(not checked)'}\n")
        w(f"  audience   {', '.join(c.audiences) or '(not checked)'}\n")
        w(f"  algorithms {' '.join(sorted(c.allowed_algorithms))} (jwt_signing_method {c.signing_method})\n")
        w(f"  identity   {', '.join(_names(c.identity_field)) or 'sub'}   policy claim "
          f"{', '.join(_names(c.policy_field)) or '-'}   default policies "
          f"{', '.join(c.default_policies) or '-'}\n")
        if c.dpop is not None:
            w(f"  dpop       {'required' if c.dpop.required else 'allowed'}: proofs signed with {c.dpop.algs}, "
              f"iat from {c.dpop.iat_offset} s ago to {c.dpop.iat_leeway} s ahead, htu on "
              f"{c.dpop.base_url or 'the request scheme and Host'}\n")
    for note in source.notes + report.notes:
        w(f"  note: {note}\n")
    if report.discovery is not None:
        d = report.discovery
        if d["ok"]:
            w(f"Discovery  {d['url']}: ok\n")
            for problem in d.get("problems", []):
                w(f"  problem: {problem}\n")
        else:
            w(f"Discovery  {d['url']}: unavailable ({d['error']})\n")
    if report.jwks is not None:
        several = "sets" in report.jwks
        for j in report.jwks["sets"] if several else [report.jwks]:
            where = f"{j['url']}: " if several else ""
            if j["ok"]:
                described = ", ".join(f"{k['kid'] or '(no kid)'} ({k['kty']}{' ' + k['alg'] if k.get('alg') else ''}"
                                      f"{'' if k['usable'] else ', ignored'})" for k in j["keys"])
                w(f"JWKS       {where}{len(j['keys'])} key(s): {described}\n")
            else:
                w(f"JWKS       {j['url']}: unavailable ({j['error']})\n")
    if report.token is not None:
        h = report.token["header"]
        w("\nToken\n")
        other = f"  other {', '.join(h['other'])}" if h["other"] else ""
        w(f"  header   alg {h['alg']}  kid {h['kid'] if h['kid'] is not None else '(none)'}  "
          f"typ {h['typ'] if h['typ'] is not None else '(none)'}{other}\n")
        first = True
        for name, value in report.token["claims"].items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if len(shown) > 200:
                shown = shown[:197] + "..."
            if name in report.token["times"]:
                t = report.token["times"][name]
                shown = f"{shown}  {t['iso'] or ''} ({t['relative']})".replace(" ()", "")
            w(f"  {'claims' if first else '':<8} {name} = {shown}\n")
            first = False
    if report.steps:
        w("\nChecks\n")
        for step in report.steps:
            suffix = "" if step.reached or step.status == "skip" else " (not reached: would " + (
                "pass" if step.status == "pass" else "fail") + ")"
            w(f"  {_MARK[step.status]} {step.name:<13} {step.detail}{suffix}\n")
            for hint in step.hints:
                w(f"  {'':6} {'':<13} - {hint}\n")
    w("\n")
    if report.verdict == "pass":
        w("Verdict    PASS: the plugin accepts this token\n")
    elif report.verdict == "refused":
        where = f" at {report.failed_step}" if report.failed_step else ""
        w(f"Verdict    REFUSED{where}\n")
    elif report.verdict == "config_error":
        w("Verdict    CONFIGURATION ERROR\n")
    elif report.verdict == "keys_unavailable":
        w("Verdict    KEYS UNAVAILABLE: every token would be refused until the JWKS can be fetched\n")
    else:
        w("Verdict    configuration ok (no --token given)\n")
    if report.response and report.response.get("status"):
        w(f"Gateway    {report.response['status']} {json.dumps(report.response['body'])}\n")
    if report.session is not None:
        s = report.session
        w("Gateway    continues with this session (then applies its policies)\n")
        w("Session\n")
        w(f"  policies   {', '.join(s['policies'])}\n")
        w(f"  key id     {s['key_id']}\n")
        w(f"  alias      {s['alias']}\n")
        w(f"  expires    {s['expires_iso'] or 'never'}{' (' + s['expires_relative'] + ')' if s['expires_relative'] else ''}\n")
        w(f"  deadline   {s['deadline_iso']} (id_extractor_deadline: the gateway reuses this session for the "
          "same token until then)\n")
        meta = ", ".join(f"{k}={v}" for k, v in s["metadata"].items())
        w(f"  metadata   {meta}\n")


# -- command line -----------------------------------------------------------------------------------------


def add_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check", help="explain what the plugin would answer for a token on an API",
        description="Parse an API's plugin configuration, fetch the tenant's discovery document and JWKS, and "
                    "explain step by step whether a token passes. Exit 0: passes; 1: refused; 2: bad usage or "
                    "configuration.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--api", metavar="FILE", help="classic or Tyk OAS API definition, or a Dashboard export (JSON)")
    where.add_argument("--config-data", metavar="FILE|JSON", help="the config_data object, inline or in a file")
    parser.add_argument("--token", metavar="TOKEN", help="the access token, or - to read it from stdin (keeps it "
                        "out of your shell history); a 'Bearer ' prefix is fine")
    parser.add_argument("--dpop-proof", metavar="PROOF", help="a DPoP proof (the DPoP header's value): the token "
                        "then comes as 'Authorization: DPoP <token>' on the request --method and --url name")
    parser.add_argument("--method", default="GET", help="with --dpop-proof: the request's method (default GET)")
    parser.add_argument("--url", metavar="URL", help="with --dpop-proof: the URL the client calls, e.g. "
                        "https://api.example.com/my-api/orders")
    parser.add_argument("--org-id", default=None, help="the API's org_id (default: from --api)")
    parser.add_argument("--api-id", default=None,
                        help="the API's api_id, for the access-rights check (default: from --api)")
    parser.add_argument("--tyk-policies", metavar="PATH", help="the gateway's policy_path directory or "
                        "policy_record_name file: also check that the token's policies exist")
    parser.add_argument("--tyk-conf", metavar="FILE", help="the gateway's tyk.conf: also check that the "
                        "plugin's hash_key_function keys sessions as the gateway does (TYK_GW_HASHKEYFUNCTION, "
                        "when set here, wins as in the gateway)")
    parser.add_argument("--server-manifest", metavar="FILE", action="append", default=None,
                        help="a manifest the plugin server serves (its --manifest); repeat it for each: the auth "
                             "hook name the API definition gives is checked against them (default: as serve, "
                             "TYK_AUTH0_MANIFEST, else the repository's manifest.json); a name inside a bundle "
                             "is checked by `bundle verify --server-manifest`")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-discovery", action="store_true", help="skip fetching the OpenID discovery document")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per HTTP fetch (default %(default)s)")
    parser.add_argument("--max-token-bytes", type=bounded(int, 1024, "TYK_AUTH0_MAX_TOKEN_BYTES"),
                        default=os.environ.get("TYK_AUTH0_MAX_TOKEN_BYTES", str(DEFAULT_MAX_TOKEN_BYTES)),
                        help="the server's token size limit (env TYK_AUTH0_MAX_TOKEN_BYTES, as serve reads it; "
                             "default %(default)s)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, out: TextIO | None = None, stdin: TextIO | None = None,
         checker: Checker | None = None) -> int:
    out = out or sys.stdout
    try:
        if args.api:
            source = load_api(args.api)
        elif args.config_data:
            source = load_config_data(args.config_data)
        else:
            source = ApiSource(kind="environment", origin="(AUTH0_* environment variables)")
        if args.api_id:
            source.api_id = args.api_id
        token = args.token
        if token == "-":
            source_in = stdin or sys.stdin
            raw_in = getattr(source_in, "buffer", None)
            token = raw_in.read().decode("utf-8", "replace") if raw_in is not None else source_in.read()
        if token is not None:
            # The gateway's HTTP server trims blanks around a header value, and reads bytes that are
            # not UTF-8 as U+FFFD.
            token = token.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip(" \t\r\n")
        gateway_hash = load_gateway_hash_function(args.tyk_conf, os.environ) if args.tyk_conf else None
        served = _served_hooks(source, getattr(args, "server_manifest", None))
        if not (0 < args.timeout < 3600):
            raise UsageError("--timeout must be a number of seconds above 0 and below 3600")
        proof = None
        if args.dpop_proof:
            if not args.url or dpoplib.normalize_url(args.url) is None:
                raise UsageError("--dpop-proof needs --url, the http(s) URL the client calls")
            proof = ProofRequest(args.dpop_proof.strip(), args.method, args.url)
    except UsageError as exc:
        print(f"tyk-auth0-plugin check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # The pipeline logs for operators (fetch failures, refusals); here the report says it all.
    plugin_log = logging.getLogger("plugin")
    previous = plugin_log.level
    plugin_log.setLevel(logging.CRITICAL)
    try:
        checker = checker or Checker(timeout=args.timeout, max_token_bytes=args.max_token_bytes)
        report = checker.run(source, token, args.org_id, not args.no_discovery, args.tyk_policies, gateway_hash,
                             served=served, proof=proof)
    except Exception as exc:  # noqa: BLE001 - an input the explanation cannot follow: say so, never a traceback
        print(f"tyk-auth0-plugin check: cannot explain this input ({type(exc).__name__} at {exception_site(exc)})",
              file=sys.stderr)
        return EXIT_USAGE
    finally:
        plugin_log.setLevel(previous)
    if args.json:
        json.dump(report.as_dict(), out, indent=2, ensure_ascii=False, default=str)
        out.write("\n")
    else:
        render_text(report, out)
    return report.exit_code


def _served_hooks(source: ApiSource, explicit: Sequence[str] | None) -> ServedHooks | None:
    """The plugin's manifests, read only when the definition names its own auth hook; those of
    ``--server-manifest`` must be readable, serve's default ones are checked when they are."""
    if not source.auth_hook:
        return None
    try:
        return load_served_hooks(manifest_paths(explicit))
    except ManifestError as exc:
        if explicit:
            raise UsageError(f"--server-manifest: {exc}") from None
        source.notes.append(f"the auth hook's name is not checked: the plugin's manifests cannot be read ({exc}); "
                            "give them with --server-manifest")
        return None
