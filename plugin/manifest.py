"""The bundle manifest is the one source of truth for hook names: the gateway calls what it says."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

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
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from None
    except ValueError:
        raise ManifestError(f"manifest {path} is not valid JSON") from None
    middleware = document.get("custom_middleware") if isinstance(document, dict) else None
    if not isinstance(middleware, dict):
        raise ManifestError(f"manifest {path} has no custom_middleware object")
    auth = middleware.get("auth_check") or {}
    name = auth.get("name") if isinstance(auth, dict) else None
    if not isinstance(name, str) or not name:
        raise ManifestError(f"manifest {path}: custom_middleware.auth_check.name is missing")

    def names(slot: str) -> tuple[str, ...]:
        entries = middleware.get(slot) or []
        return tuple(e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str))

    return HookNames(auth_check=name, pre=names("pre"), post=names("post"),
                     post_key_auth=names("post_key_auth"), response=names("response"))
