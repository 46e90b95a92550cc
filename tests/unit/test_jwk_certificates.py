"""A key entry's certificate members (x5c, x5t, x5t#S256) are read as the gateway's JWK parser
(go-jose) reads them: an entry it refuses is never used to verify; the set's other keys still are."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from plugin.devstack.idp import SigningKey, b64url
from plugin.jwks import FetchError, parse_jwks


@pytest.fixture(scope="module")
def keys() -> tuple[SigningKey, SigningKey]:
    """Two keys as Auth0 publishes them: n and e, x5t, and the key's certificate in x5c."""
    return SigningKey.generate(), SigningKey.generate()


def usable(*entries: dict[str, Any]) -> set[str]:
    """The kids a key set of these entries verifies with."""
    try:
        return set(parse_jwks(json.dumps({"keys": list(entries)}).encode(), max_keys=10))
    except FetchError:
        return set()


def edited(key: SigningKey, **members: Any) -> dict[str, Any]:
    """The key's entry with members replaced; a member given as ... is removed."""
    entry = key.jwk()
    for name, value in members.items():
        if value is ...:
            entry.pop(name, None)
        else:
            entry[name] = value
    return entry


def der(key: SigningKey) -> bytes:
    return key.certificate.public_bytes(serialization.Encoding.DER)


def pem_text(key: SigningKey) -> str:
    return base64.b64encode(key.certificate.public_bytes(serialization.Encoding.PEM)).decode()


def test_an_entry_as_auth0_publishes_it_is_used(keys):
    first, _ = keys
    assert {"x5t", "x5c"} <= set(first.jwk())
    assert usable(first.jwk()) == {first.kid}


def test_a_key_whose_x5t_is_another_certificate_s_thumbprint_is_never_used(keys):
    first, second = keys
    assert usable(edited(first, x5t=second.x5t), second.jwk()) == {second.kid}


def test_a_key_whose_x5t_s256_is_another_certificate_s_thumbprint_is_never_used(keys):
    first, second = keys
    assert usable(edited(first, **{"x5t#S256": b64url(hashlib.sha256(der(second)).digest())}),
                  second.jwk()) == {second.kid}


def test_a_key_whose_x5t_s256_is_its_certificate_s_thumbprint_is_used(keys):
    first, _ = keys
    assert usable(edited(first, **{"x5t#S256": b64url(hashlib.sha256(der(first)).digest())})) == {first.kid}


@pytest.mark.parametrize(("member", "digest"), [("x5t", hashlib.sha1), ("x5t#S256", hashlib.sha256)])
def test_a_thumbprint_written_in_hex_is_read_as_hex(keys, member, digest):
    first, _ = keys
    for text in (digest(der(first)).hexdigest(), digest(der(first)).hexdigest().upper()):
        assert usable(edited(first, **{member: b64url(text.encode())})) == {first.kid}


@pytest.mark.parametrize(("member", "digest"), [("x5t", hashlib.sha1), ("x5t#S256", hashlib.sha256)])
def test_a_thumbprint_in_hex_of_another_certificate_makes_its_key_unused(keys, member, digest):
    first, second = keys
    assert usable(edited(first, **{member: b64url(digest(der(second)).hexdigest().encode())})) == set()


@pytest.mark.parametrize("member", ["x5t", "x5t#S256"])
def test_a_thumbprint_of_hex_length_that_is_not_hex_makes_its_key_unused(keys, member):
    first, _ = keys
    size = 40 if member == "x5t" else 64
    assert usable(edited(first, **{member: b64url(b"z" * size)})) == set()


@pytest.mark.parametrize(("member", "size"), [("x5t", 19), ("x5t", 21), ("x5t", 32), ("x5t#S256", 20), ("x5t#S256", 31)])
def test_a_thumbprint_of_the_wrong_size_makes_its_key_unused_even_without_x5c(keys, member, size):
    first, second = keys
    assert usable(edited(first, x5c=..., **{member: b64url(b"\x01" * size)}), second.jwk()) == {second.kid}


def test_without_x5c_a_thumbprint_of_the_right_size_is_compared_with_nothing(keys):
    first, second = keys
    assert usable(edited(first, x5c=..., x5t=second.x5t)) == {first.kid}


