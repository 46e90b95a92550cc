"""Which Tyk policies exist, so an unknown policy id gets native JWT's refusal rather than a bare 403.

Native JWT looks the token's policy up before it builds a session and answers
``key not authorized: no matching policy``; through a plugin the gateway only finds out when it
applies the policies and answers ``Forbidden``. The index lets the plugin give the native answer.
It reads the gateway's own list (``GET /tyk/policies`` with the gateway secret) or a policy file or
directory, refreshed in the background. While it has nothing, it answers "unknown" and the plugin
leaves the decision to the gateway, as before.

Before refusing a token for a policy missing from the list, the index reads the list again on
that request's thread (at most once a second): a policy just added to the gateway, or a list read
while its files were being rewritten, is then granted as native JWT grants it, not refused for a
refresh interval. The read is the gateway's own local API or its files, only this refusal path
waits for it, and a read from the gateway is cut at its deadline (7 s). A list that cannot be
read for four intervals stops refusing ids it lacks.

The index also holds what native JWT copies from a base policy into a new session before it
applies the policies (``_seed``), so the session the gateway gets from the plugin starts the same.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from plugin import httpget
from plugin.coprocess import Object, SessionState
from plugin.errors import AuthError, NoMatchingPolicy, NoValidPolicies, PolicyNotFound
from plugin.logs import shown_url
from plugin.policies import BasePolicy

log = logging.getLogger("plugin.policies")


class PolicyFacts(NamedTuple):
    """What the plugin needs of one gateway policy."""

    apis: frozenset[str]  # the APIs it grants
    seed: bytes  # a serialized Object whose session holds what native JWT copies from it as base policy


PolicyRights = dict[tuple[str, str], PolicyFacts]  # (org id, policy id) -> its facts


def _ids(policies: Iterable[Any]) -> PolicyRights:
    found: PolicyRights = {}
    for policy in policies:
        if isinstance(policy, dict):
            pid = policy.get("id") or policy.get("_id")
            if isinstance(pid, str) and pid:
                found[(str(policy.get("org_id", "")), pid)] = PolicyFacts(_granted(policy), _seed(policy))
    return found


def _seed(policy: dict[str, Any]) -> bytes:
    """The session fields the gateway's generateSessionFromPolicy copies from native JWT's base policy
    into a new session before it applies the policies.

    Applying the policies clears only what each policy's partitions cover, so natively a partitioned
    base policy's other values stay in force (an ACL-only base policy's rate and quota limit the
    key). Sent with the session, they give the gateway the same start. Left out: the expiry (see the
    README) and the throttle settings, which the coprocess session has no field for. A value of a
    type Go would not decode is left out too.
    """
    session = SessionState()
    rate = _float(policy.get("rate"))
    if rate is not None:
        session.rate = session.allowance = rate
    per = _float(policy.get("per"))
    if per is not None:
        session.per = per
    for name in ("quota_max", "quota_renewal_rate", "max_query_depth", "post_expiry_grace_period"):
        value = policy.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63:
            setattr(session, name, value)
    for name in ("hmac_enabled", "is_inactive"):
        if policy.get(name) is True:
            setattr(session, name, True)
    tags = policy.get("tags")
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        session.tags.extend(tags)
    action = policy.get("post_expiry_action")
    if isinstance(action, str):
        session.post_expiry_action = action
    return Object(session=session).SerializeToString()


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _granted(policy: dict[str, Any]) -> frozenset[str]:
    """The APIs a policy gives access to: those of its access_rights, unless it is partitioned
    without the ACL partition (a quota- or rate-only policy sets limits but grants nothing)."""
    rights = policy.get("access_rights")
    if not isinstance(rights, dict):
        return frozenset()
    parts = policy.get("partitions")
    if isinstance(parts, dict) and parts.get("per_api") is not True and parts.get("acl") is not True \
            and any(parts.get(k) is True for k in ("quota", "rate_limit", "complexity")):
        return frozenset()  # only a JSON true sets a Go bool: 1 or "true" leave it false
    return frozenset(rights)


VERDICT_MEMO_SIZE = 4096
_UNDECIDED: Any = object()


class PolicySourceError(ValueError):
    """A policy source that answered, but not with policies; the message is safe to log."""


def problem(exc: Exception) -> str:
    """What went wrong, for the log: never an exception's own text, which may quote the gateway
    secret (http.client's "Invalid header value ...") or a URL with credentials."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, OSError):
        return f"{type(exc.reason).__name__}: {exc.reason.strerror or 'connection failed'}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, (PolicySourceError, httpget.Incomplete)):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def gateway_source(url: str) -> str:
    return url.rstrip("/") + "/tyk/policies"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: urllib would resend X-Tyk-Authorization to wherever one points (another
    host, plain http), and the gateway's /tyk/policies never redirects."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        raise PolicySourceError(f"HTTP {code} redirect not followed: the gateway secret goes only to "
                                "--tyk-gateway-url (TYK_AUTH0_GATEWAY_URL)")


