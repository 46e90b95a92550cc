"""`tyk-auth0-plugin check` gives the servicer's exact answer for a token, and says which check refused it."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import time
from pathlib import Path

import pytest

from plugin import check
from plugin.config import parse_config_data
from plugin.devstack.idp import DPoPKey
from tests.support import tokens as t
from tests.support.jwks_server import JwksServer
from tests.support.objects import auth_object, config_data

ROOT = Path(__file__).resolve().parents[2]
NOW = int(time.time())


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tyk-auth0-plugin")
    check.add_cli(root.add_subparsers(dest="command", required=True))
    return root


def run(*argv: str, stdin: str = "") -> tuple[int, str]:
    args = parser().parse_args(["check", *argv])
    out = io.StringIO()
    code = args.func(args, out=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


def run_json(*argv: str) -> tuple[int, dict]:
    code, text = run(*argv, "--json")
    return code, json.loads(text)


@pytest.fixture(scope="module")
def jwks_server(signing_key, next_key):
    with JwksServer(signing_key, next_key) as server:  # shared: shutting one down costs half a second
        yield server


@pytest.fixture()
def cfg(jwks_server) -> str:
    return config_data(jwt_source=jwks_server.url)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def tampered(key: t.SigningKey) -> str:
    header, _, signature = t.sign(key).split(".")
    return f"{header}.{t.b64url(json.dumps(t.claims(pol='admin')).encode())}.{signature}"


# name -> (token factory, the step the text must name as failing, or None for a pass)
CORPUS = {
    "valid": (lambda k: t.sign(k), None),
    "valid_ps256": (lambda k: t.sign(k, alg="PS256"), None),
    "expired": (lambda k: t.sign(k, t.claims(exp=NOW - 3 * 3600)), "exp"),
    "nbf_future": (lambda k: t.sign(k, t.claims(nbf=NOW + 600)), "nbf"),
    "iat_future": (lambda k: t.sign(k, t.claims(iat=NOW + 600)), "iat"),
    "expired_and_nbf_future": (lambda k: t.sign(k, t.claims(exp=NOW - 5, nbf=NOW + 600)), "nbf"),
    "wrong_iss": (lambda k: t.sign(k, t.claims(iss="https://tenant.example.auth0.com")), "issuer"),
    "missing_iss": (lambda k: t.sign(k, t.claims(iss=t.DROP)), "issuer"),
    "wrong_aud": (lambda k: t.sign(k, t.claims(aud=["https://other", "https://x/userinfo"])), "audience"),
    "alg_none": (lambda k: t.raw_token({"alg": "none", "typ": "JWT", "kid": k.kid}, t.claims(), b""), "algorithm"),
    "hs256_confusion": (lambda k: t.hs256_with_public_pem(k), "algorithm"),
    "es256": (lambda k: t.sign(t.ec_key()), "algorithm"),
    "tampered": (tampered, "signature"),
    "same_kid_other_key": (lambda k: t.sign(t.rsa_key(k.kid)), "signature"),
    "garbage": (lambda k: "garbage", "parse"),
    "jwe": (lambda k: ".".join(t.b64url(p) for p in [b'{"alg":"RSA-OAEP-256"}', b"k", b"iv", b"ct", b"tag"]), "parse"),
    "unknown_kid": (lambda k: t.sign(t.rsa_key("never-published")), "key"),
    "no_kid": (lambda k: t.sign(k, headers={"kid": t.DROP}), "key"),
    "id_token_typ": (lambda k: t.sign(k, headers={"typ": "id_token+jwt"}), "header"),
    "crit": (lambda k: t.sign(k, headers={"crit": ["exp"]}), "header"),
    "no_policy": (lambda k: t.sign(k, t.claims(pol=t.DROP)), "policies"),
    "empty_sub": (lambda k: t.sign(k, t.claims(sub="")), "identity"),
    "huge": (lambda k: t.sign(k, t.claims(blob="x" * 70_000)), "size"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_verdict_equals_the_servicer_answer(case, plugin, signing_key, cfg):
    make, failing = CORPUS[case]
    token = make(signing_key)
    reply = plugin.dispatch(auth_object(bearer(token), config=cfg))
    code, report = run_json("--config-data", cfg, "--token", token, "--org-id", "default", "--no-discovery")
    assert not [n for n in report["notes"] if "disagree" in n]
    overrides = reply.request.return_overrides
    if failing is None:
        assert (code, report["verdict"]) == (0, "pass")
        assert overrides.response_code == -1
        assert report["session"]["policies"] == list(reply.session.apply_policies)
        assert report["session"]["key_id"] == reply.metadata["token"]
        assert report["session"]["alias"] == reply.session.alias
        assert report["session"]["expires"] == reply.session.expires
    else:
        assert (code, report["verdict"]) == (1, "refused")
        assert report["response"] == {"status": overrides.response_code,
                                      "body": {"error": overrides.response_error}}
        assert report["failed_step"] == failing


@pytest.mark.parametrize("case", sorted(c for c, (_, failing) in CORPUS.items() if failing))
def test_text_output_names_the_failing_check_and_the_gateway_answer(case, plugin, signing_key, cfg):
    make, failing = CORPUS[case]
    token = make(signing_key)
    reply = plugin.dispatch(auth_object(bearer(token), config=cfg))
    code, text = run("--config-data", cfg, "--token", token, "--no-discovery")
    assert code == 1
    assert f"[FAIL] {failing}" in text
    assert f"REFUSED at {failing}" in text
    overrides = reply.request.return_overrides
    assert f'Gateway    {overrides.response_code} {json.dumps({"error": overrides.response_error})}' in text


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("case", ["valid", "tampered", "expired"])
def test_the_token_and_its_signature_are_never_printed(case, as_json, signing_key, cfg):
    token = CORPUS[case][0](signing_key)
    code, text = run("--config-data", cfg, "--token", token, "--no-discovery", *(["--json"] if as_json else []))
    signature = token.split(".")[2]
    assert token not in text and signature not in text
    assert "key-current" in text  # the kid is shown


def test_valid_token_shows_the_session(signing_key, cfg):
    token = t.sign(signing_key, t.claims(exp=NOW + 7200))
    code, text = run("--config-data", cfg, "--token", bearer(token), "--org-id", "default", "--no-discovery")
    expected_key = "default" + hashlib.md5(b"client-abc@clients").hexdigest()
    assert code == 0 and "Verdict    PASS" in text
    assert f"key id     {expected_key}" in text
    assert "policies   auth0-policy" in text
    assert "alias      client-abc@clients" in text
    assert "expires in 2 h" in text
    assert "deadline" in text


def test_relative_times_and_hints(signing_key, cfg):
    token = t.sign(signing_key, t.claims(exp=NOW - 3 * 3600))
    _, text = run("--config-data", cfg, "--token", token, "--no-discovery")
    assert "expired 3 h ago" in text
    token = t.sign(signing_key, t.claims(iss="https://tenant.example.auth0.com"))
    _, text = run("--config-data", cfg, "--token", token, "--no-discovery")
    assert ("issuer 'https://tenant.example.auth0.com' does not match 'https://tenant.example.auth0.com/' "
            "— Auth0 issuers end with a slash") in text


def test_alg_hint_names_the_hmac_default(signing_key, jwks_server):
    config = config_data(jwt_source=base64.b64encode(b"secret").decode(), jwt_signing_method="hmac")
    code, text = run("--config-data", config, "--token", t.sign(signing_key), "--no-discovery")
    assert code == 1 and "Tyk's native default when the field is left empty" in text


def test_hmac_secret_encoded_twice_is_diagnosed():
    secret = b"auth0-api-signing-secret"
    header = t.b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = t.b64url(json.dumps(t.claims()).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{t.b64url(signature)}"
    twice = base64.b64encode(base64.b64encode(secret)).decode()
    config = config_data(jwt_source=twice, jwt_signing_method="hmac")
    code, text = run("--config-data", config, "--token", token, "--no-discovery")
    assert code == 1 and "[FAIL] signature" in text and "decoded twice" in text
    good = config_data(jwt_source=base64.b64encode(secret).decode(), jwt_signing_method="hmac")
    assert run("--config-data", good, "--token", token, "--no-discovery")[0] == 0


def test_token_from_stdin(signing_key, cfg):
    code, text = run("--config-data", cfg, "--token", "-", "--no-discovery", stdin=t.sign(signing_key) + "\n")
    assert code == 0 and "PASS" in text


def test_empty_token_is_authorization_field_missing(plugin, cfg):
    reply = plugin.dispatch(auth_object(None, config=cfg))
    code, report = run_json("--config-data", cfg, "--token", "", "--no-discovery")
    assert code == 1
    assert report["response"]["body"]["error"] == reply.request.return_overrides.response_error
    assert report["response"]["status"] == 400


# -- configuration -------------------------------------------------------------------------------------------

def test_bad_config_is_exit_2_with_the_servicer_answer(plugin, signing_key):
    bad = config_data(audiance="https://api.example.com")
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), config=bad))
    code, report = run_json("--config-data", bad, "--token", t.sign(signing_key), "--no-discovery")
    assert code == 2 and report["verdict"] == "config_error"
    assert report["config_error"]["key"] == "audiance"
    assert report["response"] == {"status": 500, "body": {"error": reply.request.return_overrides.response_error}}
    code, text = run("--config-data", bad, "--no-discovery")
    assert code == 2 and "INVALID: audiance: unknown setting (did you mean 'audience'?)" in text


def test_base64url_jwt_source_gets_a_hint():
    code, text = run("--config-data", json.dumps({"jwt_source": "aHR0cHM6Ly9-_", "audience": "x"}), "--no-discovery")
    assert code == 2 and "base64url alphabet" in text


def test_a_raw_hmac_secret_is_told_to_be_base64_encoded_as_the_gateway_decodes_it():
    data = {"jwt_source": "mysecret!-long-enough-value-xx", "jwt_signing_method": "hmac"}
    code, text = run("--config-data", json.dumps(data), "--no-discovery")
    assert code == 2 and "jwt_source is not base64: the gateway base64-decodes it" in text
    assert "a raw secret must be base64-encoded" in text
    assert "base64url" not in text and "padding\n" not in text


def test_a_raw_pem_key_is_told_to_be_base64_encoded():
    data = {"jwt_source": "-----BEGIN PUBLIC KEY-----", "jwt_signing_method": "rsa"}
    code, text = run("--config-data", json.dumps(data), "--no-discovery")
    assert code == 2 and "a PEM key must be base64-encoded" in text


def test_base64_jwks_url_with_a_trailing_newline_is_noted(jwks_server):
    encoded = base64.b64encode((jwks_server.url + "\n").encode()).decode()
    code, text = run("--config-data", config_data(jwt_source=encoded), "--no-discovery")
    assert code == 0
    assert f"jwt_source is base64 of the URL {jwks_server.url}" in text and "ends with a newline" in text


def test_a_config_without_audience_is_noted_as_admitting_auth0_id_tokens(jwks_server):
    code, report = run_json("--config-data", config_data(jwt_source=jwks_server.url, audience=None), "--no-discovery")
    assert code == 0
    assert any(n.startswith("audience is not set") and "ID tokens" in n for n in report["notes"])


def test_without_a_token_the_config_and_keys_are_shown(cfg):
    code, report = run_json("--config-data", cfg, "--no-discovery")
    assert code == 0 and report["verdict"] == "no_token"
    assert [k["kid"] for k in report["jwks"]["keys"]] == ["key-current", "key-next"]
    assert report["config"]["issuers"] == ["https://tenant.example.auth0.com/"]


def test_jwks_down_refuses_like_the_servicer(make_plugin, idp, signing_key, jwks_server, cfg):
    idp.failing = True
    token = t.sign(signing_key)
    reply = make_plugin().dispatch(auth_object(bearer(token), config=cfg))
    jwks_server.status = 503
    try:
        code, report = run_json("--config-data", cfg, "--no-discovery")
        assert code == 1 and report["verdict"] == "keys_unavailable"
        assert report["jwks"]["error"] == "HTTP 503"
        code, report = run_json("--config-data", cfg, "--token", token, "--no-discovery")
    finally:
        jwks_server.status = 200
    assert code == 1 and report["failed_step"] == "key"
    assert report["response"]["body"]["error"] == reply.request.return_overrides.response_error == "Key not authorized"


def test_an_unreadable_or_missing_api_definition_file_is_a_usage_error(tmp_path):
    path = tmp_path / "api.json"
    path.write_text("{not json")
    assert run("--api", str(path))[0] == 2
    assert run("--api", str(tmp_path / "missing.json"))[0] == 2


def test_api_and_config_data_are_mutually_exclusive():
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["check", "--api", "a", "--config-data", "{}"])
    assert info.value.code == 2


@pytest.mark.parametrize("example", ["api-classic.json", "api-oas.json"])
def test_classic_and_oas_definitions_are_read(example, tmp_path, signing_key, jwks_server):
    document = json.loads((ROOT / "bundle" / example).read_text())
    data = {"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE,
            "jwt_default_policies": ["auth0-policy"]}
    if example == "api-classic.json":
        document["config_data"] = data
        document["jwt_identity_base_field"] = "email"  # a leftover native setting
    else:
        document["x-tyk-api-gateway"]["middleware"]["global"]["pluginConfig"]["data"]["value"] = data
    path = tmp_path / example
    path.write_text(json.dumps(document))
    code, report = run_json("--api", str(path), "--token", t.sign(signing_key, t.claims(pol=t.DROP)), "--no-discovery")
    assert code == 0
    assert report["api"]["org_id"] == "default" and report["api"]["api_id"] == "auth0-plugin"
    assert report["session"]["policies"] == ["auth0-policy"]
    assert report["session"]["key_id"] == "default" + hashlib.md5(b"client-abc@clients").hexdigest()
    if example == "api-classic.json":
        assert any("native setting jwt_identity_base_field is ignored" in n for n in report["notes"])


def test_dashboard_export_is_read_as_the_classic_definition_it_wraps(tmp_path, signing_key, jwks_server):
    document = json.loads((ROOT / "bundle" / "api-classic.json").read_text())
    document["config_data"] = {"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE,
                               "jwt_default_policies": ["auth0-policy"]}
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"api_model": {}, "api_definition": document, "hook_references": [],
                                "is_site": False, "sort_by": 0}))
    code, report = run_json("--api", str(path), "--token", t.sign(signing_key, t.claims(pol=t.DROP)), "--no-discovery")
    assert code == 0
    assert report["api"]["api_id"] == "auth0-plugin"
    assert report["session"]["policies"] == ["auth0-policy"]


def test_oas_with_config_data_disabled_falls_back_to_the_environment(tmp_path, monkeypatch):
    for name in ("AUTH0_DOMAIN", "AUTH0_JWT_SOURCE", "AUTH0_ISSUER", "AUTH0_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    document = json.loads((ROOT / "bundle" / "api-oas.json").read_text())
    document["x-tyk-api-gateway"]["middleware"]["global"]["pluginConfig"]["data"]["enabled"] = False
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    code, report = run_json("--api", str(path), "--no-discovery")
    assert code == 2 and report["config_error"]["key"] == "config_data"
    assert any("config_data is disabled" in n for n in report["notes"])


def test_gateway_json_matches_go_marshal():
    assert check.gateway_json({"b": "<&>", "a": [1, {"d": 1, "c": 2}]}) == \
        '{"a":[1,{"c":2,"d":1}],"b":"\\u003c\\u0026\\u003e"}'


# -- discovery -----------------------------------------------------------------------------------------------

def test_discovery_document_is_checked_against_the_configuration(signing_key):
    with JwksServer(signing_key) as tenant:
        config = json.dumps({"jwt_source": tenant.base + "/.well-known/jwks.json", "issuer": tenant.base + "/",
                             "audience": t.AUDIENCE})
        token = t.sign(signing_key, t.claims(iss=tenant.base + "/"))
        code, report = run_json("--config-data", config, "--token", token)
        assert code == 0
        assert report["discovery"]["ok"] and report["discovery"]["problems"] == []
        assert report["discovery"]["url"] == tenant.base + "/.well-known/openid-configuration"
        # the same tenant configured without the trailing slash
        config = json.dumps({"jwt_source": tenant.base + "/keys.json", "issuer": tenant.base,
                             "audience": t.AUDIENCE})
        code, text = run("--config-data", config)
        assert "differ only by the trailing slash" in text
        assert f"the tenant publishes its keys at {tenant.base}/.well-known/jwks.json" in text
        assert "JWKS" in text and "unavailable (HTTP 404)" in text
        assert code == 1


# -- the gateway's policies -----------------------------------------------------------------------------------

def test_tyk_policies_checks_policy_ids_like_the_servicer(tmp_path, idp, signing_key, cfg):
    from plugin.auth import Authenticator, ConfigStore
    from plugin.hooks import HookRouter
    from plugin.jwks import JwksCache
    from plugin.policy_index import PolicyIndex, from_path
    from plugin.verify import Verifier
    from tests.support.objects import AUTH_HOOK

    (tmp_path / "auth0-policy.json").write_text(json.dumps(
        {"id": "auth0-policy", "org_id": "default", "access_rights": {"auth0-plugin": {}}}))
    index = PolicyIndex(from_path(tmp_path))
    assert index.refresh()
    router = HookRouter(AUTH_HOOK, Authenticator(Verifier(JwksCache(fetcher=idp)), ConfigStore(defaults={}),
                                                 policy_index=index).authenticate)
    unknown = t.sign(signing_key, t.claims(pol="gold"))
    reply = router.dispatch(auth_object(bearer(unknown), config=cfg))
    code, report = run_json("--config-data", cfg, "--token", unknown, "--org-id", "default",
                            "--tyk-policies", str(tmp_path), "--no-discovery")
    assert code == 1 and report["failed_step"] == "policies"
    assert report["response"]["body"]["error"] == reply.request.return_overrides.response_error
    code, text = run("--config-data", cfg, "--token", t.sign(signing_key), "--org-id", "default",
                     "--tyk-policies", str(tmp_path), "--no-discovery")
    assert code == 0 and "all known to the gateway" in text


def write_policy(directory: Path, granted_api: str) -> Path:
    (directory / "auth0-policy.json").write_text(json.dumps(
        {"id": "auth0-policy", "org_id": "default", "access_rights": {granted_api: {"api_id": granted_api}}}))
    return directory


def test_a_token_whose_policies_grant_no_access_to_the_api_is_refused_at_access_rights(tmp_path, signing_key, cfg):
    policies = write_policy(tmp_path, granted_api="another-api")
    code, report = run_json("--config-data", cfg, "--token", t.sign(signing_key), "--org-id", "default",
                            "--api-id", "auth0-plugin", "--tyk-policies", str(policies), "--no-discovery")
    assert (code, report["verdict"], report["failed_step"]) == (1, "refused", "access rights")
    assert report["response"] == {"status": 403, "body": {"error": "Access to this API has been disallowed"}}


def test_a_token_whose_policies_grant_access_to_the_api_passes_the_access_rights_check(tmp_path, signing_key, cfg):
    policies = write_policy(tmp_path, granted_api="auth0-plugin")
    code, report = run_json("--config-data", cfg, "--token", t.sign(signing_key), "--org-id", "default",
                            "--api-id", "auth0-plugin", "--tyk-policies", str(policies), "--no-discovery")
    assert (code, report["verdict"], report["failed_step"]) == (0, "pass", None)
    assert report["session"]["policies"] == ["auth0-policy"]


# -- the guides stay in step with the code ----------------------------------------------------------------

def test_troubleshooting_covers_every_refusal_text_and_the_check_command():
    from plugin import errors

    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    fixed = [errors.MissingToken(), errors.UnexpectedSigningMethod(), errors.InvalidToken(), errors.TokenExpired(),
             errors.TokenUsedBeforeIssued(), errors.TokenNotValidYet(), errors.NoMatchingPolicy(),
             errors.NoMatchingPolicy("key not authorized: no matching policy found in scope claim"),
             errors.NoMatchingPolicy("key not authorized: no matching policy"),
             errors.NoMatchingPolicy("key not authorized: could not apply several policies"),
             errors.UnknownHook()]
    for error in fixed:
        assert f"`{error.message}`" in text, error.message
    for fragment in ("Key not authorized: invalid issuer claim:", "no matching audience found in token",
                     "no suitable claims for user ID were found", "found an empty user ID in sub claim",
                     "Auth plugin misconfigured:", "failed to create key: policy not found:",
                     "`Forbidden`", "`Middleware error`", "tyk-auth0-plugin check",
                     "Auth0 issuers end with a slash", "token lifetime exceeds the maximum of",
                     "expiration time (exp) claim is required but not present in token"):
        assert fragment in text, fragment
    from plugin.metrics import REASONS

    for reason in REASONS:
        if reason not in ("claims", "unknown_hook"):  # claims is the base class; unknown_hook is 'Key not authorised'
            assert f"`{reason}`" in text, reason


def test_migration_guide_names_every_native_twin():
    from plugin.config import SETTINGS

    text = (ROOT / "docs" / "migration.md").read_text()
    for setting in SETTINGS:
        if setting.native:
            native = setting.native.split(" ")[0]
            assert f"`{native}`" in text and f"`{setting.key}`" in text, setting.key
    for oas in check.OAS_NATIVE_KEYS:
        assert f"`{oas}" in text, oas


# -- inputs the explanation must survive ------------------------------------------------------------------

def test_claims_cannot_draw_or_hide_lines_in_the_text_report(cfg, signing_key):
    forged = tampered(signing_key).split(".")
    payload = t.b64url(json.dumps(t.claims(sub="x\n\nVerdict    PASS: the plugin accepts this token\x1b[8m")).encode())
    code, text = run("--config-data", cfg, "--token", f"{forged[0]}.{payload}.{forged[2]}")
    assert code == 1
    verdicts = [line for line in text.splitlines() if line.startswith("Verdict")]
    assert verdicts == ["Verdict    REFUSED at signature"]
    assert "\x1b" not in text


def test_terminal_safe_keeps_the_line_breaks_around_a_line():
    assert check.terminal_safe("\nToken\n") == "\nToken\n"
    assert check.terminal_safe("  sub = a\nb\u202e\n") == "  sub = a\\nb\\u202e\n"


def test_whole_number_floats_reach_the_check_as_the_gateway_marshals_them(jwks_server, signing_key):
    data = json.loads(config_data(jwt_source=jwks_server.url))
    data.update({"jwt_expires_at_validation_skew": 5.0, "id_extractor_ttl": 3e2})
    assert check.gateway_json({"a": 5.0, "b": [3e2, 0.5], "c": 1e21}) == '{"a":5,"b":[300,0.5],"c":1e+21}'
    code, _ = run("--config-data", json.dumps(data), "--token", t.sign(signing_key), "--no-discovery")
    assert code == 0


def test_the_server_token_size_limit_is_the_checks_limit(cfg, signing_key):
    token = t.sign(signing_key, t.claims(blob="x" * 10_000))
    assert run("--config-data", cfg, "--token", token, "--no-discovery")[0] == 0
    code, report = run_json("--config-data", cfg, "--token", token, "--no-discovery", "--max-token-bytes", "8192")
    assert code == 1 and report["failed_step"] == "size"


def test_whitespace_around_the_token_argument_is_trimmed_as_the_gateway_trims_it(cfg, signing_key):
    assert run("--config-data", cfg, "--token", f"  {t.sign(signing_key)} ", "--no-discovery")[0] == 0


def test_an_unreadable_issuer_url_in_the_token_gets_a_verdict_not_a_traceback(cfg, signing_key):
    code, text = run("--config-data", cfg, "--token", t.sign(signing_key, t.claims(iss="https://[evil/")),
                     "--no-discovery")
    assert code == 1 and "REFUSED at issuer" in text


def test_an_oas_definition_with_odd_levels_is_read_without_a_traceback(tmp_path):
    api = {"openapi": "3.0.3", "info": {"title": "x", "version": "1"}, "paths": {},
           "x-tyk-api-gateway": {"info": {"id": "a", "orgId": "o"}, "server": "x", "middleware": [1]}}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(api))
    code, text = run("--api", str(path), "--no-discovery")
    assert code == 2
    assert "server.authentication.custom is not enabled" in text
    assert "Verdict    CONFIGURATION ERROR" in text


def test_only_blanks_are_trimmed_from_the_token_as_the_gateway_trims_them(cfg, signing_key):
    code, report = run_json("--config-data", cfg, "--token", t.sign(signing_key) + "\u00a0", "--no-discovery")
    assert code == 1 and report["failed_step"] == "signature"


def test_a_token_on_stdin_that_is_not_utf8_gets_a_verdict(cfg):
    class BinaryStdin(io.StringIO):
        buffer = io.BytesIO(b"\xff\xfe.\xff.\xff\n")

    args = parser().parse_args(["check", "--config-data", cfg, "--token", "-", "--no-discovery"])
    code = args.func(args, out=io.StringIO(), stdin=BinaryStdin())
    assert code == 1


def test_the_token_size_limit_variable_is_read_with_serves_rules(monkeypatch, capsys):
    monkeypatch.setenv("TYK_AUTH0_MAX_TOKEN_BYTES", "512")
    with pytest.raises(SystemExit):
        parser().parse_args(["check", "--token", "x"])
    assert "TYK_AUTH0_MAX_TOKEN_BYTES" in capsys.readouterr().err


def write_empty_policy(directory: Path) -> Path:
    (directory / "auth0-policy.json").write_text(json.dumps({"id": "auth0-policy", "org_id": "default", "access_rights": {}}))
    return directory


def test_a_base_policy_that_grants_no_api_gets_native_s_refusal(tmp_path, signing_key, cfg):
    code, report = run_json("--config-data", cfg, "--token", t.sign(signing_key), "--org-id", "default",
                            "--tyk-policies", str(write_empty_policy(tmp_path)), "--no-discovery")
    assert (code, report["failed_step"]) == (1, "policies")
    assert report["response"] == {"status": 500,
                                  "body": {"error": "failed to create key: key has no valid policies to be applied"}}


def test_a_base_policy_that_grants_no_api_is_named_in_the_report(tmp_path, signing_key, cfg):
    code, text = run("--config-data", cfg, "--token", t.sign(signing_key), "--org-id", "default",
                     "--tyk-policies", str(write_empty_policy(tmp_path)), "--no-discovery")
    assert code == 1
    assert "auth0-policy grant no API: their access rights are empty" in text


def test_a_token_for_an_api_reading_a_query_parameter_is_checked_from_there(jwks_server, signing_key):
    config = config_data(jwt_source=jwks_server.url, disable_header=True, use_param=True, param_name="access_token")
    code, report = run_json("--config-data", config, "--token", t.sign(signing_key), "--no-discovery")
    assert code == 0 and report["verdict"] == "pass"
    assert "the query parameter 'access_token'" in report["steps"][0]["detail"]


def test_a_missing_token_names_where_this_api_reads_it(jwks_server):
    config = config_data(jwt_source=jwks_server.url, auth_header_name="X-Auth0-Token")
    code, text = run("--config-data", config, "--token", "")
    assert code == 1
    assert "send the access token in the X-Auth0-Token header" in text


def test_a_native_token_location_left_in_auth_configs_is_noted_and_the_default_header_is_not(
        tmp_path, signing_key, jwks_server):
    document = json.loads((ROOT / "bundle" / "api-classic.json").read_text())
    document["config_data"] = {"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE}
    document["auth_configs"] = {"jwt": {"auth_header_name": "Authorization", "use_param": True,
                                        "param_name": "access_token"}}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    _, report = run_json("--api", str(path), "--no-discovery")
    notes = " ".join(report["notes"])
    assert "native setting auth_configs.jwt.use_param is ignored by the plugin: put it in config_data as " \
           "'use_param'" in notes
    assert "auth_configs.jwt.param_name" in notes
    assert "auth_configs.jwt.auth_header_name" not in notes


def test_require_jti_is_a_step_of_its_own(jwks_server, signing_key):
    config = config_data(jwt_source=jwks_server.url, require_jti=True)
    code, report = run_json("--config-data", config, "--token", t.sign(signing_key, t.claims(jti=t.DROP)),
                            "--no-discovery")
    assert code == 1 and report["failed_step"] == "jti"
    assert report["response"] == {"status": 401, "body": {
        "error": "Key not authorized: JWT ID (jti) claim is required but not present in token"}}


def test_max_token_lifetime_is_a_step_showing_the_token_s_lifetime(jwks_server, signing_key):
    now = int(time.time())
    config = config_data(jwt_source=jwks_server.url, max_token_lifetime=3600)
    token = t.sign(signing_key, t.claims(iat=now, exp=now + 86400))
    code, report = run_json("--config-data", config, "--token", token, "--no-discovery")
    assert code == 1 and report["failed_step"] == "lifetime"
    step = next(s for s in report["steps"] if s["name"] == "lifetime")
    assert step["detail"] == "24 h from iat to exp (max_token_lifetime 60 min)"
    assert "Token Expiration" in " ".join(step["hints"])
    assert report["response"] == {"status": 401, "body": {
        "error": "Key not authorized: token lifetime exceeds the maximum of 3600 seconds"}}


def test_a_token_within_max_token_lifetime_passes_the_lifetime_step(jwks_server, signing_key):
    now = int(time.time())
    config = config_data(jwt_source=jwks_server.url, max_token_lifetime=86400)
    code, report = run_json("--config-data", config, "--token", t.sign(signing_key, t.claims(iat=now, exp=now + 600)),
                            "--no-discovery")
    assert code == 0
    assert next(s for s in report["steps"] if s["name"] == "lifetime")["status"] == "pass"


def test_without_auth_configs_jwt_the_older_auth_object_is_read_for_leftovers(tmp_path, jwks_server):
    document = json.loads((ROOT / "bundle" / "api-classic.json").read_text())
    document["config_data"] = {"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE}
    document.pop("auth_configs", None)
    document["auth"] = {"use_cookie": True, "cookie_name": "at"}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    _, report = run_json("--api", str(path), "--no-discovery")
    assert any("native setting auth.use_cookie is ignored" in n for n in report["notes"])


def test_an_enabled_oas_jwt_scheme_names_the_config_data_twins_of_its_fields(tmp_path):
    document = json.loads((ROOT / "bundle" / "api-oas.json").read_text())
    document["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"] = {"jwtAuth": {
        "enabled": True, "query": {"enabled": True, "name": "at"}, "jtiValidation": {"enabled": True},
        "customClaimValidation": {"azp": {"type": "exact_match", "allowedValues": ["a"]}}}}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    _, report = run_json("--api", str(path), "--no-discovery")
    note = next(n for n in report["notes"] if "native JWT security scheme 'jwtAuth' is enabled" in n)
    for twin in ("query -> use_param / param_name", "jtiValidation -> require_jti",
                 "customClaimValidation -> custom_claim_validation"):
        assert twin in note


def test_with_a_subject_claim_list_the_identity_step_names_the_claim_that_gave_it(jwks_server, signing_key):
    data = config_data(jwt_source=jwks_server.url, jwt_identity_base_field=["email", "user_id"])
    token = t.sign(signing_key, t.claims(user_id="u-1"))
    _, report = run_json("--config-data", data, "--token", token, "--no-discovery")
    identity = next(s for s in report["steps"] if s["name"] == "identity")
    assert identity["status"] == "pass" and identity["detail"] == "user_id = 'u-1'"


def test_with_a_subject_claim_list_absent_the_identity_step_says_sub_was_the_fallback(jwks_server, signing_key):
    data = config_data(jwt_source=jwks_server.url, jwt_identity_base_field=["email", "user_id"])
    token = t.sign(signing_key, t.claims(sub="auth0|7"))
    _, report = run_json("--config-data", data, "--token", token, "--no-discovery")
    identity = next(s for s in report["steps"] if s["name"] == "identity")
    assert identity["detail"] == "sub = 'auth0|7' (fallback: 'email', 'user_id' are absent)"


def test_an_oas_scheme_with_base_policy_claims_but_no_policy_field_name_is_noted(tmp_path):
    document = json.loads((ROOT / "bundle" / "api-oas.json").read_text())
    document["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"] = {"jwtAuth": {
        "enabled": True, "basePolicyClaims": ["https://example.com/pol"], "subjectClaims": ["email"]}}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    _, report = run_json("--api", str(path), "--no-discovery")
    assert any("basePolicyClaims but no policyFieldName: native JWT then takes no policy from the token" in n
               for n in report["notes"])
    note = next(n for n in report["notes"] if "native JWT security scheme 'jwtAuth' is enabled" in n)
    assert "subjectClaims -> jwt_identity_base_field (a list)" in note


def test_with_several_jwks_the_key_step_names_the_set_that_publishes_the_kid(jwks_server, signing_key):
    other = t.rsa_key("other-tenant")
    with JwksServer(other) as second:
        data = config_data(jwt_source=[jwks_server.url, second.url])
        code, report = run_json("--config-data", data, "--token", t.sign(other), "--no-discovery")
        _, text = run("--config-data", data, "--token", t.sign(other), "--no-discovery")
    key = next(s for s in report["steps"] if s["name"] == "key")
    assert code == 0 and key["detail"] == f"kid 'other-tenant' found in the JWKS {second.url}"
    assert [s["url"] for s in report["jwks"]["sets"]] == [jwks_server.url, second.url]
    assert text.count("JWKS       http") == 2


def test_with_several_jwks_one_that_cannot_be_fetched_leaves_the_others(jwks_server, signing_key):
    with JwksServer(t.rsa_key("gone")) as down:
        url = down.url
    data = config_data(jwt_source=[url, jwks_server.url])
    code, report = run_json("--config-data", data, "--token", t.sign(signing_key), "--no-discovery")
    assert code == 0 and report["verdict"] == "pass"
    assert [s["ok"] for s in report["jwks"]["sets"]] == [False, True]


# -- native fields left behind ------------------------------------------------------------------------------

def classic_api(tmp_path, **fields):
    document = json.loads((ROOT / "bundle" / "api-classic.json").read_text())
    document.update(fields)
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.mark.parametrize(("field", "value"), [("jwt_skip_kid", True), ("jwt_client_base_field", "azp"),
                                              ("idp_client_id_mapping_disabled", True),
                                              ("jwt_jwks_uris", [{"url": "https://t.example/jwks.json"}])])
def test_a_classic_native_field_without_a_twin_is_noted(tmp_path, field, value):
    _, report = run_json("--api", classic_api(tmp_path, **{field: value}), "--no-discovery")
    assert any(n.startswith(f"native setting {field} has no twin in the plugin: ") for n in report["notes"])


def test_a_classic_native_field_without_a_twin_left_at_its_zero_value_is_not_noted(tmp_path):
    _, report = run_json("--api", classic_api(tmp_path, jwt_skip_kid=False, jwt_client_base_field=""),
                         "--no-discovery")
    assert not any("has no twin" in n for n in report["notes"])


def test_a_native_scopes_object_left_behind_is_noted_with_its_twin(tmp_path):
    api = classic_api(tmp_path, scopes={"jwt": {"scope_claim_name": "permissions", "scope_to_policy": {"r": "p"}}})
    _, report = run_json("--api", api, "--no-discovery")
    notes = " ".join(report["notes"])
    assert "native setting scopes.jwt.scope_to_policy is ignored by the plugin: put it in config_data as " \
           "'jwt_scope_to_policy_mapping'" in notes
    assert "scopes.jwt.scope_claim_name" in notes


@pytest.mark.parametrize(("field", "value"), [("skipKid", True), ("clientBaseField", "azp"),
                                              ("idpClientIdMappingDisabled", True), ("allowedSubjects", ["s"])])
def test_an_oas_native_field_without_a_twin_is_noted(tmp_path, field, value):
    document = json.loads((ROOT / "bundle" / "api-oas.json").read_text())
    document["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"] = {"jwtAuth": {
        "enabled": False, field: value}}
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    _, report = run_json("--api", str(path), "--no-discovery")
    assert any(n.startswith(f"native setting securitySchemes.jwtAuth.{field} has no twin in the plugin: ")
               for n in report["notes"])


def test_the_migration_guide_lists_every_native_field_without_a_twin():
    text = (ROOT / "docs" / "migration.md").read_text()
    for name in (*check.NO_TWIN_CLASSIC, *check.NO_TWIN_OAS):
        assert f"`{name}`" in text, name


# -- the gateway's key hashing --------------------------------------------------------------------------------

def write_tyk_conf(directory: Path, **settings: object) -> str:
    path = directory / "tyk.conf"
    path.write_text(json.dumps({"listen_port": 8080, "hash_keys": True, **settings}))
    return str(path)


def test_tyk_conf_names_a_hash_key_function_the_plugin_was_not_given(tmp_path, cfg, monkeypatch):
    """The shipped tyk.conf hashes with murmur64: a plugin left without it passes every token, so
    only this comparison tells the operator that quotas are counted apart from native JWT's."""
    monkeypatch.delenv("TYK_GW_HASHKEYFUNCTION", raising=False)
    monkeypatch.delenv("TYK_HASH_KEY_FUNCTION", raising=False)
    conf = write_tyk_conf(tmp_path, hash_key_function="murmur64")
    code, report = run_json("--config-data", cfg, "--tyk-conf", conf, "--no-discovery")
    assert code == 0
    note = next(n for n in report["notes"] if n.startswith("hash_key_function"))
    assert "'' here but 'murmur64' in " + conf in note and "TYK_HASH_KEY_FUNCTION" in note


