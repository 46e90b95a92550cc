"""The memory benchmark's HS256 tokens: distinct, Auth0-shaped, and valid for their secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from bench.payloads import Hs256Minter, auth0_claims

SECRET = b"0123456789abcdef0123456789abcdef"


def _segments(token: str) -> tuple[dict, dict, bytes]:
    header, payload, signature = (base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
                                  for part in token.split("."))
    return json.loads(header), json.loads(payload), signature


@pytest.mark.parametrize("n", [0, 1, 42, 999_999, 123_456_789, 999_999_999])
def test_a_minted_token_carries_the_counter_in_sub_and_jti(n):
    header, claims, _ = _segments(Hs256Minter(SECRET).token(n))
    expected = auth0_claims(sub=f"client-{n:09d}@clients", jti=f"{n:016x}")
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert {k: v for k, v in claims.items() if k not in ("iat", "exp")} == \
        {k: v for k, v in expected.items() if k not in ("iat", "exp")}
    assert abs(claims["exp"] - expected["exp"]) <= 2


def test_a_minted_token_is_compact_json_signed_with_the_secret():
    token = Hs256Minter(SECRET).token(7)
    signing_input, _, _ = token.rpartition(".")
    _, claims, signature = _segments(token)
    payload = base64.urlsafe_b64decode(signing_input.split(".")[1] + "==")
    assert payload == json.dumps(claims, separators=(",", ":")).encode()
    assert signature == hmac.digest(SECRET, signing_input.encode(), hashlib.sha256)
    assert "=" not in token


def test_minted_tokens_are_distinct():
    minter = Hs256Minter(SECRET)
    assert len({minter.token(n) for n in range(1000)}) == 1000