# Proxy settings come from the environment, as with urllib's own opener.
_GATEWAY_OPENER = httpget.build_opener(_NoRedirects)

_MAX_POLICY_LIST = 8 * 1024 * 1024


def from_gateway(url: str, secret: str, timeout: float = 3.0) -> Callable[[], PolicyRights]:
    """Reads ``GET /tyk/policies``, cut at ``httpget.deadline(timeout)``: a refusal may wait on this
    read (``PolicyIndex._read_again``), so a gateway that answers a byte at a time must not hold it."""
    # The gateway compares the header's bytes with its secret's UTF-8 bytes; http.client writes a
    # header as latin-1, which would garble an accented secret and cannot write a '€' at all.
    header = secret.encode("utf-8").decode("latin-1")

    def load() -> PolicyRights:
        request = urllib.request.Request(gateway_source(url), headers={"X-Tyk-Authorization": header})
        document = json.loads(httpget.get(_GATEWAY_OPENER, request, timeout, _MAX_POLICY_LIST))
        if not isinstance(document, list):
            raise PolicySourceError("the gateway's policy list is not a JSON array")
        return _ids(document)

    return load


def from_path(path: Path) -> Callable[[], PolicyRights]:
    """A policy_path directory (one policy per file) or a policy_record_name file (a map id -> policy)."""

    skipped: dict[Path, str] = {}  # files logged as skipped, so each is logged once per problem

    def read_dir() -> list[Any]:
        policies = []
        for file in sorted(path.glob("*.json")):
            try:
                policies.append(json.loads(file.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:  # the gateway's LoadPoliciesFromDir skips it too
                described = problem(exc)
                if skipped.get(file) != described:
                    log.warning("policy file skipped: %s (%s)", file, described)
                skipped[file] = described
            else:
                skipped.pop(file, None)
        return policies

    def load() -> PolicyRights:
        if path.is_dir():
            return _ids(read_dir())
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):
            return _ids({**policy, "id": policy.get("id") or key} for key, policy in document.items()
                        if isinstance(policy, dict))
        return _ids(document if isinstance(document, list) else [])

    return load


class PolicyIndex:
    """Owns the gateway's policies (ids and the APIs they grant); answers None until a first load succeeds."""

    def __init__(self, loader: Callable[[], PolicyRights], interval: float = 30.0, source: str = "",
                 recheck_interval: float = 1.0, stale_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self.interval = interval
        self.recheck_interval = recheck_interval
        # A list that cannot be read again for this long may lack policies added since: an id it
        # does not hold is then left to the gateway (which knows it, or answers its own 403)
        # rather than refused; the policies it does hold still seed sessions.
        self.stale_after = 4 * interval if stale_after is None else stale_after
        self._clock = clock
        self._read_at = float("-inf")  # when the list was last read, changed or not
        self._stale_logged = False
        self._read_again_lock = threading.Lock()
        self._last_read_again = float("-inf")
        self._wake = threading.Event()  # set by a refusal: refresh now rather than at the interval
        self._last_recheck = float("-inf")
        self.source = shown_url(source) if "://" in source else source  # for log lines: the path or URL read
        self._ids: PolicyRights | None = None
        # (org id, base policy, policies) -> how to make the refusal, or None; emptied when the list changes
        self._verdicts: dict[tuple[str, BasePolicy | None, tuple[str, ...]], Callable[[], AuthError] | None] = {}
        self._last_problem = ""  # a failure is logged when it changes, not on every retry
        # A reload (SIGHUP) may read while the background refresh is still reading: reads are
        # numbered as they start, and one older than the list already stored is dropped.
        self._reads_lock = threading.Lock()
        self._reads_started = 0
        self._read_stored = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        with self._reads_lock:
            self._reads_started += 1
            read = self._reads_started
        try:
            ids = self._loader()
            if not ids:
                raise PolicySourceError("no policies")  # never conclude "every policy is unknown" from nothing
        except Exception as exc:  # noqa: BLE001 - any failure (e.g. http.client's IncompleteRead) is "unavailable"
            described = problem(exc)
            if self._ids is not None and self._stale() and not self._stale_logged:
                log.warning("policy list from %s not read for over %g s: policies missing from it are now left "
                            "to the gateway", self.source or "-", self.stale_after)
                self._stale_logged = True
            if described != self._last_problem:
                kept = "the last list is kept" if self._ids is not None else "unknown policies are left to the gateway"
                log.warning("policy list unavailable from %s (%s): %s", self.source or "-", described, kept)
                self._last_problem = described
            return False
        with self._reads_lock:
            if read < self._read_stored:
                return True  # a later read has been stored already
            self._read_stored = read
            self._read_at, self._stale_logged = self._clock(), False
            changed = ids != self._ids
            if changed:
                self._ids = ids
                self._verdicts = {}
        if changed or self._last_problem:
            log.info("policy list loaded from %s: %d policies", self.source or "-", len(ids))
        self._last_problem = ""
        return True

    def _stale(self) -> bool:
        return self._clock() - self._read_at > self.stale_after

    def known(self, org_id: str, policy_id: str) -> bool | None:
        ids = self._ids
        if ids is None:
            return None
        if (org_id, policy_id) in ids:
            return True
        return None if self._stale() else False

    def _grant_nothing(self, org_id: str, policy_ids: Iterable[str]) -> bool:
        """No known policy among these grants any API: the gateway's policy service then refuses
        the key ("key has no valid policies to be applied"), skipping unknown ids in a list of
        several and failing on a lone unknown one, which grants nothing here either. From a
        stale list an unknown id may be a policy added since, which may grant something."""
        ids = self._ids or {}
        found = [ids.get((org_id, p)) for p in policy_ids]
        if None in found and self._stale():
            return False
        return not any(facts.apis for facts in found if facts is not None)

    def base_refusal(self, org_id: str, base: BasePolicy | None) -> AuthError | None:
        """Native JWT's answer when the gateway lacks the base policy, or it grants nothing, else None."""
        make = self._base_verdict(org_id, base)
        if make is not None and self._lacks(org_id, base, ()) and self._read_again():
            make = self._base_verdict(org_id, base)
        return self._refuse(make) if make is not None else None

    def _lacks(self, org_id: str, base: BasePolicy | None, policies: tuple[str, ...]) -> bool:
        ids = self._ids or {}
        named = (*((base.id, *base.applied) if base is not None else ()), *policies)
        return any((org_id, p) not in ids for p in named)

    def _read_again(self) -> bool:
        """A refusal for a policy missing from the list may only mean the policy was added after
        the list was read (the gateway has it, and native JWT would grant it): read the list once
        more, on this thread, before refusing. At most once per ``recheck_interval`` and by one
        thread at a time; the others refuse from the list they have. The read is local (the
        gateway's own API, or its policy files) and happens only on this refusal path."""
        now = self._clock()
        if now - self._last_read_again < self.recheck_interval or not self._read_again_lock.acquire(blocking=False):
            return False
        try:
            self._last_read_again = self._last_recheck = now  # no early background read on top of this one
            return self.refresh()
        finally:
            self._read_again_lock.release()

    def _base_verdict(self, org_id: str, base: BasePolicy | None) -> Callable[[], AuthError] | None:
        """How to make the base-policy refusal, or None.

        Native looks the base policy up first: a missing one is "no matching policy", except the
        API's only default policy, which fails creating the key (500 "policy not found"). A session
        whose first policies (the base, or every default) grant no API fails creating the key too.
        """
        if base is None:
            return None
        known = self.known(org_id, base.id)
        if known is None:
            return None
        if not known:
            if base.lone_default:
                return functools.partial(PolicyNotFound, base.id)
            # A missing first default still leaves the others applied: when none of them grants an
            # API, creating the key fails before the missing one is reported.
            if base.from_defaults and self._grant_nothing(org_id, base.applied):
                return NoValidPolicies
            return functools.partial(NoMatchingPolicy, "key not authorized: no matching policy")
        if self._grant_nothing(org_id, base.applied or (base.id,)):
            return NoValidPolicies
        return None

    def refusal(self, org_id: str, base: BasePolicy | None, policies: tuple[str, ...]) -> AuthError | None:
        """Native JWT's answer when the policies the token gets cannot make a key, else None.

        The base policy must exist and grant something. Past it, the final list (after any scope
        mapping) must grant some API, or native cannot apply it. Asked on every request, cache
        hits included, so verdicts are remembered until the policy list changes (or goes stale);
        each refusal is a new error, since a raised one carries its traceback.
        """
        make = self._verdict(org_id, base, policies)
        if make is not None and self._lacks(org_id, base, policies) and self._read_again():
            make = self._verdict(org_id, base, policies)
        return self._refuse(make) if make is not None else None

    def _verdict(self, org_id: str, base: BasePolicy | None,
                 policies: tuple[str, ...]) -> Callable[[], AuthError] | None:
        verdicts = self._verdicts  # read before the list: refresh() swaps the list first, then the memo
        if self._ids is None:
            return None
        key = (org_id, base, policies)
        make = verdicts.get(key, _UNDECIDED)
        if make is None:
            return None
        stale = self._stale()  # a stale list only lets more through: its verdicts are not remembered
        if make is _UNDECIDED or stale:
            make = self._base_verdict(org_id, base)
            if make is None and self._grant_nothing(org_id, policies):
                make = functools.partial(NoMatchingPolicy, "key not authorized: could not apply several policies")
            if not stale:
                if len(verdicts) >= VERDICT_MEMO_SIZE:
                    verdicts.clear()  # this dict only: replacing the attribute could undo a refresh's new one
                verdicts[key] = make
        return make

    def _refuse(self, make: Callable[[], AuthError]) -> AuthError:
        """The refusal, and an early refresh in case the list behind it is a stale or partial read."""
        now = self._clock()
        if now - self._last_recheck >= self.recheck_interval:
            self._last_recheck = now
            self._wake.set()
        return make()

    def grants(self, org_id: str, policy_ids: Iterable[str], api_id: str) -> bool | None:
        """Whether any of the policies gives access to ``api_id``: the gateway's next check after auth."""
        ids = self._ids
        if ids is None or any((org_id, p) not in ids for p in policy_ids):
            return None
        return any(api_id in ids[(org_id, p)].apis for p in policy_ids)

    def seed(self, org_id: str, base: BasePolicy | None) -> bytes:
        """The serialized session values native JWT starts a new session from: its base policy's
        (see ``_seed``), or nothing while the policy is unknown."""
        ids = self._ids
        facts = ids.get((org_id, base.id)) if ids is not None and base is not None else None
        return facts.seed if facts is not None else b""

    def start(self) -> None:
        def run() -> None:
            retry = 0.5
            while True:
                if self.refresh():
                    retry, wait = 0.5, self.interval
                else:  # 0.5, 1, 2, ... s up to the interval: quick to recover, never a tight loop
                    retry, wait = min(retry * 2, self.interval), min(retry, self.interval)
                self._wake.wait(wait)
                self._wake.clear()
                if self._stop.is_set():
                    return

        self._thread = threading.Thread(target=run, name="policy-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