def test_tyk_conf_agrees_with_the_plugins_hash_key_function(tmp_path, jwks_server, monkeypatch):
    monkeypatch.delenv("TYK_GW_HASHKEYFUNCTION", raising=False)
    conf = write_tyk_conf(tmp_path, hash_key_function="sha256")
    cfg = config_data(jwt_source=jwks_server.url, hash_key_function="sha256")
    _, report = run_json("--config-data", cfg, "--tyk-conf", conf, "--no-discovery")
    assert "hash_key_function 'sha256' keys sessions as the gateway's 'sha256'" in " ".join(report["notes"])


@pytest.mark.parametrize(("gateway", "plugin", "agree"), [
    ("", "", True), ("murmur64", "murmur64", True), ("sha256", "murmur64", False), ("", "murmur64", False),
    ("md5", "murmur64", True),  # the gateway takes an unknown name for murmur64, as key_id does
])
def test_the_hash_functions_agree_when_the_gateway_writes_the_same_key_ids(gateway, plugin, agree):
    config = parse_config_data(json.dumps({"auth0_domain": "a.auth0.com", "hash_key_function": plugin}),
                                     environ={})
    note = check.hash_function_notes(config, gateway, "tyk.conf")[0]
    assert ("keys sessions as the gateway's" in note) == agree


