"""The bundle manifests are the one source of truth for hook names: the gateway calls what they say.

The server may serve several at once, so that gateways still on an old bundle and gateways on a
new one, naming the auth check differently, are both answered while an operator moves them over.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from plugin.bundle import (
    BundleError,
    CustomMiddleware,
    Manifest,
    MiddlewareDefinition,
    check_for_plugin,
    extractor_risk,
)

log = logging.getLogger(__name__)

MANIFEST_ENV = "TYK_AUTH0_MANIFEST"
# The variable lists several manifests as PATH lists directories: ':' apart (';' on Windows).
MANIFEST_SEPARATOR = os.pathsep
CUSTOM_KINDS = ("pre", "post", "post_key_auth", "response")
# The manifest's names for the slots, as errors and the log show them.
_SLOT = {"auth_check": "the auth_check", "pre": "a pre hook", "post": "a post hook",
         "post_key_auth": "a post_key_auth hook", "response": "a response hook"}

# The repository's manifest.json: the bundle is built from it, so the server answers what the gateway calls.
DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "manifest.json"
# Its content, for an installed package, which has no repository around it; a unit test keeps the two equal.
BUILT_IN_MANIFEST: Mapping[str, Any] = {
    "file_list": [],
    "custom_middleware": {
        "driver": "grpc",
        "auth_check": {"name": "Auth0JWTAuthCheck"},
        "id_extractor": {"extract_from": "header", "extract_with": "value",
                         "extractor_config": {"header_name": "Authorization"}},
    },
}


class ManifestError(Exception):
    pass


@dataclass(frozen=True)
class HookNames:
    """One manifest's hook names; ``auth_check`` is "" for a bundle of custom hooks only."""

    auth_check: str
    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    post_key_auth: tuple[str, ...] = ()
    response: tuple[str, ...] = ()

    def slots(self) -> Iterator[tuple[str, str]]:
        """Every (slot, name) pair, the auth check first."""
        if self.auth_check:
            yield "auth_check", self.auth_check
        for kind in CUSTOM_KINDS:
            for name in getattr(self, kind):
                yield kind, name


@dataclass(frozen=True)
class ServedHooks:
    """The hook names of every manifest the server serves, each name with one meaning.

    Its ``pre``, ``post``, ``post_key_auth`` and ``response`` are read like a ``HookNames``'
    (``extensions.manifest_problems`` compares either with the loaded hooks).
    """

    auth_checks: tuple[str, ...]
    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    post_key_auth: tuple[str, ...] = ()
    response: tuple[str, ...] = ()
    manifests: tuple[Path, ...] = ()
    # name -> (slot, the first manifest listing it), for errors that say where a name comes from
    origins: Mapping[str, tuple[str, Path]] = field(default_factory=lambda: MappingProxyType({}), compare=False)


