"""The Tyk session for a verified token, keyed the way native JWT keys the same identity.

``key_id`` is what the gateway stores the session under when the API has no ID
extractor: org id + md5 of the identity, or the base64 JSON form when the gateway
hashes keys with a ``hash_key_function``. One Auth0 subject then keeps one Tyk key,
and its quota, across token renewals and across a switch between native JWT and
this plugin. With the ID extractor the gateway keys the session by the
Authorization header instead, so quotas are per token: the price of the cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from plugin import claims as claimlib
from plugin.config import ApiConfig
from plugin.coprocess import SessionState

CLAIM_METADATA_PREFIX = "claim:"  # session metadata keys the claims-to-headers hook reads
OAUTH_CLIENT_ID_CLAIMS = ("clientId", "cid", "client_id")  # native JWT's list, in its order
_HASH_FUNCTIONS = frozenset({"murmur32", "murmur64", "murmur128", "sha256"})


def key_format(hash_key_function: str) -> str:
    """The ``h`` the gateway writes into key ids for this ``hash_key_function`` ("" for org id + md5):
    it takes any unknown name for murmur64, so two settings key alike when their formats agree."""
    if not hash_key_function:
        return ""
    return hash_key_function if hash_key_function in _HASH_FUNCTIONS else "murmur64"


def key_id(org_id: str, identity: str, hash_key_function: str = "") -> str:
    """The gateway's generateToken(org, md5hex(identity)) for the configured key hashing."""
    digest = hashlib.md5(identity.encode("utf-8"), usedforsecurity=False).hexdigest()
    if org_id and digest.startswith(org_id):
        digest = digest[len(org_id):]  # the gateway trims an org prefix before joining
    alg = key_format(hash_key_function)
    if alg:
        record = f'{{"org":"{org_id}","id":"{digest}","h":"{alg}"}}'
        return base64.b64encode(record.encode("utf-8")).decode("ascii")
    return org_id + digest


def metadata_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def build_session(claims: Mapping[str, Any], identity: str, policies: tuple[str, ...],
                  config: ApiConfig, session_key: str, exp: float | None, session: SessionState) -> None:
    """The time-independent part of the session, written into ``session`` (a reply's own field,
    so nothing is copied); ``stamp`` adds the per-request cache deadline."""
    session.alias = identity
    session.apply_policies.extend(policies)
    for name in OAUTH_CLIENT_ID_CLAIMS:  # the first one present, as native JWT takes it (for analytics)
        if name in claims:
            if isinstance(claims[name], str):
                session.oauth_client_id = claims[name]
            break
    if exp is not None:
        session.expires = int(exp)
    metadata = session.metadata
    metadata["TykJWTSessionID"] = session_key
    for name in config.metadata_claims:
        if name in claims and claims[name] is not None:
            metadata[name] = metadata_value(claims[name])
    if config.claims_to_headers:
        metadata.update(claim_metadata(claims, (claim for claim, _ in config.claims_to_headers)))


def claim_metadata(claims: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    """Session metadata entries the auth check writes for the claims-to-headers hook (``claim:<name>``)."""
    entries: dict[str, str] = {}
    for name in names:
        value = claimlib.lookup(claims, name)
        if value is not None:
            entries[CLAIM_METADATA_PREFIX + name] = metadata_value(value)
    return entries


def extractor_deadline(now: float, exp: float | None, ttl: int) -> int:
    """Until when the gateway may serve this session from its cache: ``ttl`` from now, never past exp."""
    deadline = int(now) + ttl
    if exp is not None and exp < deadline:
        deadline = int(exp)
    return deadline


def stamp(session: SessionState, deadline: int) -> None:
    """The gateway may serve this session from its cache until the deadline.

    ``last_updated`` stays empty, as in the session native JWT builds: the gateway's in-memory
    rate limiter keys its bucket by key and ``last_updated``, so a value that changed every second
    would start a fresh bucket every second and let through far more than the policy's rate.
    """
    session.id_extractor_deadline = deadline
