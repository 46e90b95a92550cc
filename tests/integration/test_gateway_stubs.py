"""Done-when check: Dispatch messages built from the gateway's own .proto files get native JWT's answers.

Needs the gateway's coprocess/proto directory (TYK_PROTO_DIR); the stubs are generated from it at
test time and used in a separate process, so nothing of ours is on the client side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT
from tests.support import tokens as t

pytestmark = pytest.mark.skipif(not os.environ.get("TYK_PROTO_DIR"),
                                reason="set TYK_PROTO_DIR to the gateway's coprocess/proto directory")

UNEXPECTED = (403, "Key not authorized: Unexpected signing method")
NOT_AUTHORIZED = (403, "Key not authorized")


def gateway_stubs(out: Path) -> Path:
    from grpc_tools import protoc

    proto_dir = Path(os.environ["TYK_PROTO_DIR"])
    protos = sorted(p.name for p in proto_dir.glob("*.proto"))
    assert protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", *protos]) == 0
    return out


def test_gateway_built_messages_get_the_native_jwt_answers(tmp_path, server, jwks_server, keys):
    current, upcoming = keys
    now = int(time.time())
    rsa_only = json.dumps({"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE,
                           "jwt_allowed_algorithms": ["RS256"]})
    base = json.dumps({"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE})
    good = t.sign(current)
    cases = {
        "valid RS256": ("Bearer " + good, base, (-1, "")),
        "next key of rotated JWKS": ("Bearer " + t.sign(upcoming), base, (-1, "")),
        "aud array": ("Bearer " + t.sign(current, t.claims(aud=["x", t.AUDIENCE])), base, (-1, "")),
        "expired": ("Bearer " + t.sign(current, t.claims(exp=now - 10)), base, (401, "Key not authorized: token has expired")),
        "nbf future": ("Bearer " + t.sign(current, t.claims(nbf=now + 600)), base, (401, "Key not authorized: token is not valid yet")),
        "iat future": ("Bearer " + t.sign(current, t.claims(iat=now + 600)), base, (401, "Key not authorized: token used before issued")),
        "wrong iss": ("Bearer " + t.sign(current, t.claims(iss="https://evil/")), base, (401, "Key not authorized: invalid issuer claim: https://evil/")),
        "wrong aud": ("Bearer " + t.sign(current, t.claims(aud="https://other")), base,
                      (401, "Key not authorized: no matching audience found in token: [https://other]")),
        "alg none": ("Bearer " + t.raw_token({"alg": "none", "kid": current.kid}, t.claims(), b""), base, UNEXPECTED),
        "HS256/RS256 confusion": ("Bearer " + t.hs256_with_public_pem(current), base, UNEXPECTED),
        "ES256": ("Bearer " + t.sign(t.ec_key()), base, UNEXPECTED),
        "PS256 under RS256 allow-list": ("Bearer " + t.sign(current, alg="PS256"), rsa_only, UNEXPECTED),
        "tampered": ("Bearer " + good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"), base, NOT_AUTHORIZED),
        "truncated": ("Bearer " + good[: len(good) // 2], base, NOT_AUTHORIZED),
        "garbage": ("Bearer not-a-token", base, NOT_AUTHORIZED),
        "missing header": (None, base, (400, "Authorization field missing")),
    }
    job = {
        "target": server.target,
        "hook": "Auth0JWTAuthCheck",
        "cases": [{"name": n, "authorization": a, "config_data": c} for n, (a, c, _) in cases.items()],
    }
    stubs = gateway_stubs(tmp_path)
    env = dict(os.environ, PYTHONPATH=f"{stubs}{os.pathsep}{ROOT}")
    result = subprocess.run([sys.executable, "-m", "tests.support.gateway_client"], input=json.dumps(job),
                            capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    answers = {r["name"]: r for r in json.loads(result.stdout)}
    for name, (_, _, expected) in cases.items():
        got = answers[name]
        assert (got["code"], got["error"]) == expected, name
        assert got["url"] == "/auth0-plugin/get", name
    for name in ("valid RS256", "next key of rotated JWKS", "aud array"):
        assert answers[name]["policies"] == ["auth0-policy"]
        assert answers[name]["token"].startswith("default")