def test_the_gateways_environment_variable_wins_over_tyk_conf(tmp_path):
    conf = write_tyk_conf(tmp_path, hash_key_function="murmur64")
    assert check.load_gateway_hash_function(conf, {"TYK_GW_HASHKEYFUNCTION": "sha256"}) == (
        "sha256", "TYK_GW_HASHKEYFUNCTION")
    assert check.load_gateway_hash_function(conf, {}) == ("murmur64", conf)


def test_an_unreadable_tyk_conf_is_a_usage_error(tmp_path, cfg):
    (tmp_path / "tyk.conf").write_text("{not json")
    code, _ = run("--config-data", cfg, "--tyk-conf", str(tmp_path / "tyk.conf"), "--no-discovery")
    assert code == check.EXIT_USAGE


def test_a_malformed_auth0_list_variable_is_reported_as_serve_refusing_to_start(cfg, monkeypatch):
    monkeypatch.setenv("AUTH0_AUDIENCE", '["https://api", 1]')
    code, report = run_json("--config-data", cfg, "--no-discovery")
    assert code == 2 and report["verdict"] == "config_error"
    assert report["config_error"]["key"] == "audience"
    assert any("serve refuses to start" in note and "AUTH0_AUDIENCE" in note for note in report["notes"])
    assert report["response"] is None  # no request reaches a server that never started


