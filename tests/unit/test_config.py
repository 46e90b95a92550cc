"""config_data is parsed once, with the gateway's names, and every mistake names its key."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from plugin.config import MAX_SOURCE_FILE_BYTES, SETTINGS, env_config_data, parse_config_data
from plugin.errors import ConfigurationError
from tests.support import tokens as t


def parse(**data) -> object:
    return parse_config_data(json.dumps(data), environ={})


def error_key(**data) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse(**data)
    return info.value.key


def test_auth0_domain_gives_the_issuer_with_trailing_slash_and_the_jwks_url():
    config = parse(auth0_domain="dev-x.us.auth0.com")
    assert config.issuers == ("https://dev-x.us.auth0.com/",)
    assert config.key_source.jwks_url == "https://dev-x.us.auth0.com/.well-known/jwks.json"


def test_jwt_source_url_overrides_the_domain_jwks():
    config = parse(auth0_domain="dev-x.us.auth0.com", jwt_source="https://keys.example.com/jwks.json")
    assert config.key_source.jwks_url == "https://keys.example.com/jwks.json"


def test_base64_jwks_url_is_accepted_as_the_gateway_accepts_it():
    encoded = base64.b64encode(b"https://dev-x.us.auth0.com/.well-known/jwks.json").decode()
    assert parse(jwt_source=encoded).key_source.jwks_url == "https://dev-x.us.auth0.com/.well-known/jwks.json"


def test_base64_pem_public_key_is_a_static_key():
    pem = t.rsa_key().public_pem()
    config = parse(jwt_source=base64.b64encode(pem).decode())
    assert config.key_source.static_key == pem


def test_base64_wrapped_in_lines_is_read_as_the_gateway_reads_it():
    # `base64 key.pem` wraps at 76 columns; Go's StdEncoding skips CR and LF.
    pem = t.rsa_key().public_pem()
    encoded = base64.encodebytes(pem).decode().replace("\n", "\r\n")
    assert "\n" in encoded.strip()
    assert parse(jwt_source=encoded).key_source.static_key == pem


def test_a_static_rsa_key_under_1024_bits_is_refused_naming_the_setting():
    weak = rsa.RSAPublicNumbers(65537, (1 << 767) | 0x12345).public_key()
    pem = weak.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigurationError) as info:
        parse(jwt_source=base64.b64encode(pem).decode())
    assert info.value.key == "jwt_source"
    assert "768-bit" in info.value.problem


def static_source(key: rsa.RSAPublicKey) -> str:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pem).decode()


def test_a_static_rsa_key_of_exactly_1024_bits_is_accepted():
    key = rsa.RSAPublicNumbers(65537, (1 << 1023) | 0x12345).public_key()
    assert parse(jwt_source=static_source(key)).key_source.static_key is not None


def test_a_static_rsa_key_with_an_exponent_go_refuses_is_refused_naming_the_setting():
    n = t.rsa_key().public.public_numbers().n
    with pytest.raises(ConfigurationError) as info:
        parse(jwt_source=static_source(rsa.RSAPublicNumbers(2**31 + 1, n).public_key()))
    assert info.value.key == "jwt_source"
    assert "exponent" in info.value.problem


def test_a_static_rsa_key_with_the_largest_exponent_go_takes_is_accepted():
    n = t.rsa_key().public.public_numbers().n
    assert parse(jwt_source=static_source(rsa.RSAPublicNumbers(2**31 - 1, n).public_key())).key_source.static_key


def test_a_base64_der_public_key_is_a_static_key():
    der = t.rsa_key().public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert parse(jwt_source=base64.b64encode(der).decode()).key_source.static_key == der


def test_a_base64_pem_certificate_is_a_static_key():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = t.rsa_key().private
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenant.example.auth0.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert parse(jwt_source=base64.b64encode(pem).decode()).key_source.static_key == pem


def test_a_base64_pem_ec_public_key_is_a_static_key():
    pem = t.ec_key().public_pem()
    assert parse(jwt_source=base64.b64encode(pem).decode(), jwt_signing_method="ecdsa").key_source.static_key == pem


def test_a_static_key_neither_rsa_nor_ec_is_refused_naming_the_setting():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigurationError) as info:
        parse(jwt_source=base64.b64encode(pem).decode())
    assert (info.value.key, info.value.problem) == ("jwt_source", "only RSA and EC public keys are supported")


def test_hmac_secret_is_base64_like_the_gateway():
    config = parse(jwt_signing_method="hmac", jwt_source=base64.b64encode(b"s3cret").decode())
    assert config.key_source.static_key == b"s3cret"
    assert config.allowed_algorithms == {"HS256", "HS384", "HS512"}


def test_hmac_secret_can_come_from_an_environment_variable():
    config = parse_config_data(json.dumps({"jwt_signing_method": "hmac", "jwt_source_env": "API_SECRET"}),
                               environ={"API_SECRET": base64.b64encode(b"k").decode()})
    assert config.key_source.static_key == b"k"


def test_missing_secret_environment_variable_is_named():
    assert error_key(jwt_signing_method="hmac", jwt_source_env="NOPE_NOT_SET") == "jwt_source_env"


def test_plain_http_jwks_is_refused_unless_loopback():
    assert error_key(jwt_source="http://idp.example.com/jwks.json") == "jwt_source"
    assert error_key(jwt_source="http://10.0.0.8/jwks.json") == "jwt_source"  # private is not loopback
    assert error_key(jwt_source="http://[fd00::1]/jwks.json") == "jwt_source"
    assert parse(jwt_source="http://127.0.0.1:9000/jwks.json").key_source.jwks_url.startswith("http://127.0.0.1")
    assert parse(jwt_source="http://localhost:9000/jwks.json").key_source.jwks_url


def test_a_jwks_url_that_does_not_parse_is_refused_without_quoting_it():
    with pytest.raises(ConfigurationError) as info:
        parse(jwt_source="https://jwks-user:JwksPa55@[tenant.example.com/jwks.json")
    assert info.value.key == "jwt_source"
    assert info.value.problem == "is not a valid URL"


def test_issuer_and_audience_take_a_string_or_a_list():
    config = parse(auth0_domain="a.auth0.com", issuer=["https://a.auth0.com/", "https://login.a.com/"],
                   audience="https://api")
    assert config.issuers == ("https://a.auth0.com/", "https://login.a.com/")
    assert config.audiences == ("https://api",)


def test_rsa_is_the_default_family_with_rs_and_ps():
    assert parse(auth0_domain="a.auth0.com").allowed_algorithms == {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


def test_allow_list_must_stay_inside_the_family():
    assert error_key(auth0_domain="a.auth0.com", jwt_allowed_algorithms=["HS256"]) == "jwt_allowed_algorithms"


@pytest.mark.parametrize(("data", "key"), [
    ({"auth0_domain": "a.auth0.com", "jwt_signing_method": "rsa256"}, "jwt_signing_method"),
    ({"auth0_domain": "https://a.auth0.com/"}, "auth0_domain"),
    ({"auth0_domain": "a.auth0.com", "audience": 5}, "audience"),
    ({"auth0_domain": "a.auth0.com", "issuer": [1]}, "issuer"),
    ({"auth0_domain": "a.auth0.com", "jwt_default_policies": {"a": 1}}, "jwt_default_policies"),
    ({"auth0_domain": "a.auth0.com", "jwt_scope_to_policy_mapping": ["a"]}, "jwt_scope_to_policy_mapping"),
    ({"auth0_domain": "a.auth0.com", "jwt_expires_at_validation_skew": -1}, "jwt_expires_at_validation_skew"),
    ({"auth0_domain": "a.auth0.com", "jwt_expires_at_validation_skew": True}, "jwt_expires_at_validation_skew"),
    ({"auth0_domain": "a.auth0.com", "id_extractor_ttl": "soon"}, "id_extractor_ttl"),
    ({"auth0_domain": "a.auth0.com", "id_extractor_ttl": "²"}, "id_extractor_ttl"),
    ({"auth0_domain": "a.auth0.com", "id_extractor_ttl": "9" * 5000}, "id_extractor_ttl"),
    ({"auth0_domain": "a.auth0.com", "audiance": "x"}, "audiance"),
    ({"jwt_source": "not base64!"}, "jwt_source"),
    ({"jwt_source": base64.b64encode(b"not a key").decode()}, "jwt_source"),
    ({"jwt_signing_method": "rsa"}, "auth0_domain"),
    ({"auth0_domain": "a.auth0.com", "jwks_cache_ttl": 1}, "jwks_cache_ttl"),
    ({"auth0_domain": "a.auth0.com/x"}, "auth0_domain"),
    ({"auth0_domain": "a b.auth0.com"}, "auth0_domain"),
    ({"jwt_source": base64.b64encode(b"http://idp.example.com/jwks.json").decode()}, "jwt_source"),
    ({"jwt_source": "https:///jwks.json"}, "jwt_source"),
    ({"jwt_source": "https://user:secret@idp.example.com/jwks.json"}, "jwt_source"),
    ({"jwt_source": "https://[bad/jwks"}, "jwt_source"),
    ({"jwt_source": "https://idp.example.com:port/jwks"}, "jwt_source"),
    ({"jwt_source": base64.b64encode(b"https:///jwks.json").decode()}, "jwt_source"),
    ({"jwt_source": "https://a/j", "jwt_source_env": "X"}, "jwt_source_env"),
])
def test_each_bad_setting_is_named(data, key):
    with pytest.raises(ConfigurationError) as info:
        parse_config_data(json.dumps(data), environ={})
    assert info.value.key == key
    assert key in info.value.message


def test_a_typo_suggests_the_setting_meant():
    with pytest.raises(ConfigurationError) as info:
        parse(auth0_domain="a.auth0.com", audiance="x")
    assert "did you mean 'audience'" in info.value.problem


def test_config_data_must_be_a_json_object():
    with pytest.raises(ConfigurationError) as info:
        parse_config_data("[1, 2]", environ={})
    assert info.value.key == "config_data"


def test_environment_gives_defaults_for_apis_without_config_data():
    defaults = env_config_data({"AUTH0_DOMAIN": "dev-x.eu.auth0.com", "AUTH0_AUDIENCE": "https://a, https://b"})
    config = parse_config_data(None, defaults, environ={})
    assert config.issuers == ("https://dev-x.eu.auth0.com/",)
    assert config.audiences == ("https://a", "https://b")


def test_every_setting_is_documented():
    for setting in SETTINGS:
        assert setting.doc.strip(), setting.key


def test_hmac_secret_can_come_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(base64.b64encode(b"from-file").decode() + "\n")
    config = parse(jwt_signing_method="hmac", jwt_source_file=str(secret_file))
    assert config.key_source.static_key == b"from-file"


def test_unreadable_secret_file_is_named(tmp_path):
    assert error_key(jwt_signing_method="hmac", jwt_source_file=str(tmp_path / "missing")) == "jwt_source_file"


def problem(**data) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse(**data)
    return f"{info.value.key}: {info.value.problem}"


@pytest.mark.parametrize(("path", "said"), [
    ("/dev/zero", "is not a regular file"),
    ("/tmp", "is not a regular file"),
    ("a\x00b", "is not a usable file path"),
])
def test_a_secret_file_that_is_not_a_regular_file_is_refused_before_reading(path, said):
    assert problem(jwt_signing_method="hmac", jwt_source_file=path).endswith(said)


def test_reading_the_secret_file_leaves_no_file_open(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(base64.b64encode(b"k").decode())
    open_before = len(os.listdir("/proc/self/fd"))
    for path in (secret, tmp_path, "/dev/zero", tmp_path / "missing"):
        for _ in range(5):
            with contextlib.suppress(ConfigurationError):
                parse(jwt_signing_method="hmac", jwt_source_file=str(path))
    assert len(os.listdir("/proc/self/fd")) == open_before


def test_a_fifo_named_as_the_secret_file_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert problem(jwt_signing_method="hmac", jwt_source_file=str(fifo)).endswith("is not a regular file")


def test_a_secret_file_larger_than_any_key_is_refused(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"A" * (MAX_SOURCE_FILE_BYTES + 1))
    assert "is larger than 64 KiB" in problem(jwt_signing_method="hmac", jwt_source_file=str(big))


def test_a_secret_file_that_is_not_text_is_refused(tmp_path):
    binary = tmp_path / "secret.der"
    binary.write_bytes(b"\xff\xfe\x00")
    assert problem(jwt_signing_method="hmac", jwt_source_file=str(binary)).endswith("is not UTF-8 text")


SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


def test_a_secret_set_as_the_environment_variable_name_is_not_echoed():
    said = problem(jwt_signing_method="hmac", jwt_source_env=SECRET)
    assert said.startswith("jwt_source_env:") and SECRET not in said


def test_a_secret_set_as_the_file_path_is_not_echoed():
    said = problem(jwt_signing_method="hmac", jwt_source_file=SECRET)
    assert said.startswith("jwt_source_file:") and SECRET not in said


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a b?apikey=SECRET", "https://idp.example.com/jwks\t?apikey=SECRET",
                                 "https://idp.example.com/jwks\x7f?apikey=SECRET", "https://idp.example.com/\u00e4?apikey=SECRET"])
def test_a_jwks_url_urllib_cannot_send_is_refused_without_echoing_its_query(url):
    said = problem(jwt_source=url)
    assert said.startswith("jwt_source:") and "SECRET" not in said and "percent-encode" in said


def test_a_base64_jwks_url_urllib_cannot_send_is_refused_too():
    encoded = base64.b64encode(b"https://idp.example.com/a b?apikey=SECRET").decode()
    assert "percent-encode" in problem(jwt_source=encoded)


@pytest.mark.parametrize("domain", ["[::1", "tenant:abc", "user@tenant.auth0.com"])
def test_an_auth0_domain_that_makes_no_url_is_refused_naming_it(domain):
    assert error_key(auth0_domain=domain) == "auth0_domain"
    assert error_key(auth0_domain=domain, jwt_source="https://keys.example.com/jwks.json") == "auth0_domain"


def test_whole_seconds_may_be_written_as_digit_strings():
    assert parse(auth0_domain="a.auth0.com", jwt_expires_at_validation_skew=" 30 ").exp_skew == 30


@pytest.mark.parametrize("key", ["jwt_expires_at_validation_skew", "jwt_issued_at_validation_skew",
                                 "jwt_not_before_validation_skew"])
def test_a_skew_so_large_that_the_gateway_s_int64_arithmetic_wraps_is_refused_naming_it(key):
    assert error_key(auth0_domain="a.auth0.com", **{key: 2**63 - 1}) == key
    assert error_key(auth0_domain="a.auth0.com", **{key: "18446744073709551615"}) == key
    assert error_key(auth0_domain="a.auth0.com", **{key: 2**62 + 1}) == key


def test_a_skew_of_two_to_the_62_seconds_is_still_accepted():
    assert parse(auth0_domain="a.auth0.com", jwt_issued_at_validation_skew=2**62).iat_skew == 2**62


def test_the_gateway_hash_key_function_comes_from_the_environment_unless_set():
    data = json.dumps({"auth0_domain": "a.auth0.com"})
    assert parse_config_data(data, environ={"TYK_HASH_KEY_FUNCTION": "murmur64"}).hash_key_function == "murmur64"
    own = json.dumps({"auth0_domain": "a.auth0.com", "hash_key_function": "sha256"})
    assert parse_config_data(own, environ={"TYK_HASH_KEY_FUNCTION": "murmur64"}).hash_key_function == "sha256"


JWKS = "https://tenant.example/.well-known/jwks.json"


@pytest.mark.parametrize("key", ["jwt_identity_base_field", "jwt_policy_field_name", "jwt_scope_claim_name"])
def test_claim_name_settings_take_a_name_or_a_list_of_names(key):
    assert getattr(parse(jwt_source=JWKS, **{key: "x"}), {"jwt_identity_base_field": "identity_field",
                                          "jwt_policy_field_name": "policy_field",
                                          "jwt_scope_claim_name": "scope_claim"}[key]) == "x"
    listed = parse(jwt_source=JWKS, **{key: ["a", "b.c"]})
    assert ("a", "b.c") in (listed.identity_field, listed.policy_field, listed.scope_claim)


@pytest.mark.parametrize("value", [["a", ""], ["a", 3], 5, {"a": 1}])
@pytest.mark.parametrize("key", ["jwt_identity_base_field", "jwt_policy_field_name", "jwt_scope_claim_name"])
def test_a_claim_name_setting_refuses_anything_but_names(key, value):
    assert error_key(jwt_source=JWKS, **{key: value}) == key


def test_an_empty_scope_claim_list_reads_scope():
    assert parse(jwt_source=JWKS, jwt_scope_claim_name=[]).scope_claim == "scope"


@pytest.mark.parametrize("value", [{}, 0, False])
def test_a_jwt_source_that_is_neither_a_string_nor_a_list_is_refused_naming_it(value):
    assert problem(auth0_domain="a.auth0.com", jwt_source=value) == \
        "jwt_source: must be a string or a list of JWKS URLs"


@pytest.mark.parametrize("key", ["jwt_source_env", "jwt_source_file"])
@pytest.mark.parametrize("value", [[], {}, 0])
def test_a_secret_source_that_is_not_a_string_is_refused_naming_it(key, value):
    assert problem(auth0_domain="a.auth0.com", **{key: value}) == f"{key}: must be a string"


def test_a_secret_source_that_is_not_a_string_is_refused_beside_a_jwks_list():
    assert error_key(jwt_source=[JWKS], jwt_source_env=[]) == "jwt_source_env"


@pytest.mark.parametrize("value", [0, False, "read:a=p", ["read:a"]])
def test_a_scope_mapping_that_is_not_an_object_is_refused_naming_it(value):
    assert error_key(auth0_domain="a.auth0.com", jwt_scope_to_policy_mapping=value) == "jwt_scope_to_policy_mapping"


@pytest.mark.parametrize("value", ["", []])
def test_an_empty_scope_mapping_of_another_shape_means_no_mapping(value):
    config = parse_config_data(json.dumps({"auth0_domain": "a.auth0.com", "jwt_scope_to_policy_mapping": value}), environ={})
    assert dict(config.scope_to_policy) == {}


@pytest.mark.parametrize("key", [s.key for s in SETTINGS if s.key != "jwt_source"])
def test_null_means_left_out_for_every_key(key):
    assert parse(jwt_source=JWKS, **{key: None}) == parse(jwt_source=JWKS)


def test_null_jwt_source_means_left_out():
    assert parse(auth0_domain="a.auth0.com", jwt_source=None) == parse(auth0_domain="a.auth0.com")


def test_the_jwks_cache_ttl_minimum_is_documented():
    setting = next(s for s in SETTINGS if s.key == "jwks_cache_ttl")
    assert "at least 5" in setting.doc
    assert error_key(auth0_domain="a.auth0.com", jwks_cache_ttl=4) == "jwks_cache_ttl"


@pytest.mark.parametrize("domain", ["tenant.auth0.com:8443", "127.0.0.1:8443", "[::1]:8443", "dev-x.us.auth0.com/"])
def test_an_auth0_domain_may_carry_a_port(domain):
    assert parse(auth0_domain=domain).issuers == (f"https://{domain.rstrip('/')}/",)


@pytest.mark.parametrize("domain", ["x?y", "x#y", "user@x", "x/y", "x y", "-x.com", "[::g]"])
def test_an_auth0_domain_that_is_not_a_host_name_is_refused_as_a_domain(domain):
    said = problem(auth0_domain=domain)
    assert said.startswith("auth0_domain: must be a host name") and "URL" not in said


def test_an_auth0_domain_port_out_of_range_is_refused_as_a_port():
    assert problem(auth0_domain="x:99999") == "auth0_domain: port 99999 is not a port (1 to 65535)"


@pytest.mark.parametrize(("variable", "expected"), [("murmur128\n", "murmur128"), ("   ", "")])
def test_blanks_around_the_gateway_hash_key_function_are_dropped(variable, expected):
    """Kept, a trailing newline would key sessions as murmur64 and blanks alone as murmur64 too, while
    the start-up line, which strips them, names murmur128 or none."""
    data = json.dumps({"auth0_domain": "a.auth0.com"})
    assert parse_config_data(data, environ={"TYK_HASH_KEY_FUNCTION": variable}).hash_key_function == expected


def test_blanks_around_hash_key_function_in_config_data_are_dropped():
    data = json.dumps({"auth0_domain": "a.auth0.com", "hash_key_function": " sha256 "})
    assert parse_config_data(data, environ={}).hash_key_function == "sha256"


def test_the_gateway_hash_key_function_alone_makes_no_server_wide_auth0_configuration():
    """TYK_HASH_KEY_FUNCTION applies to APIs with config_data too; alone it must not make the server
    refuse to start for want of AUTH0_DOMAIN, nor stand in for a config-less API's settings."""
    assert env_config_data({"TYK_HASH_KEY_FUNCTION": "murmur64"}) == {}
    defaults = env_config_data({"AUTH0_DOMAIN": "dev-x.eu.auth0.com", "TYK_HASH_KEY_FUNCTION": "sha256"})
    config = parse_config_data(None, defaults, environ={"TYK_HASH_KEY_FUNCTION": "sha256"})
    assert config.hash_key_function == "sha256"


