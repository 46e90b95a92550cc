"""The bundle manifest is the one source of truth for hook names: the gateway calls what it says."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from plugin.bundle import BundleError, Manifest, MiddlewareDefinition

DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "manifest.json"


class ManifestError(Exception):
    pass


@dataclass(frozen=True)
class HookNames:
    auth_check: str
    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    post_key_auth: tuple[str, ...] = ()
    response: tuple[str, ...] = ()


def manifest_path(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("TYK_AUTH0_MANIFEST") or DEFAULT_MANIFEST)


def load_hook_names(path: Path) -> HookNames:
    """The hook names of a manifest read as ``tyk bundle build`` reads it (bundle.Manifest)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror} (give it with --manifest or "
                            "TYK_AUTH0_MANIFEST)") from None
    try:
        middleware = Manifest.from_json(raw).custom_middleware
    except BundleError as exc:
        raise ManifestError(f"manifest {path}: {exc}") from None
    if middleware.driver != "grpc":
        raise ManifestError(f"manifest {path}: custom_middleware.driver is {middleware.driver!r}; "
                            "the gateway calls this server only for \"grpc\"")
    name = middleware.auth_check.name
    if not name:
        raise ManifestError(f"manifest {path}: custom_middleware.auth_check.name is missing")

    def names(hooks: tuple[MiddlewareDefinition, ...] | None) -> tuple[str, ...]:
        return tuple(h.name for h in hooks or () if h.name)

    return HookNames(auth_check=name, pre=names(middleware.pre), post=names(middleware.post),
                     post_key_auth=names(middleware.post_key_auth), response=names(middleware.response))