def test_an_environment_that_does_not_parse_refuses_the_start_for_apis_with_their_own_config_data(cfg, monkeypatch):
    monkeypatch.setenv("AUTH0_DOMAIN", "tenant.auth0.com")
    monkeypatch.setenv("AUTH0_JWT_SIGNING_METHOD", "none")
    code, text = run("--config-data", cfg, "--no-discovery")
    assert code == 2
    assert "AUTH0_JWT_SIGNING_METHOD (jwt_signing_method) is server-wide: serve refuses to start" in text
    assert "would get 500" not in text and "\nGateway " not in text


def test_the_gateways_environment_variable_is_read_with_its_blanks_as_the_gateway_reads_it(tmp_path):
    conf = write_tyk_conf(tmp_path, hash_key_function="murmur64")
    gateway, _ = check.load_gateway_hash_function(conf, {"TYK_GW_HASHKEYFUNCTION": " sha256"})
    config = parse_config_data(json.dumps({"auth0_domain": "a.auth0.com", "hash_key_function": "sha256"}), environ={})
    assert gateway == " sha256"  # an unknown name to the gateway, which then keys as murmur64
    assert "the plugin keeps each subject's session under another key" in check.hash_function_notes(
        config, gateway, "TYK_GW_HASHKEYFUNCTION")[0]



