"""The bundle manifest is the one source of truth for hook names: the gateway calls what it says."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin.bundle import BundleError, Manifest, MiddlewareDefinition, check_for_plugin, extractor_risk

log = logging.getLogger(__name__)

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
    auth_check: str
    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    post_key_auth: tuple[str, ...] = ()
    response: tuple[str, ...] = ()


def manifest_path(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("TYK_AUTH0_MANIFEST") or DEFAULT_MANIFEST)


def read_manifest(path: Path) -> bytes:
    """The manifest's bytes; the built-in manifest when the default one is asked for and absent."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if path == DEFAULT_MANIFEST:
            return json.dumps(BUILT_IN_MANIFEST).encode()
        raise ManifestError(f"cannot read manifest {path}: no such file (give it with --manifest or "
                            "TYK_AUTH0_MANIFEST)") from None
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror} (give it with --manifest or "
                            "TYK_AUTH0_MANIFEST)") from None


def load_manifest(path: Path) -> Manifest:
    """The manifest read as ``tyk bundle build`` reads it, refused where this server could not answer it."""
    raw = read_manifest(path)
    try:
        manifest = Manifest.from_json(raw)
        check_for_plugin(manifest.custom_middleware)
    except BundleError as exc:
        raise ManifestError(f"manifest {path}: {exc}") from None
    return manifest


def load_hook_names(path: Path) -> HookNames:
    """The hook names the gateway calls, as the manifest gives them; a risky ID extractor is logged."""
    middleware = load_manifest(path).custom_middleware
    risk = extractor_risk(middleware)
    if risk:
        log.warning("manifest %s: %s", path, risk)
    name = middleware.auth_check.name
    if not name:
        raise ManifestError(f"manifest {path}: custom_middleware.auth_check.name is missing: the gateway would "
                            "never call the plugin's auth check")

    def names(hooks: tuple[MiddlewareDefinition, ...] | None) -> tuple[str, ...]:
        return tuple(h.name for h in hooks or () if h.name)

    return HookNames(auth_check=name, pre=names(middleware.pre), post=names(middleware.post),
                     post_key_auth=names(middleware.post_key_auth), response=names(middleware.response))
