"""Per-API settings, parsed once from the API's ``config_data`` into a frozen dataclass.

Names follow the gateway's own JWT settings where one exists, so a Tyk operator
can move an API from native JWT to this plugin key by key. Every check raises
:class:`ConfigurationError` naming the offending key. ``SETTINGS`` is the single
description of the keys; the docs' reference table is generated from it.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import SplitResult, urlsplit

from plugin import dpop as dpoplib
from plugin.custom_claims import ClaimRule, parse_rules
from plugin.errors import ConfigurationError
from plugin.extract import DEFAULT_HEADER, DEFAULT_SOURCE, FIELD_NAME, TokenSource, canonical_header
from plugin.keys import load_static_public_key

SIGNING_METHODS: Mapping[str, frozenset[str]] = {
    "rsa": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "ecdsa": frozenset({"ES256", "ES384", "ES512"}),
    "hmac": frozenset({"HS256", "HS384", "HS512"}),
}

_HTTP_URL = re.compile(r"(?i)^https?://")

ClaimNames = str | tuple[str, ...]

# The client is `azp` in Auth0's default token profile and `client_id` in its RFC 9068 profile.
DEFAULT_METADATA_CLAIMS = ("sub", "azp", "client_id", "scope")


@dataclass(frozen=True)
class Setting:
    """One config_data key: its environment twin, default and meaning (for docs and errors)."""

    key: str
    env: str | None
    default: str
    doc: str
    native: str = ""


SETTINGS: tuple[Setting, ...] = (
    Setting("auth0_domain", "AUTH0_DOMAIN", "", "Auth0 tenant domain, e.g. `dev-x.us.auth0.com`, or its custom domain (tokens carry the issuer of the domain they were requested from). Gives the issuer `https://DOMAIN/` and the JWKS `https://DOMAIN/.well-known/jwks.json`."),
    Setting("jwt_source", "AUTH0_JWT_SOURCE", "", "JWKS URL (plain or base64, as the gateway accepts), or a base64 PEM public key / certificate, or for `hmac` the base64 secret. Overrides the JWKS derived from `auth0_domain`. Plain `http://` is refused unless the host is loopback. A list of JWKS URLs, as Tyk OAS `jwksURIs`: the first key set that publishes the token's `kid` verifies it.", "jwt_source"),
    Setting("jwt_source_env", None, "", "Name of an environment variable holding `jwt_source` (keeps an HMAC secret out of API definitions)."),
    Setting("jwt_source_file", None, "", "Path of a file holding `jwt_source` (e.g. a mounted secret): a regular file of UTF-8 text, at most 64 KiB."),
    Setting("issuer", "AUTH0_ISSUER", "https://DOMAIN/", "Accepted `iss` values (string or list), compared exactly: Auth0 issuers end with `/`.", "allowedIssuers (OAS)"),
    Setting("audience", "AUTH0_AUDIENCE", "", "Accepted `aud` values (string or list); a token passes when any of its audiences matches. Empty: not checked.", "allowedAudiences (OAS)"),
    Setting("jwt_signing_method", "AUTH0_JWT_SIGNING_METHOD", "rsa", "Algorithm family: `rsa` (RS256/384/512, PS256/384/512), `ecdsa` (ES256/384/512) or `hmac` (HS256/384/512).", "jwt_signing_method"),
    Setting("require_jti", None, "false", "Refuse a token without a `jti` claim (its value is not checked; `null` counts as present).", "jtiValidation.enabled (OAS)"),
    Setting("custom_claim_validation", None, "{}", "Rules on claims, as Tyk OAS writes them: `{\"azp\": {\"type\": \"exact_match\", \"allowedValues\": [\"CLIENT_ID\"]}}`; rule types `required`, `exact_match` and `contains`; `nonBlocking: true` makes a rule never refuse. Paths are claim names joined by dots.", "customClaimValidation (OAS)"),
    Setting("jwt_allowed_algorithms", "AUTH0_JWT_ALLOWED_ALGORITHMS", "", "Optional exact allow-list inside the family, e.g. `[\"RS256\"]`."),
    Setting("jwt_identity_base_field", None, "sub", "Claim holding the identity (literal name first, then a dotted path; falls back to `sub`). A list of claims is read as Tyk OAS `subjectClaims`: the first listed claim holding a non-empty string (an empty one refuses the token), then `sub`.", "jwt_identity_base_field"),
    Setting("jwt_policy_field_name", None, "pol", "Claim holding the Tyk policy id (a string, or a list of ids). A list of claims is read as Tyk OAS `basePolicyClaims`: the first listed claim that names a policy (an id, or a list of ids).", "jwt_policy_field_name"),
    Setting("jwt_default_policies", None, "[]", "Policies applied when the token names none.", "jwt_default_policies"),
    Setting("jwt_scope_claim_name", None, "scope", "Claim holding the scopes (space-separated string or array). Set `permissions` to map Auth0's RBAC permissions array instead. A list of claims is read as Tyk OAS `scopes.claims`: the first listed claim the token has, else `scope`.", "jwt_scope_claim_name"),
    Setting("jwt_scope_to_policy_mapping", None, "{}", "Map of scope to policy id; matched policies replace the default policies.", "jwt_scope_to_policy_mapping"),
    Setting("jwt_expires_at_validation_skew", None, "0", "Seconds of tolerance on `exp` (whole seconds, at most 2**62).", "jwt_expires_at_validation_skew"),
    Setting("jwt_issued_at_validation_skew", None, "0", "Seconds of tolerance on `iat` (whole seconds, at most 2**62).", "jwt_issued_at_validation_skew"),
    Setting("jwt_not_before_validation_skew", None, "0", "Seconds of tolerance on `nbf` (whole seconds, at most 2**62).", "jwt_not_before_validation_skew"),
    Setting("max_token_lifetime", None, "0", "Longest a token may live, in seconds: `exp` − `iat`, or `exp` − now for a token without `iat`; a token without `exp` is then refused too. 0 is no limit. Auth0 issues 86400 s by default (at most 2592000).", ""),
    Setting("session_metadata_claims", None, "[\"sub\", \"azp\", \"client_id\", \"scope\"]", "Claims copied into the session's metadata (never the token itself). Auth0 names the client `azp` in its default token profile and `client_id` in the RFC 9068 profile; a token carries one of the two."),
    Setting("id_extractor_ttl", None, "300", "Upper bound, in seconds, of `id_extractor_deadline`: how long the gateway may answer a repeated token from its session cache (never past the token's `exp`), and so how long a changed `config_data` may take to reach a token whose session the gateway holds. `0` when the token may come from several places (header, `use_param`, `use_cookie`), and only `0` is accepted then: the extractor reads one place, so it could cache a session under a value that is not the token."),
    Setting("jwks_cache_ttl", None, "600", "Seconds a fetched JWKS is fresh (at least 5); it is refreshed in the background before then (Auth0 advises 5 to 10 minutes)."),
    Setting("claims_to_headers", None, "{}", "Map of claim name to upstream header name, set by the `Auth0ClaimsToHeaders` post-auth hook (docs/hooks.md)."),
    Setting("strip_authorization", None, "false", "With the `Auth0ClaimsToHeaders` hook: remove the token's header (`Authorization` or `auth_header_name`), with `use_param` its query parameter, and with `dpop` on the `DPoP` proof header before the upstream call."),
    Setting("auth_header_name", None, "Authorization", "Header carrying the token, with or without `Bearer `.", "auth_configs.jwt.auth_header_name"),
    Setting("disable_header", None, "false", "Do not read the header (then turn on `use_param` or `use_cookie`).", "auth_configs.jwt.disable_header"),
    Setting("use_param", None, "false", "Also read the token from a query parameter; a non-empty one wins over the header.", "auth_configs.jwt.use_param"),
    Setting("param_name", None, "the header's name", "The query parameter's name (`Authorization` when `disable_header` is on).", "auth_configs.jwt.param_name"),
    Setting("use_cookie", None, "false", "Also read the token from a cookie; a non-empty one wins over the header and the parameter.", "auth_configs.jwt.use_cookie"),
    Setting("cookie_name", None, "the header's name", "The cookie's name (`Authorization` when `disable_header` is on).", "auth_configs.jwt.cookie_name"),
    Setting("dpop", None, "disabled", "DPoP (RFC 9449) sender-constrained tokens, as Auth0 issues them to a client that sends a DPoP proof: `disabled` (no DPoP check: a token is read as native JWT reads it), `allowed` (a token carrying `cnf.jkt` is accepted only as `Authorization: DPoP <token>` with a valid `DPoP` proof header; tokens without `cnf.jkt` pass as bearer tokens) or `required` (DPoP-bound tokens with valid proofs only). Needs the token in a header (not `use_param` or `use_cookie`)."),
    Setting("dpop_allowed_algorithms", None, "[\"ES256\", \"RS256\", \"PS256\", \"EdDSA\"]", "Algorithms a DPoP proof may be signed with: any of ES256/384/512, RS256/384/512, PS256/384/512 and EdDSA (Ed25519, Ed448). Auth0's SDKs sign proofs with ES256."),
    Setting("dpop_iat_offset", None, "300", "Seconds after its `iat` that a DPoP proof is still accepted (1 to 3600); its `jti` is remembered that long, so the proof cannot be replayed meanwhile."),
    Setting("dpop_iat_leeway", None, "30", "Seconds a DPoP proof's `iat` may be ahead of the plugin's clock (0 to 3600)."),
    Setting("dpop_base_url", None, "the request's scheme and Host", "The scheme, host, port and path prefix clients call the API at, when a proxy in front of the gateway changes them (TLS ended by a load balancer, another host name, a path prefix it strips): a proof's `htu` is compared with it joined with the request's path."),
    Setting("dpop_jti_cache_size", None, "100000", "Most DPoP proof `jti` values remembered per API and plugin process; past it the oldest are forgotten before their window ends, and the log warns. Size it to your peak proofs per second times (`dpop_iat_offset` + `dpop_iat_leeway`)."),
    Setting("hash_key_function", "TYK_HASH_KEY_FUNCTION", "", "The gateway's `hash_key_function` (Tyk's shipped `tyk.conf` sets `murmur64`), whatever `hash_keys` says, so the session key id matches the one native JWT derives for the same identity; a mismatch refuses nothing but counts each subject's quota apart (`check --tyk-conf` compares). The variable applies to every API, with or without `config_data`.", "hash_key_function (tyk.conf)"),
)

_KNOWN_KEYS = frozenset(s.key for s in SETTINGS)
# Read from the environment by every API's configuration, config_data or not (build_config), so
# setting one of these alone makes no server-wide Auth0 configuration that must stand on its own.
_EVERY_API_ENV = frozenset({"hash_key_function"})


@dataclass(frozen=True)
class KeySource:
    """Where verification keys come from: JWKS URLs (the first publishing a token's kid verifies it,
    as Tyk OAS jwksURIs), or one static key (PEM/DER or HMAC secret)."""

    jwks_urls: tuple[str, ...] = ()
    static_key: bytes | None = field(default=None, repr=False)  # may be an HMAC secret: never in a repr

    @property
    def jwks_url(self) -> str | None:
        """The first (usually the only) JWKS URL."""
        return self.jwks_urls[0] if self.jwks_urls else None


@dataclass(frozen=True)
class ApiConfig:
    """Everything one API needs to verify a token and build its session."""

    key_source: KeySource
    issuers: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    require_jti: bool = False
    claim_rules: tuple[ClaimRule, ...] = ()
    signing_method: str = "rsa"
    allowed_algorithms: frozenset[str] = SIGNING_METHODS["rsa"]
    # A string reads one claim as classic native JWT does; a tuple is a Tyk OAS claim list
    # (subjectClaims, basePolicyClaims, scopes.claims), read with OAS native JWT's rules.
    identity_field: ClaimNames = "sub"
    policy_field: ClaimNames = "pol"
    default_policies: tuple[str, ...] = ()
    scope_claim: ClaimNames = "scope"
    scope_to_policy: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)  # read-only
    exp_skew: int = 0
    iat_skew: int = 0
    nbf_skew: int = 0
    max_token_lifetime: int = 0  # seconds; 0 is no limit
    metadata_claims: tuple[str, ...] = DEFAULT_METADATA_CLAIMS
    id_extractor_ttl: int = 300
    jwks_cache_ttl: int = 600
    hash_key_function: str = ""
    claims_to_headers: tuple[tuple[str, str], ...] = ()
    strip_authorization: bool = False
    token_source: TokenSource = DEFAULT_SOURCE
    dpop: dpoplib.DPoPSettings | None = None  # None: DPoP is off, and the request path never looks at it


# Settings that take a list: their variables hold a comma-separated list or a JSON array.
_LIST_ENV = frozenset({"issuer", "audience", "jwt_allowed_algorithms", "jwt_source"})


def env_config_data(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """config_data built from the environment, for APIs whose definition carries none.
    ConfigurationError names the setting of a variable that cannot be read."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in _EVERY_API_ENV:
            continue
        if setting.env and environ.get(setting.env, "").strip():
            value = environ[setting.env].strip()
            data[setting.key] = _env_list(setting, value) if setting.key in _LIST_ENV else value
    return data