@pytest.mark.parametrize(("document", "listed_kid"), [
    (lambda key: {"Keys": [key.jwk()]}, lambda key: key.kid),
    (lambda key: {"keys": [], "KEYS": [key.jwk()]}, lambda key: key.kid),
    (lambda key: {"keys": [dict(key.jwk(), kid=None)]}, lambda key: ""),
], ids=["keys capitalised", "the last keys member", "kid null"])
def test_the_keys_listed_are_the_entries_the_server_reads(signing_key, document, listed_kid):
    body = json.dumps(document(signing_key)).encode()
    report = check.Checker(fetch=lambda url, timeout, limit: body).run(
        check.load_config_data(config_data()), None, discovery=False)
    assert [(k["kid"], k["usable"]) for k in report.jwks["keys"]] == [(listed_kid(signing_key), True)]


@pytest.fixture(scope="module")
def certified():
    """Two keys as Auth0 publishes them, with x5t and x5c."""
    from plugin.devstack.idp import SigningKey

    return SigningKey.generate(), SigningKey.generate()


def listed(entries: list) -> check.Report:
    body = json.dumps({"keys": entries}).encode()
    return check.Checker(fetch=lambda url, timeout, limit: body).run(
        check.load_config_data(config_data()), None, discovery=False)


def test_an_entry_the_server_skips_is_listed_as_ignored_though_a_usable_key_shares_its_kid(certified):
    key, other = certified
    report = listed([dict(key.jwk(), x5t=other.x5t), key.jwk()])
    assert [(k["kid"], k["usable"]) for k in report.jwks["keys"]] == [(key.kid, False), (key.kid, True)]


