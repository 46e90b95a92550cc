"""A DPoP client for trying an API that sets ``dpop``: it does what an Auth0 SDK with DPoP does.

It makes a key pair (in memory only), asks the token endpoint for a token with a proof (Auth0,
or the stand-in, binds it to the key: ``token_type`` DPoP), calls the URL with a fresh proof each
time, then sends the last proof once more, which the API must refuse as a replay. It prints each
answer's status and body, never the token or a proof.
"""

from __future__ import annotations

import argparse
import os
import sys

from plugin.devstack.idp import DPoPKey
from plugin.devstack.procs import HTTPResult, http_request


def request_token(key: DPoPKey, token_url: str, client_id: str, client_secret: str, audience: str) -> tuple[str, str]:
    """The client-credentials grant with a DPoP proof: the token and its type."""
    result = http_request("POST", token_url, headers={"DPoP": key.proof("POST", token_url)}, body={
        "client_id": client_id, "client_secret": client_secret, "audience": audience,
        "grant_type": "client_credentials"})
    if result.status != 200:
        raise SystemExit(f"token request failed: {result.status} {result.text}")
    body = result.json()
    return str(body["access_token"]), str(body.get("token_type", ""))


def call(url: str, method: str, token: str, proof: str) -> HTTPResult:
    return http_request(method, url, headers={"Authorization": f"DPoP {token}", "DPoP": proof,
                                              "Accept": "application/json"})


def _line(what: str, result: HTTPResult) -> str:
    """The answer's status, and its error text; a success's body is not shown (an echo upstream
    would show the token and the proof)."""
    if result.status < 400:
        return f"{what:<22} {result.status} ({len(result.body)} bytes from the upstream)"
    challenge = result.headers.get("www-authenticate")
    text = " ".join(result.text.split())
    return f"{what:<22} {result.status} {text[:160]}" + (f"  [WWW-Authenticate: {challenge}]" if challenge else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugin.devstack.dpop_client", description=__doc__)
    parser.add_argument("url", help="the API URL to call, e.g. http://127.0.0.1:8080/auth0-plugin-dpop/get")
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", default=os.environ.get("AUTH0_CLIENT_SECRET"),
                        help="default: $AUTH0_CLIENT_SECRET")
    parser.add_argument("--audience", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--calls", type=int, default=2, help="requests with fresh proofs (default %(default)s)")
    parser.add_argument("--alg", default="ES256", choices=["ES256", "RS256", "PS256", "EdDSA"])
    args = parser.parse_args(argv)
    if not args.client_secret:
        parser.error("give --client-secret or set AUTH0_CLIENT_SECRET")
    key = DPoPKey.generate(args.alg)
    token, token_type = request_token(key, args.token_url, args.client_id, args.client_secret, args.audience)
    print(f"token_type {token_type} (bound to key {key.thumbprint})")
    proof = ""
    for i in range(1, max(1, args.calls) + 1):
        proof = key.proof(args.method, args.url, token)
        print(_line(f"call {i}, fresh proof", call(args.url, args.method, token, proof)))
    print(_line("the last proof again", call(args.url, args.method, token, proof)))
    print(_line("as a bearer token", http_request(args.method, args.url, headers={"Authorization": f"Bearer {token}"})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