def _env_list(setting: Setting, value: str) -> str | list[str]:
    """A list-valued variable: a JSON array, as config_data and these docs write lists (split on
    commas, '["RS256"]' would be one odd name and '["https://api"]' an audience no token has), else
    comma-separated. jwt_source is one key or URL unless every part is a URL: base64 has no comma."""
    if value.startswith("["):
        try:
            listed = json.loads(value)
        except (ValueError, RecursionError):
            listed = None
        if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
            raise ConfigurationError(setting.key, "its variable starts with '[' but is not a JSON array of strings; "
                                     "write one, or a comma-separated list")  # never the value: it may be a secret
        parts = [v.strip() for v in listed if v.strip()]
    else:
        parts = [v.strip() for v in value.split(",") if v.strip()]
    if setting.key == "jwt_source" and not (value.startswith("[") or (len(parts) > 1
                                                                     and all(_HTTP_URL.match(p) for p in parts))):
        return value
    return parts


def parse_config_data(raw: str | None, defaults: Mapping[str, Any] | None = None,
                      environ: Mapping[str, str] | None = None) -> ApiConfig:
    """Parse the JSON of ``spec["config_data"]``; with none, fall back to ``defaults``."""
    if raw is None or raw.strip() in ("", "null", "{}"):
        data: Any = dict(defaults or {})
        if not data:
            raise ConfigurationError(
                "config_data", "the API sends no config_data and no AUTH0_DOMAIN/AUTH0_JWT_SOURCE is set on the server"
            )
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ConfigurationError("config_data", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigurationError("config_data", "must be a JSON object")
    return build_config(data, os.environ if environ is None else environ)


def build_config(data: Mapping[str, Any], environ: Mapping[str, str]) -> ApiConfig:
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(key, f"unknown setting{hint}")

    method = _string(data, "jwt_signing_method", "rsa").lower()
    if method not in SIGNING_METHODS:
        raise ConfigurationError("jwt_signing_method", f"must be one of {', '.join(SIGNING_METHODS)}")
    family = SIGNING_METHODS[method]
    allowed = _strings(data, "jwt_allowed_algorithms")
    for alg in allowed:
        if alg not in family:
            raise ConfigurationError(
                "jwt_allowed_algorithms", f"{alg!r} is not in the {method} family ({', '.join(sorted(family))})"
            )

    domain = _auth0_domain(data)

    key_source = _key_source(data, method, domain, environ)
    issuers = _strings(data, "issuer") or ((f"https://{domain}/",) if domain else ())

    mapping = data.get("jwt_scope_to_policy_mapping")
    if mapping is None or mapping in ("", []):  # empty in another shape: no mapping, as these always read
        mapping = {}
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ConfigurationError("jwt_scope_to_policy_mapping", "must be an object of scope -> policy id strings")

    token_source = parse_token_source(data)
    header_rules = parse_header_rules(data, token_source)
    return ApiConfig(
        claims_to_headers=header_rules.claims_to_headers,
        strip_authorization=header_rules.strip_authorization,
        key_source=key_source,
        issuers=issuers,
        audiences=_strings(data, "audience"),
        require_jti=_flag(data, "require_jti"),
        claim_rules=parse_rules(data.get("custom_claim_validation")),
        signing_method=method,
        allowed_algorithms=frozenset(allowed) if allowed else family,
        identity_field=_claim_names(data, "jwt_identity_base_field", "sub"),
        policy_field=_claim_names(data, "jwt_policy_field_name", "pol"),
        default_policies=_strings(data, "jwt_default_policies"),
        scope_claim=_claim_names(data, "jwt_scope_claim_name", "scope") or "scope",
        scope_to_policy=MappingProxyType(dict(mapping)),
        exp_skew=_seconds(data, "jwt_expires_at_validation_skew", 0),
        iat_skew=_seconds(data, "jwt_issued_at_validation_skew", 0),
        nbf_skew=_seconds(data, "jwt_not_before_validation_skew", 0),
        max_token_lifetime=_seconds(data, "max_token_lifetime", 0),
        metadata_claims=_strings(data, "session_metadata_claims", DEFAULT_METADATA_CLAIMS),
        id_extractor_ttl=_extractor_ttl(data, token_source),
        jwks_cache_ttl=_seconds(data, "jwks_cache_ttl", 600, minimum=5),
        # Blanks are a slip (a value mounted from a file ends in a newline): kept, " " or "murmur128\n"
        # would key sessions as murmur64, the gateway's choice for any name it does not know.
        hash_key_function=_string(data, "hash_key_function", environ.get("TYK_HASH_KEY_FUNCTION", "")).strip(),
        token_source=token_source,
        dpop=_dpop(data, token_source),
    )


_MAX_PROOF_WINDOW = 3600  # a proof is made for one request: an hour is far beyond any clock drift


def _dpop(data: Mapping[str, Any], source: TokenSource) -> dpoplib.DPoPSettings | None:
    """The API's DPoP settings, or None when it is off (the default). The other dpop_* keys are
    checked either way, so a mistake in them shows before DPoP is turned on, not when it is."""
    mode = _string(data, "dpop", "disabled").strip().lower()
    if mode not in dpoplib.MODES:
        raise ConfigurationError("dpop", f"must be one of {', '.join(dpoplib.MODES)}")
    algorithms = _strings(data, "dpop_allowed_algorithms", dpoplib.DEFAULT_ALGORITHMS)
    for alg in algorithms:
        if alg not in dpoplib.SUPPORTED_ALGORITHMS:
            raise ConfigurationError("dpop_allowed_algorithms", f"{alg!r} is not a DPoP proof algorithm "
                                     f"({', '.join(sorted(dpoplib.SUPPORTED_ALGORITHMS))})")
    if not algorithms:
        raise ConfigurationError("dpop_allowed_algorithms", "is empty: no proof could be accepted")
    offset = _bounded(data, "dpop_iat_offset", dpoplib.DEFAULT_IAT_OFFSET, 1, _MAX_PROOF_WINDOW)
    leeway = _bounded(data, "dpop_iat_leeway", dpoplib.DEFAULT_IAT_LEEWAY, 0, _MAX_PROOF_WINDOW)
    base_url = _dpop_base_url(data)
    cache_size = _bounded(data, "dpop_jti_cache_size", dpoplib.DEFAULT_JTI_CACHE_SIZE, 1, 10_000_000, unit="entries")
    if mode == "disabled":
        return None
    if source.header is None or source.places > 1:
        raise ConfigurationError("dpop", f"needs the token in a header (RFC 9449 7.1), but it may come from "
                                 f"{source.describe()}: turn off use_param and use_cookie")
    return dpoplib.DPoPSettings(required=mode == "required", algorithms=frozenset(algorithms), iat_offset=offset,
                                iat_leeway=leeway, base_url=base_url, replay=dpoplib.ReplayCache(cache_size))


def _bounded(data: Mapping[str, Any], key: str, default: int, minimum: int, maximum: int,
             unit: str = "seconds") -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigurationError(key, f"must be a whole number of {unit} from {minimum} to {maximum}")
    return value


def _dpop_base_url(data: Mapping[str, Any]) -> str:
    """``scheme://host[:port][/prefix]``, normalized as proofs' htu are, with no trailing slash."""
    value = _string(data, "dpop_base_url", "").strip()
    if not value:
        return ""
    parts = split_url(value)
    normalized = dpoplib.normalize_url(value)
    if parts is None or normalized is None or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ConfigurationError("dpop_base_url", "must be an http(s) URL: scheme, host, an optional port and "
                                 "path prefix, without user, query or fragment")
    return normalized.rstrip("/")


_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"  # '_' as urllib takes it (YOUR_TENANT)
_DOMAIN = re.compile(rf"(?P<host>{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?")


def _auth0_domain(data: Mapping[str, Any]) -> str:
    """The tenant's host name, with an optional port; it becomes the issuer https://DOMAIN/ and the JWKS
    URL, so anything else (a path, a query, user@) would change what those mean."""
    domain = _string(data, "auth0_domain", "").strip().rstrip("/")
    if not domain:
        return ""
    if _HTTP_URL.match(domain):
        raise ConfigurationError("auth0_domain", "give the bare domain, e.g. dev-x.us.auth0.com, not a URL")
    match = _DOMAIN.fullmatch(domain)
    if match is None or (match["ipv6"] is not None and not _is_ipv6(match["ipv6"])):
        raise ConfigurationError("auth0_domain", "must be a host name with an optional port, e.g. "
                                 "dev-x.us.auth0.com (letters, digits, '-', '_' and '.')")
    if match["port"] is not None and not 0 < int(match["port"]) <= 65535:
        raise ConfigurationError("auth0_domain", f"port {match['port']} is not a port (1 to 65535)")
    return domain


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _key_source(data: Mapping[str, Any], method: str, domain: str, environ: Mapping[str, str]) -> KeySource:
    listed = data.get("jwt_source")
    if isinstance(listed, list):
        return _jwks_list(listed, data)
    source_key, source = _resolve_source(data, environ)
    if not source:
        if domain:
            return KeySource(jwks_urls=(f"https://{domain}/.well-known/jwks.json",))
        raise ConfigurationError("auth0_domain", "set auth0_domain or jwt_source: there is nowhere to get keys from")
    decoded = gateway_base64(source)
    url = _jwks_url_in(source_key, source, decoded)
    if url is not None:
        return KeySource(jwks_urls=(url,))
    if decoded is None:
        raise ConfigurationError(source_key, "is neither an http(s) JWKS URL nor base64 (the gateway's format)")
    if method != "hmac":
        try:
            load_static_public_key(decoded)
        except ValueError as exc:
            raise ConfigurationError(source_key, str(exc)) from None
    elif not decoded:
        raise ConfigurationError(source_key, "the HMAC secret is empty")
    return KeySource(static_key=decoded)


def gateway_base64(source: str) -> bytes | None:
    """``source`` decoded as the gateway's Go base64.StdEncoding decodes it (standard alphabet, with
    padding; line breaks skipped, so `base64` output wrapped at 76 columns works), or None."""
    try:
        return base64.b64decode(source.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _jwks_url_in(key: str, source: str, decoded: bytes | None) -> str | None:
    """The JWKS URL ``source`` gives, plain or base64-encoded (``decoded``) as the gateway accepts it."""
    if _HTTP_URL.match(source):
        return _checked_jwks_url(key, source)
    text = decoded.decode("utf-8", errors="replace") if decoded is not None else ""
    return _checked_jwks_url(key, text.strip()) if _HTTP_URL.match(text) else None


def _jwks_list(listed: list[Any], data: Mapping[str, Any]) -> KeySource:
    """Several JWKS URLs, as Tyk OAS jwksURIs lists them (keys from several tenants, or across a move)."""
    for other in ("jwt_source_env", "jwt_source_file"):
        if _source_value(data, other):
            raise ConfigurationError(other, "set only one of jwt_source, " + other)
    urls: list[str] = []
    for item in listed:
        url = _jwks_url_in("jwt_source", item.strip(), gateway_base64(item.strip())) if isinstance(item, str) else None
        if url is None:
            raise ConfigurationError("jwt_source", "as a list, holds only JWKS URLs (plain or base64)")
        urls.append(url)
    if not urls:
        raise ConfigurationError("jwt_source", "is an empty list: there is nowhere to get keys from")
    return KeySource(jwks_urls=tuple(dict.fromkeys(urls)))


def _source_value(data: Mapping[str, Any], key: str) -> str:
    """One of the three key-source settings: a string, "" when absent. Its value is never echoed."""
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        listed = " or a list of JWKS URLs" if key == "jwt_source" else ""
        raise ConfigurationError(key, f"must be a string{listed}")
    return value.strip()


def _resolve_source(data: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, str]:
    values = {k: _source_value(data, k) for k in ("jwt_source", "jwt_source_env", "jwt_source_file")}
    given = [k for k, v in values.items() if v]
    if len(given) > 1:
        raise ConfigurationError(given[1], f"set only one of {', '.join(given)}")
    if not given:
        return "jwt_source", ""
    key = given[0]
    value = values[key]
    if key == "jwt_source_env":
        if value not in environ or not environ[value].strip():  # the name is not echoed: it may be a secret put there by mistake
            raise ConfigurationError(key, "the environment variable it names is not set on the plugin server")
        return key, environ[value].strip()
    if key == "jwt_source_file":
        return key, _read_source_file(key, value)
    return key, value


# A PEM key, an HMAC secret or a URL: a file larger than this is none of those.
MAX_SOURCE_FILE_BYTES = 64 * 1024


def _read_source_file(key: str, path: str) -> str:
    """The file's text, read only if it is a regular file of a key's size: a device, a FIFO or a huge
    file named by mistake would otherwise block or fill memory on the request path. Problems do not
    echo the path: a secret put there by mistake would reach the logs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the open
    except OSError as exc:
        raise ConfigurationError(key, f"cannot read the file it names: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigurationError(key, "is not a usable file path") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a device or a FIFO is never read
            raise ConfigurationError(key, "the file it names is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SOURCE_FILE_BYTES:
            chunk = os.read(fd, MAX_SOURCE_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
    except OSError as exc:
        raise ConfigurationError(key, f"cannot read the file it names: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_SOURCE_FILE_BYTES:
        raise ConfigurationError(key, f"the file it names is larger than {MAX_SOURCE_FILE_BYTES // 1024} KiB: "
                                      "not a key, a secret or a URL")
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigurationError(key, "the file it names is not UTF-8 text") from None


def split_url(url: str) -> SplitResult | None:
    """``url`` split into its parts, or None when it does not parse (a port that is not a number
    included). The parser's error is dropped: its text may quote the URL, credentials and all."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return None
    return parts


# What urllib refuses in a request (control characters, spaces) or cannot send (anything not ASCII);
# refused here, once, as every fetch would otherwise fail with an error quoting the query string.
_URL_UNSENDABLE = re.compile(r"[^\x21-\x7e]")


def _checked_jwks_url(key: str, url: str) -> str:
    """``url`` if the plugin may fetch a JWKS from it, else a ConfigurationError naming ``key``."""
    problem = jwks_url_problem(url)
    if problem is not None:
        raise ConfigurationError(key, problem)
    return url


def jwks_url_problem(url: str) -> str | None:
    """Why the plugin may not fetch a JWKS from ``url``, or None. Configured URLs and redirects
    alike; the text never echoes the URL (its query may hold a key)."""
    if _URL_UNSENDABLE.search(url):
        return "the JWKS URL holds a space, a control character or a non-ASCII character: percent-encode it"
    parts = split_url(url)
    if parts is None or not _HTTP_URL.match(url):
        return "is not a valid URL"
    if not parts.hostname:
        return "the JWKS URL has no host"
    if "@" in parts.netloc:
        return "the JWKS URL carries credentials (user@host); a JWKS is public, drop them"
    if parts.scheme.lower() == "http" and not _is_loopback(parts.hostname):
        return "a JWKS over plain http is refused unless the host is loopback; use https"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _string(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigurationError(key, "must be a string")
    return value


def _claim_names(data: Mapping[str, Any], key: str, default: str) -> ClaimNames:
    """One claim name, or a list of them (the Tyk OAS form); an empty name in a list is refused,
    as it could only be a slip."""
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigurationError(key, "must be a claim name or a list of claim names (none of them empty)")


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigurationError(key, "must be true or false")
    return value


def _strings(data: Mapping[str, Any], key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    raise ConfigurationError(key, "must be a string or a list of strings")


_DIGITS = re.compile(r"[0-9]{1,12}")  # str.isdigit() also admits "²", which int() refuses


# Far beyond any real use, and low enough that the gateway's int64 arithmetic on it (now + skew,
# then seconds since year 1) never wraps, which would turn a huge skew into a refusal there.
_MAX_SECONDS = 2**62


def _seconds(data: Mapping[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = data.get(key)
    if value is None:
        value = default
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(key, f"must be a whole number of seconds >= {minimum}")
    if value > _MAX_SECONDS:
        raise ConfigurationError(key, f"must be at most {_MAX_SECONDS} seconds")
    return value


# -- where the token is read (native JWT's auth_configs.jwt, under the same names) --------------------

def parse_token_source(data: Mapping[str, Any]) -> TokenSource:
    """Where this API's tokens are read, from native JWT's auth_configs.jwt fields under their names."""
    header_name = _field_name(data, "auth_header_name")
    if header_name.lower() == "host":
        raise ConfigurationError("auth_header_name", "Host cannot carry a token: Go moves it out of the request "
                                 "headers, so native JWT never finds one there")
    disable_header = _flag(data, "disable_header")
    use_param = _flag(data, "use_param")
    use_cookie = _flag(data, "use_cookie")
    param_name = _string(data, "param_name", "")
    cookie_name = _field_name(data, "cookie_name")
    # As in the gateway: the header's name is the other sources' default, unless the header is off.
    default_name = DEFAULT_HEADER if disable_header else (header_name or DEFAULT_HEADER)
    if disable_header and not (use_param or use_cookie):
        raise ConfigurationError("disable_header", "with the header off, turn on use_param or use_cookie: "
                                 "otherwise no request can carry a token")
    source = TokenSource(
        header=None if disable_header else canonical_header(header_name or DEFAULT_HEADER),
        param=(param_name or default_name) if use_param else None,
        cookie=(cookie_name or default_name) if use_cookie else None,
    )
    return DEFAULT_SOURCE if source == DEFAULT_SOURCE else source


def _extractor_ttl(data: Mapping[str, Any], source: TokenSource) -> int:
    """The gateway's ID extractor reads one place. Where the token may come from another, a request
    with junk there (``Bearer null``) and the token elsewhere would leave its session cached under
    the junk, for anyone who sends the same: such an API never lets the gateway reuse a session."""
    if source.places == 1:
        return _seconds(data, "id_extractor_ttl", 300)
    ttl = _seconds(data, "id_extractor_ttl", 0)
    if ttl:
        raise ConfigurationError("id_extractor_ttl", f"must be 0 when the token may come from {source.describe()}: "
                                 "the ID extractor reads one place, so it could cache a session under a value "
                                 "that is not the token")
    return ttl


def _field_name(data: Mapping[str, Any], key: str) -> str:
    value = _string(data, key, "")
    if value and not FIELD_NAME.fullmatch(value):
        raise ConfigurationError(key, f"{value!r} is not a valid name (letters, digits and !#$%&'*+-.^_`|~)")
    return value


# -- claims_to_headers (read by the Auth0ClaimsToHeaders hook in plugin.extensions) -----------------

_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade",
                               "te", "trailer", "keep-alive", "proxy-connection"})


@dataclass(frozen=True)
class HeaderRules:
    claims_to_headers: tuple[tuple[str, str], ...] = ()
    strip_authorization: bool = False
    token_source: TokenSource = DEFAULT_SOURCE  # what strip_authorization removes
    strip_dpop: bool = False  # strip_authorization on an API with DPoP on: the proof goes too

    def __bool__(self) -> bool:
        return bool(self.claims_to_headers) or self.strip_authorization


def header_fold(name: str) -> str:
    """A header name as CGI, PHP and nginx (underscores_in_headers) read it: case and '_'/'-' ignored."""
    return name.lower().replace("_", "-")


def parse_header_rules(data: Mapping[str, Any], token_source: TokenSource | None = None) -> HeaderRules:
    """``claims_to_headers`` and ``strip_authorization`` from config_data; ConfigurationError names the key."""
    mapping = data.get("claims_to_headers")
    pairs: list[tuple[str, str]] = []
    if mapping is not None:
        if not isinstance(mapping, dict):
            raise ConfigurationError("claims_to_headers", "must be an object of claim name -> header name")
        seen: set[str] = set()
        for claim, header in mapping.items():
            if not claim or not isinstance(header, str) or not FIELD_NAME.fullmatch(header):
                raise ConfigurationError("claims_to_headers", f"claim {claim!r}: {header!r} is not a valid header name")
            if header.lower() in _RESERVED_HEADERS or header.lower() == "authorization":
                raise ConfigurationError("claims_to_headers", f"header {header!r} cannot be set from a claim")
            folded = header_fold(header)
            if folded in seen:
                raise ConfigurationError("claims_to_headers", f"header {header!r} is named twice (upstreams that "
                                         "fold '_' into '-' read X_A and X-A as one)")
            seen.add(folded)
            pairs.append((claim, header))
    strip = _flag(data, "strip_authorization")
    if not strip:
        return HeaderRules(claims_to_headers=tuple(pairs))
    if token_source is None:  # the hook parses config_data on its own; build_config has parsed it already
        token_source = parse_token_source(data)
    # The dpop value itself is validated where the API's configuration is parsed.
    dpop = data.get("dpop") in ("allowed", "required")
    return HeaderRules(claims_to_headers=tuple(pairs), strip_authorization=True, token_source=token_source,
                       strip_dpop=dpop)