def test_a_key_after_the_first_usable_key_with_its_kid_is_listed_as_ignored(certified):
    key, other = certified
    report = listed([key.jwk(), dict(other.jwk(), kid=key.kid)])
    assert [(k["kid"], k["usable"]) for k in report.jwks["keys"]] == [(key.kid, True), (key.kid, False)]


def test_an_entry_go_jose_refuses_is_printed_as_ignored(certified):
    key, other = certified
    out = io.StringIO()
    check.render_text(listed([dict(other.jwk(), kid="bad", x5c=[other.jwk()["x5c"][0], "@@@"]), key.jwk()]), out)
    assert f"2 key(s): bad (RSA RS256, ignored), {key.kid} (RSA RS256)\n" in out.getvalue()


def test_a_kid_only_on_an_entry_the_server_ignores_is_told_apart_from_an_unpublished_kid(signing_key, next_key):
    body = json.dumps({"keys": [dict(signing_key.jwk(), x5t="@@@"), next_key.jwk()]}).encode()
    report = check.Checker(fetch=lambda url, timeout, limit: body).run(
        check.load_config_data(config_data()), t.sign(signing_key), discovery=False)
    step = next(s for s in report.steps if s.name == "key")
    assert (step.status, step.detail) == ("fail", f"kid {signing_key.kid!r} is only on a JWKS entry the server ignores")
    assert any("the gateway's JWK parser refuses it" in hint for hint in step.hints)
    unpublished = check.Checker(fetch=lambda url, timeout, limit: body).run(
        check.load_config_data(config_data()), t.sign(t.rsa_key("elsewhere")), discovery=False)
    step = next(s for s in unpublished.steps if s.name == "key")
    assert step.detail == "kid 'elsewhere' is not in the JWKS"
    assert not any("refuses it" in hint for hint in step.hints)