def manifest_paths(explicit: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The manifests to serve: every ``--manifest``, else the list in TYK_AUTH0_MANIFEST, else the
    repository's. A path given twice counts once."""
    env = os.environ if environ is None else environ
    given = [p for p in explicit or () if p]
    if not given:
        given = [p.strip() for p in env.get(MANIFEST_ENV, "").split(MANIFEST_SEPARATOR) if p.strip()]
    paths = [Path(p) for p in given] or [DEFAULT_MANIFEST]
    return tuple(dict.fromkeys(paths))


def manifest_path(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The one manifest a command writes from (``migrate``): ``--manifest``, else TYK_AUTH0_MANIFEST
    when it names one, else the repository's."""
    paths = manifest_paths([explicit] if explicit else None, environ)
    if len(paths) > 1:
        raise ManifestError(f"{MANIFEST_ENV} lists {len(paths)} manifests ({', '.join(map(str, paths))}): "
                            "give the one to use with --manifest")
    return paths[0]


def read_manifest(path: Path) -> bytes:
    """The manifest's bytes; the built-in manifest when the default one is asked for and absent."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if path == DEFAULT_MANIFEST:
            return json.dumps(BUILT_IN_MANIFEST).encode()
        raise ManifestError(f"cannot read manifest {path}: no such file (give it with --manifest or "
                            f"{MANIFEST_ENV})") from None
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror} (give it with --manifest or "
                            f"{MANIFEST_ENV})") from None


def load_manifest(path: Path) -> Manifest:
    """The manifest read as ``tyk bundle build`` reads it, refused where this server could not answer it."""
    raw = read_manifest(path)
    try:
        manifest = Manifest.from_json(raw)
        check_for_plugin(manifest.custom_middleware)
    except BundleError as exc:
        raise ManifestError(f"manifest {path}: {exc}") from None
    return manifest


def hook_names(middleware: CustomMiddleware) -> HookNames:
    """The names the gateway calls for this ``custom_middleware`` (a bundle's, or an API's own)."""

    def names(hooks: tuple[MiddlewareDefinition, ...] | None) -> tuple[str, ...]:
        return tuple(h.name for h in hooks or () if h.name)

    return HookNames(auth_check=middleware.auth_check.name, pre=names(middleware.pre), post=names(middleware.post),
                     post_key_auth=names(middleware.post_key_auth), response=names(middleware.response))


def load_hook_names(path: Path) -> HookNames:
    """The hook names the gateway calls, as the manifest gives them; a risky ID extractor is logged."""
    middleware = load_manifest(path).custom_middleware
    risk = extractor_risk(middleware)
    if risk:
        log.warning("manifest %s: %s", path, risk)
    if not middleware.auth_check.name:
        raise ManifestError(f"manifest {path}: custom_middleware.auth_check.name is missing: the gateway would "
                            "never call the plugin's auth check")
    return hook_names(middleware)


def load_served_hooks(paths: Iterable[Path]) -> ServedHooks:
    """Every manifest's hook names together; a name listed in two slots (in one manifest or two) is
    refused, naming the name and the files: the gateway calls a hook by its name alone."""
    paths = tuple(paths)
    origins: dict[str, tuple[str, Path]] = {}
    for path in paths:
        for kind, name in load_hook_names(path).slots():
            first = origins.setdefault(name, (kind, path))
            if first[0] != kind:
                raise ManifestError(conflict(name, (first[0], f"manifest {first[1]}"), (kind, f"manifest {path}")))
    by_kind = {kind: tuple(n for n, (k, _) in origins.items() if k == kind) for kind in ("auth_check", *CUSTOM_KINDS)}
    return ServedHooks(auth_checks=by_kind["auth_check"], pre=by_kind["pre"], post=by_kind["post"],
                       post_key_auth=by_kind["post_key_auth"], response=by_kind["response"], manifests=paths,
                       origins=MappingProxyType(origins))


def conflict(name: str, first: tuple[str, str], second: tuple[str, str]) -> str:
    """Why one name cannot be served in two slots; each slot comes with where it is listed
    (``manifest PATH``, ``bundle NAME``)."""
    (kind, where), (other_kind, other_where) = first, second
    if where == other_where:
        said = f"hook {name!r} is both {_SLOT[kind]} and {_SLOT[other_kind]} in {where}"
    else:
        said = f"hook {name!r} is {_SLOT[kind]} in {where} but {_SLOT[other_kind]} in {other_where}"
    return f"{said}: the gateway calls a hook by its name, so one name must name one hook; rename one of them"


def unserved(names: HookNames, served: ServedHooks, where: str) -> list[str]:
    """What the server would refuse of the hooks ``names`` lists (a bundle's): an auth
    check it does not serve (403 ``Key not authorised``), and a name the server's manifests give
    another slot (refused at its start, were ``where`` served beside them)."""
    problems = []
    for kind, name in names.slots():
        origin = served.origins.get(name)
        if origin is not None and origin[0] != kind:
            problems.append(conflict(name, (kind, where), (origin[0], f"manifest {origin[1]}")))
        elif kind == "auth_check" and origin is None:
            shown = ", ".join(repr(n) for n in served.auth_checks)
            problems.append(f"auth_check {name!r} of {where} is not served: the server's manifests "
                            f"({', '.join(map(str, served.manifests))}) name the auth check {shown}, so every "
                            "auth call for it gets 403 Key not authorised")
    return problems