@pytest.mark.parametrize("x5t", ["@@@", "A", "has space"])
def test_a_thumbprint_that_is_not_base64url_makes_its_key_unused(keys, x5t):
    first, second = keys
    assert usable(edited(first, x5c=..., x5t=x5t), second.jwk()) == {second.kid}


def test_a_thumbprint_in_the_standard_base64_alphabet_makes_its_key_unused(keys):
    first, _ = keys
    digest = b"\xfb\xef" * 10  # '+' and '/' in standard base64, '-' and '_' in base64url
    assert usable(edited(first, x5c=..., x5t=b64url(digest))) == {first.kid}
    assert usable(edited(first, x5c=..., x5t=base64.b64encode(digest).decode())) == set()


def test_a_thumbprint_with_padding_or_a_line_break_is_read_as_go_reads_it(keys):
    first, _ = keys
    x5t = first.x5t
    assert usable(edited(first, x5t=x5t + "=")) == {first.kid}
    assert usable(edited(first, x5t=x5t[:9] + "\r\n" + x5t[9:])) == {first.kid}


@pytest.mark.parametrize("x5t", ["", None])
def test_an_empty_or_null_thumbprint_counts_as_absent(keys, x5t):
    first, _ = keys
    assert usable(edited(first, x5t=x5t)) == {first.kid}


@pytest.mark.parametrize("later", ["@@@", base64.b64encode(b"junk").decode(), "", "PEM"])
def test_a_later_x5c_entry_that_is_not_a_certificate_makes_its_key_unused(keys, later):
    first, second = keys
    chain = [first.jwk()["x5c"][0], pem_text(second) if later == "PEM" else later]
    assert usable(edited(first, x5c=chain), second.jwk()) == {second.kid}


def test_an_x5c_chain_of_certificates_is_used_with_its_first_certificate_s_key(keys):
    first, second = keys
    chain = [first.jwk()["x5c"][0], second.jwk()["x5c"][0]]
    assert usable(edited(first, x5c=chain)) == {first.kid}


def padded_certificate(key: SigningKey) -> str:
    """Base64 of a certificate for ``key`` whose length makes it end in '=' padding."""
    for length in range(1, 4):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n" * length)])
        issued = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                  .public_key(key.private_key.public_key()).serial_number(1)
                  .not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
                  .sign(key.private_key, hashes.SHA256()))
        text = base64.b64encode(issued.public_bytes(serialization.Encoding.DER)).decode()
        if text.endswith("="):
            return text
    raise AssertionError("no length gave padding")


def test_an_x5c_certificate_without_its_padding_makes_its_key_unused(keys):
    first, _ = keys
    text = padded_certificate(first)
    assert usable(edited(first, x5c=[text], x5t=...)) == {first.kid}
    assert usable(edited(first, x5c=[text.rstrip("=")], x5t=...)) == set()


def test_an_x5c_certificate_with_excess_padding_makes_its_key_unused(keys):
    first, _ = keys
    assert usable(edited(first, x5c=[first.jwk()["x5c"][0] + "===="])) == set()


def test_an_x5c_certificate_in_the_base64url_alphabet_makes_its_key_unused(keys):
    first, _ = keys
    text = first.jwk()["x5c"][0]
    assert {"+", "/"} & set(text)
    assert usable(edited(first, x5c=[text.replace("+", "-").replace("/", "_")])) == set()


def test_a_line_break_in_an_x5c_certificate_is_skipped_as_go_skips_it(keys):
    first, _ = keys
    text = first.jwk()["x5c"][0]
    assert usable(edited(first, x5c=[text[:64] + "\r\n" + text[64:]])) == {first.kid}


def test_a_first_certificate_of_pem_text_is_read_alone_as_the_gateway_s_fallback_reads_it(keys):
    """go-jose refuses such an entry and with it the set; the gateway then reads the entry's first
    certificate as PEM text and nothing else of its certificate members."""
    first, second = keys
    assert usable(edited(first, x5c=[pem_text(first), "@@@"], x5t=second.x5t)) == {first.kid}
    assert usable(edited(first, x5c=[pem_text(second)])) == set()