# -- the auth hook's name -----------------------------------------------------------------------------------

SERVED_HOOK = "Auth0JWTAuthCheck"


def own_hook_api(tmp_path, jwks_server, hook: str) -> str:
    """A classic definition giving the auth hook's name itself (custom_middleware), without a bundle."""
    return classic_api(tmp_path, custom_middleware_bundle="",
                       custom_middleware={"driver": "grpc", "auth_check": {"name": hook}},
                       config_data={"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE,
                                    "jwt_default_policies": ["auth0-policy"]})


def server_manifest(path: Path, hook: str) -> str:
    path.write_text(json.dumps({"custom_middleware": {"driver": "grpc", "auth_check": {"name": hook}}}))
    return str(path)


def test_an_auth_hook_the_plugin_does_not_serve_is_refused_as_the_servicer_refuses_it(
        tmp_path, plugin, signing_key, jwks_server):
    token = t.sign(signing_key)
    api = own_hook_api(tmp_path, jwks_server, "RenamedAuthCheck")
    code, report = run_json("--api", api, "--token", token, "--no-discovery",
                            "--server-manifest", server_manifest(tmp_path / "served.json", SERVED_HOOK))
    reply = plugin.dispatch(auth_object(bearer(token), hook_name="RenamedAuthCheck"))
    assert (code, report["verdict"], report["failed_step"]) == (1, "refused", "auth hook")
    assert report["response"] == {"status": reply.request.return_overrides.response_code,
                                  "body": {"error": reply.request.return_overrides.response_error}}
    assert report["response"] == {"status": 403, "body": {"error": "Key not authorised"}}
    assert report["steps"][0]["name"] == "auth hook" and report["steps"][0]["status"] == "fail"
    assert "'RenamedAuthCheck' (custom_middleware.auth_check.name)" in report["steps"][0]["detail"]
    assert f"serve '{SERVED_HOOK}'" in report["steps"][0]["detail"]
    assert not [s for s in report["steps"][1:] if s["reached"]]  # nothing after the name is reached
    assert not [n for n in report["notes"] if "disagree" in n]


def test_an_auth_hook_the_plugin_does_not_serve_is_refused_without_a_token(tmp_path, jwks_server):
    api = own_hook_api(tmp_path, jwks_server, "RenamedAuthCheck")
    code, text = run("--api", api, "--no-discovery",
                     "--server-manifest", server_manifest(tmp_path / "served.json", SERVED_HOOK))
    assert code == 1
    assert "[FAIL] auth hook" in text
    assert "Verdict    REFUSED at auth hook" in text
    assert 'Gateway    403 {"error": "Key not authorised"}' in text


def test_an_auth_hook_any_of_the_server_manifests_serves_passes(tmp_path, signing_key, jwks_server):
    api = own_hook_api(tmp_path, jwks_server, "Auth0JWTAuthCheckV2")
    code, report = run_json("--api", api, "--token", t.sign(signing_key), "--no-discovery",
                            "--server-manifest", server_manifest(tmp_path / "old.json", SERVED_HOOK),
                            "--server-manifest", server_manifest(tmp_path / "new.json", "Auth0JWTAuthCheckV2"))
    assert (code, report["verdict"]) == (0, "pass")
    assert report["steps"][0]["name"] == "auth hook" and report["steps"][0]["status"] == "pass"


def test_the_auth_hook_is_checked_against_serves_manifests_by_default(tmp_path, jwks_server, monkeypatch):
    monkeypatch.setenv("TYK_AUTH0_MANIFEST", server_manifest(tmp_path / "served.json", "FromTheEnvironment"))
    code, report = run_json("--api", own_hook_api(tmp_path, jwks_server, SERVED_HOOK), "--no-discovery")
    assert (code, report["failed_step"]) == (1, "auth hook")
    monkeypatch.delenv("TYK_AUTH0_MANIFEST")
    code, report = run_json("--api", own_hook_api(tmp_path, jwks_server, SERVED_HOOK), "--no-discovery")
    assert code == 0 and report["steps"][0]["status"] == "pass"  # the repository's manifest


def test_an_oas_function_name_is_checked_as_the_classic_auth_check_name(tmp_path, jwks_server):
    document = json.loads((ROOT / "bundle" / "api-oas.json").read_text())
    tyk = document["x-tyk-api-gateway"]
    tyk["middleware"]["global"]["pluginConfig"]["bundle"]["enabled"] = False
    tyk["middleware"]["global"]["pluginConfig"]["data"]["value"] = {"jwt_source": jwks_server.url}
    tyk["server"]["authentication"]["custom"]["config"] = {"enabled": True, "functionName": "RenamedAuthCheck"}
    path = tmp_path / "oas.json"
    path.write_text(json.dumps(document))
    code, report = run_json("--api", str(path), "--no-discovery",
                            "--server-manifest", server_manifest(tmp_path / "served.json", SERVED_HOOK))
    assert (code, report["failed_step"]) == (1, "auth hook")
    assert "(server.authentication.custom.config.functionName)" in report["steps"][0]["detail"]