def test_a_list_variable_may_be_a_json_array_as_config_data_writes_lists():
    defaults = env_config_data({"AUTH0_DOMAIN": "dev-x.eu.auth0.com", "AUTH0_AUDIENCE": '["https://a", "https://b"]',
                                "AUTH0_JWT_ALLOWED_ALGORITHMS": '["RS256"]'})
    config = parse_config_data(None, defaults, environ={})
    assert config.audiences == ("https://a", "https://b")
    assert config.allowed_algorithms == frozenset({"RS256"})


def test_a_list_variable_that_starts_a_json_array_but_is_not_one_is_refused_by_name():
    with pytest.raises(ConfigurationError) as info:
        env_config_data({"AUTH0_AUDIENCE": '["https://a", "https://b"'})
    assert info.value.key == "audience" and "its variable" in info.value.problem


def test_the_jwt_source_variable_may_list_jwks_urls_with_commas():
    defaults = env_config_data({"AUTH0_JWT_SOURCE": "https://a.example/jwks.json, https://b.example/jwks.json"})
    assert parse_config_data(None, defaults, environ={}).key_source.jwks_urls == (
        "https://a.example/jwks.json", "https://b.example/jwks.json")


def test_the_jwt_source_variable_is_one_url_when_a_comma_is_part_of_it():
    defaults = env_config_data({"AUTH0_JWT_SOURCE": "https://a.example/keys?set=a,b"})
    assert parse_config_data(None, defaults, environ={}).key_source.jwks_urls == ("https://a.example/keys?set=a,b",)


def test_a_bad_jwt_source_variable_is_refused_without_quoting_it():
    with pytest.raises(ConfigurationError) as info:
        env_config_data({"AUTH0_JWT_SOURCE": '["S3cretS3cret"'})
    assert "S3cret" not in str(info.value)