@pytest.mark.parametrize("example", ["api-classic.json", "api-oas.json"])
def test_an_api_loading_a_bundle_is_noted_as_checked_by_bundle_verify(example, tmp_path, jwks_server):
    # The bundle's manifest replaces the definition's hooks: a name left in the definition is not the one called.
    document = json.loads((ROOT / "bundle" / example).read_text())
    document["custom_middleware"] = {"driver": "grpc", "auth_check": {"name": "NotCalled"}}
    path = tmp_path / example
    path.write_text(json.dumps(document))
    _, report = run_json("--api", str(path), "--no-discovery",
                         "--server-manifest", server_manifest(tmp_path / "served.json", SERVED_HOOK))
    assert not [s for s in report["steps"] if s["name"] == "auth hook"]
    assert any(n.startswith("the auth hook's name is in bundle 'bundle.zip', which check does not read: ")
               and "bundle verify BUNDLE --server-manifest" in n for n in report["notes"])


def test_server_manifests_that_cannot_be_read_are_a_usage_error(tmp_path, jwks_server, capsys):
    code, _ = run("--api", own_hook_api(tmp_path, jwks_server, SERVED_HOOK), "--no-discovery",
                  "--server-manifest", str(tmp_path / "nowhere.json"))
    assert code == 2
    assert "--server-manifest: cannot read manifest" in capsys.readouterr().err


def test_serves_default_manifests_that_cannot_be_read_leave_the_name_unchecked_with_a_note(
        tmp_path, jwks_server, monkeypatch):
    monkeypatch.setenv("TYK_AUTH0_MANIFEST", str(tmp_path / "nowhere.json"))
    code, report = run_json("--api", own_hook_api(tmp_path, jwks_server, "RenamedAuthCheck"), "--no-discovery")
    assert code == 0 and not report["steps"]
    assert any(n.startswith("the auth hook's name is not checked: the plugin's manifests cannot be read")
               for n in report["notes"])


def test_an_unserved_auth_hook_is_refused_before_a_bad_config_data_is_read(tmp_path, plugin, signing_key):
    api = classic_api(tmp_path, custom_middleware_bundle="", config_data={"audience": 7},
                      custom_middleware={"driver": "grpc", "auth_check": {"name": "RenamedAuthCheck"}})
    code, report = run_json("--api", api, "--token", t.sign(signing_key), "--no-discovery",
                            "--server-manifest", server_manifest(tmp_path / "served.json", SERVED_HOOK))
    reply = plugin.dispatch(auth_object(bearer(t.sign(signing_key)), config=json.dumps({"audience": 7}),
                                        hook_name="RenamedAuthCheck"))
    assert (code, report["failed_step"]) == (1, "auth hook")
    assert report["response"]["status"] == reply.request.return_overrides.response_code == 403
    assert report["config_error"] is not None  # still reported, for once the name is fixed


# -- DPoP -------------------------------------------------------------------------------------------------

DPOP_URL = "http://127.0.0.1:8080/auth0-plugin/get"  # the request auth_object builds
DPOP_KEY = DPoPKey.generate()


def dpop_token(key: t.SigningKey, bound: bool = True) -> str:
    return t.sign(key, t.claims(cnf={"jkt": DPOP_KEY.thumbprint}) if bound else t.claims())


# name -> (dpop mode, bound token?, proof factory (token -> proof) or None for a bearer request, failing step)
DPOP_CORPUS = {
    "valid_proof": ("required", True, lambda tok: DPOP_KEY.proof("GET", DPOP_URL, tok), None),
    "bound_as_bearer": ("allowed", True, None, "dpop"),
    "unbound_bearer_allowed": ("allowed", False, None, None),
    "unbound_bearer_required": ("required", False, None, "dpop"),
    "unbound_with_proof": ("allowed", False, lambda tok: DPOP_KEY.proof("GET", DPOP_URL, tok), "dpop"),
    "proof_for_another_url": ("required", True, lambda tok: DPOP_KEY.proof("GET", DPOP_URL + "/x", tok), "dpop"),
    "proof_of_another_key": ("required", True, lambda tok: DPoPKey.generate().proof("GET", DPOP_URL, tok), "dpop"),
    "old_proof": ("required", True, lambda tok: DPOP_KEY.proof("GET", DPOP_URL, tok, claims={"iat": NOW - 900}),
                  "dpop"),
}


@pytest.mark.parametrize("case", sorted(DPOP_CORPUS))
def test_dpop_verdict_equals_the_servicer_answer(case, plugin, signing_key, jwks_server):
    mode, bound, make_proof, failing = DPOP_CORPUS[case]
    cfg = config_data(jwt_source=jwks_server.url, dpop=mode)
    token = dpop_token(signing_key, bound)
    proof = make_proof(token) if make_proof else None
    sent = auth_object(f"DPoP {token}" if proof else bearer(token), config=cfg)
    if proof:
        sent.request.headers["Dpop"] = proof
    reply = plugin.dispatch(sent)
    extra = ["--dpop-proof", proof, "--url", DPOP_URL] if proof else []
    code, report = run_json("--config-data", cfg, "--token", token, "--org-id", "default", "--no-discovery", *extra)
    assert not [n for n in report["notes"] if "disagree" in n]
    overrides = reply.request.return_overrides
    if failing is None:
        assert (code, report["verdict"], overrides.response_code) == (0, "pass", -1)
    else:
        assert (code, report["verdict"], report["failed_step"]) == (1, "refused", failing)
        assert report["response"] == {"status": overrides.response_code, "body": {"error": overrides.response_error}}


def test_a_proof_for_another_url_is_explained_with_the_url_the_plugin_expects(signing_key, jwks_server):
    cfg = config_data(jwt_source=jwks_server.url, dpop="required")
    token = dpop_token(signing_key)
    proof = DPOP_KEY.proof("GET", "https://api.example.com/auth0-plugin/get", token)
    code, report = run_json("--config-data", cfg, "--token", token, "--no-discovery",
                            "--dpop-proof", proof, "--url", DPOP_URL)
    step = next(s for s in report["steps"] if s["name"] == "dpop")
    assert code == 1 and "htu does not match" in step["detail"]
    assert any(DPOP_URL in hint and "dpop_base_url" in hint for hint in step["hints"])


def test_behind_dpop_base_url_check_takes_the_url_the_client_calls(signing_key, jwks_server):
    cfg = config_data(jwt_source=jwks_server.url, dpop="required", dpop_base_url="https://api.example.com/gw")
    token = dpop_token(signing_key)
    url = "https://api.example.com/gw/auth0-plugin/get"
    code, report = run_json("--config-data", cfg, "--token", token, "--no-discovery",
                            "--dpop-proof", DPOP_KEY.proof("GET", url, token), "--url", url)
    assert (code, report["verdict"]) == (0, "pass")


@pytest.mark.parametrize("as_json", [False, True])
def test_the_dpop_proof_is_never_printed(as_json, signing_key, jwks_server):
    cfg = config_data(jwt_source=jwks_server.url, dpop="required")
    token = dpop_token(signing_key)
    proof = DPOP_KEY.proof("GET", DPOP_URL, token)
    _, text = run("--config-data", cfg, "--token", token, "--no-discovery", "--dpop-proof", proof, "--url", DPOP_URL,
                  *(["--json"] if as_json else []))
    assert proof not in text and proof.split(".")[2] not in text and token not in text


def test_a_dpop_proof_without_the_url_it_was_made_for_is_a_usage_error(signing_key, cfg):
    code, _ = run("--config-data", cfg, "--token", t.sign(signing_key), "--dpop-proof", "x.y.z")
    assert code == check.EXIT_USAGE
