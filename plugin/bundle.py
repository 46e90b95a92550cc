"""Plugin bundles: the zip a Tyk gateway downloads to learn which hooks call this plugin.

A bundle is ``manifest.json`` plus the files it lists. The gateway fetches it from
``bundle_base_url`` + the API's ``custom_middleware_bundle``, then checks it: the
manifest's md5 ``checksum`` over the listed files and, when ``public_key_path`` is
set in tyk.conf, an RSA ``signature`` over the same bytes. This module builds bundles
the gateway accepts and checks them the way the gateway will, so a broken bundle
is caught before a gateway refuses to load the API.

The manifest is written byte for byte as Go's ``json.Marshal`` writes the gateway's
``BundleManifest`` (every field, struct order, compact, HTML-escaped), so a bundle
built here is interchangeable with one from ``tyk bundle build``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import io
import json
import math
import os
import posixpath
import re
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Final, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from plugin import gojson

__all__ = (
    "MANIFEST_NAME",
    "BundleError",
    "CustomMiddleware",
    "IdExtractor",
    "Manifest",
    "MiddlewareDefinition",
    "add_cli",
    "build",
    "check_for_plugin",
    "checksum",
    "extractor_risk",
    "load_private_key",
    "load_public_key",
    "sign",
    "verify",
    "verify_signature",
)

MANIFEST_NAME: Final = "manifest.json"

# Refusals worded as the gateway's bundler and loader word them, so an operator can
# match what this tool says against the gateway's log.
NO_HOOKS: Final = "No hooks defined"
NO_DRIVER: Final = "No driver specified"
NONEXISTENT_FILE: Final = "Referencing a nonexistent file: "
MANIFEST_LOAD: Final = "Couldn't load manifest file"
BUNDLE_DATA: Final = "Couldn't read/write bundle data"
NOT_SIGNED: Final = "Bundle isn't signed"
INVALID_CHECKSUM: Final = "invalid checksum"
BAD_SIGNATURE: Final = "crypto/rsa: verification error"

_PRIVATE_KEY_TYPES: Final = ("RSA PRIVATE KEY", "PRIVATE KEY")
_PUBLIC_KEY_TYPES: Final = ("PUBLIC KEY", "RSA PUBLIC KEY")
_PEM_BLOCK: Final = re.compile(rb"-----BEGIN ([^\r\n-]+)-----[ \t]*\r?\n.*?-----END \1-----", re.S)
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# Zip timestamps are pinned so the same inputs give the same bytes (reproducible builds).
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)

_T = TypeVar("_T")


class BundleError(Exception):
    """A bundle (or its manifest, files or keys) the gateway would refuse; the message says why."""


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class MiddlewareDefinition:
    """One hook: ``name`` is the function the gateway asks the gRPC server to run."""

    name: str = ""
    path: str = ""
    disabled: bool = False
    require_session: bool = False
    raw_body_only: bool = False


@dataclass(frozen=True)
class IdExtractor:
    """How the gateway derives a cache key from the request, so it can skip repeat auth calls."""

    disabled: bool = False
    extract_from: str = ""
    extract_with: str = ""
    # None and {} stay distinct because Go writes them differently (null vs {}).
    extractor_config: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class CustomMiddleware:
    """The manifest's ``custom_middleware`` block.

    Hook lists are ``None`` when absent or null, ``()`` when given as ``[]``: Go
    keeps that difference (``null`` vs ``[]``) when it writes the manifest back.
    """

    pre: tuple[MiddlewareDefinition, ...] | None = None
    post: tuple[MiddlewareDefinition, ...] | None = None
    post_key_auth: tuple[MiddlewareDefinition, ...] | None = None
    auth_check: MiddlewareDefinition = MiddlewareDefinition()
    response: tuple[MiddlewareDefinition, ...] | None = None
    driver: str = ""
    id_extractor: IdExtractor = IdExtractor()

    @property
    def hook_count(self) -> int:
        """Hooks as the bundler counts them: every listed hook (even disabled) plus a named auth_check."""
        listed = sum(len(hooks or ()) for hooks in (self.pre, self.post, self.post_key_auth, self.response))
        return listed + (1 if self.auth_check.name else 0)


@dataclass(frozen=True)
class Manifest:
    """A bundle manifest, read with the gateway's JSON rules and written with Go's."""

    file_list: tuple[str, ...] | None = None
    custom_middleware: CustomMiddleware = CustomMiddleware()
    checksum: str = ""
    signature: str = ""

    @classmethod
    def from_json(cls, raw: str | bytes, *, first_value: bool = False) -> Manifest:
        """Parse as Go's ``json.Unmarshal`` would: unknown keys ignored, key names matched case-insensitively.

        ``first_value`` reads as the gateway's ``json.NewDecoder(f).Decode`` does when it
        loads a bundle: the first JSON value counts and whatever follows it is never read.
        """
        text = gojson.text(raw) if isinstance(raw, bytes) else raw
        decoder = json.JSONDecoder(object_pairs_hook=_JsonObject, parse_int=_go_number,
                                   parse_float=_go_number, parse_constant=_reject_constant)
        try:
            if first_value:
                document, _ = decoder.raw_decode(text, len(text) - len(text.lstrip(" \t\n\r")))
            else:
                document = decoder.decode(text)
        except (ValueError, RecursionError) as exc:
            raise BundleError(f"manifest is not valid JSON: {exc}") from None
        if not isinstance(document, _JsonObject):
            raise BundleError(f"manifest must be a JSON object, not {_kind(document)}")
        return _manifest(document)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise BundleError(f"{MANIFEST_LOAD}: {path}: {exc.strerror or exc}") from None
        return cls.from_json(raw)

    def to_json(self) -> bytes:
        """The bytes Go's ``json.Marshal(&apidef.BundleManifest{...})`` produces for this manifest."""
        mw = self.custom_middleware
        extractor = mw.id_extractor
        return _go_object(
            ("file_list", _go_list(self.file_list, _go_value)),
            ("custom_middleware", _go_object(
                ("pre", _go_list(mw.pre, _go_definition)),
                ("post", _go_list(mw.post, _go_definition)),
                ("post_key_auth", _go_list(mw.post_key_auth, _go_definition)),
                ("auth_check", _go_definition(mw.auth_check)),
                ("response", _go_list(mw.response, _go_definition)),
                ("driver", _go_value(mw.driver)),
                ("id_extractor", _go_object(
                    ("disabled", _go_value(extractor.disabled)),
                    ("extract_from", _go_value(extractor.extract_from)),
                    ("extract_with", _go_value(extractor.extract_with)),
                    ("extractor_config", _go_value(extractor.extractor_config)),
                )),
            )),
            ("checksum", _go_value(self.checksum)),
            ("signature", _go_value(self.signature)),
        ).encode("utf-8")

    def validate(self, base_dir: Path | None) -> None:
        """Refuse what ``tyk bundle build`` refuses, in its order: missing files, no hooks, no driver.

        ``base_dir`` is where file_list paths resolve; ``None`` checks only the
        paths' shape (used when the files live in a zip instead).
        """
        for name in self.file_list or ():
            member = _member_name(name)
            if base_dir is None:
                continue
            target = Path(base_dir) / member
            if not target.exists():
                raise BundleError(NONEXISTENT_FILE + name)
            if not target.is_file():
                raise BundleError(f"{BUNDLE_DATA}: {name} is not a regular file")
        if self.custom_middleware.hook_count == 0:
            raise BundleError(NO_HOOKS)
        if not self.custom_middleware.driver:
            raise BundleError(NO_DRIVER)


def check_for_plugin(middleware: CustomMiddleware) -> None:
    """Refuse a manifest this plugin's server would not answer (``serve`` refuses it the same way): the
    gateway calls a gRPC server only for the driver "grpc", spelled exactly so. A bundle of hooks
    alone (no auth check, for an API with another auth) is fine; ``serve`` also needs the auth check."""
    if middleware.driver != "grpc":
        raise BundleError(f"custom_middleware.driver is {middleware.driver!r}; the gateway calls this plugin only "
                          "for \"grpc\"")


def extractor_risk(middleware: CustomMiddleware) -> str | None:
    """Why the manifest's ID extractor could hand one client's session to another, or None.

    The gateway serves the session the plugin built to every later request whose extracted value is
    the same, so the value must be the whole token: only a value extractor on the header or form
    field carrying it gives that (README, *Token location*).
    """
    extractor = middleware.id_extractor
    if extractor.disabled or extractor.extract_with not in ("value", "regex", "xpath"):
        return None  # the gateway builds no extractor
    if extractor.extract_with == "value" and extractor.extract_from in ("header", "form"):
        return None
    return (f"custom_middleware.id_extractor extracts with {extractor.extract_with!r} from "
            f"{extractor.extract_from!r}: every request yielding the same value gets the session the plugin built "
            "for the first, so unless that value is always the whole token, one client's session can reach another; "
            "use extract_with \"value\" on the header or form field carrying the token (README, Token location)")


# --------------------------------------------------------------------------- hashing and keys


def checksum(data: bytes) -> str:
    """The manifest ``checksum``: lowercase hex md5 of the listed files' bytes, concatenated in order."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """An RSA signing key from the first PEM block, accepting only the types the gateway's tooling reads."""
    block = _pem_block(Path(path), _PRIVATE_KEY_TYPES)
    try:
        key = serialization.load_pem_private_key(block, password=None)
    except TypeError:
        raise BundleError(f"{path}: encrypted private keys are not supported; decrypt it first") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BundleError(f"{path}: not a valid private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BundleError(f"{path}: only RSA keys can sign bundles (got {type(key).__name__})")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """An RSA verification key, as the gateway loads ``public_key_path`` (PKIX or PKCS#1 PEM)."""
    block = _pem_block(Path(path), _PUBLIC_KEY_TYPES)
    try:
        key = serialization.load_pem_public_key(block)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BundleError(f"{path}: not a valid public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BundleError(f"{path}: only RSA keys can verify bundles (got {type(key).__name__})")
    return key


def sign(data: bytes, key_path: Path) -> str:
    """The manifest ``signature``: base64 RSASSA-PKCS1-v1_5/SHA-256 over the same bytes as the checksum."""
    key = load_private_key(key_path)
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify_signature(data: bytes, signature: str, public_key_path: Path) -> None:
    """Raise unless ``signature`` is the key's signature over ``data``."""
    _check_signature(hashlib.sha256(data).digest(), signature, load_public_key(public_key_path), public_key_path)


# --------------------------------------------------------------------------- build and verify


def build(manifest_path: Path, output: Path, key_path: Path | None = None, versioned: bool = False) -> Path:
    """Write the bundle zip for ``manifest_path`` and return the path written.

    file_list paths resolve against the manifest's directory, so the build does not
    depend on the working directory. Without ``key_path`` the bundle is unsigned and
    any signature left in the source manifest is dropped (a stale one would fail
    the gateway's check). The file is replaced atomically so a bundle server never
    hands a gateway a half-written zip.

    ``versioned=True`` appends the first 12 hex digits of a sha256 over the manifest
    and every file (name, size, content) to the file name, e.g. ``bundle-3f2a9c01b7de.zip``.
    This matters because the gateway stores a bundle under a directory named after
    the md5 of its *name* and never downloads a name it already has: a changed
    bundle published under the old name is silently ignored until every gateway's
    cache is wiped. A new name per content, set in the API's
    ``custom_middleware_bundle``, makes gateways fetch the change.
    """
    manifest_path, output = Path(manifest_path), Path(output)
    source = Manifest.load(manifest_path)
    base_dir = manifest_path.parent
    source.validate(base_dir)
    check_for_plugin(source.custom_middleware)

    files: list[tuple[str, bytes]] = []
    for name in source.file_list or ():
        member = _member_name(name)
        try:
            files.append((member, (base_dir / member).read_bytes()))
        except OSError as exc:
            raise BundleError(f"{BUNDLE_DATA}: {name}: {exc.strerror or exc}") from None
    data = b"".join(content for _, content in files)

    signature = sign(data, key_path) if key_path is not None else ""
    manifest_bytes = replace(source, checksum=checksum(data), signature=signature).to_json()
    archive = _zip_bytes(files, manifest_bytes)

    if versioned:
        output = output.with_name(f"{output.stem}-{_content_id(manifest_bytes, files)}{output.suffix}")
    _write_atomically(output, archive)
    return output


def verify(bundle_path: Path, public_key_path: Path | None = None) -> Manifest:
    """Check a bundle as a gateway would before loading it, and return its manifest.

    With ``public_key_path`` (the gateway's ``public_key_path``) the bundle must be
    signed by the matching private key; without it only the checksum is checked,
    as on a gateway with no key configured. It also refuses a manifest with no
    hooks or driver, which a gateway would load but never call.
    """
    bundle_path = Path(bundle_path)
    public_key = load_public_key(public_key_path) if public_key_path is not None else None
    try:
        with zipfile.ZipFile(bundle_path) as archive:
            members = _archive_members(archive)
            if MANIFEST_NAME not in members:
                raise BundleError(f"{MANIFEST_NAME} not found at the root of the bundle")
            manifest = Manifest.from_json(archive.read(members[MANIFEST_NAME]), first_value=True)

            if public_key is not None and not manifest.signature:
                raise BundleError(NOT_SIGNED)

            md5 = hashlib.md5(usedforsecurity=False)
            sha256 = hashlib.sha256()
            for name in manifest.file_list or ():
                member = _member_name(name)
                if member not in members:
                    raise BundleError(f"{NONEXISTENT_FILE}{name} (not in the bundle)")
                _stream(archive, members[member], md5, sha256)
    except OSError as exc:
        raise BundleError(f"{exc.strerror or exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, NotImplementedError,
            zlib.error, UnicodeDecodeError) as exc:
        # RuntimeError: encrypted entries; NotImplementedError: unsupported compression; zlib: corrupt deflate.
        raise BundleError(f"not a readable zip archive: {exc}") from None

    if md5.hexdigest() != manifest.checksum:
        raise BundleError(
            f"{INVALID_CHECKSUM}: manifest says {manifest.checksum!r}, the files hash to {md5.hexdigest()!r}"
        )
    if public_key is not None and public_key_path is not None:
        _check_signature(sha256.digest(), manifest.signature, public_key, public_key_path)
    manifest.validate(None)
    check_for_plugin(manifest.custom_middleware)
    return manifest


# --------------------------------------------------------------------------- command line


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bundle build`` and ``bundle verify``."""
    parser = subparsers.add_parser(
        "bundle",
        help="build or verify the plugin bundle the gateway downloads",
        description="Build or verify a Tyk plugin bundle (manifest.json plus its files, zipped).",
    )
    actions = parser.add_subparsers(dest="bundle_action", required=True, metavar="ACTION")

    build_parser = actions.add_parser(
        "build", help="zip the manifest and its files, with checksum and optional signature",
        description="Zip manifest.json and its file_list, adding the checksum and, with --key, the signature.",
    )
    build_parser.add_argument("-m", "--manifest", type=Path, default=Path(MANIFEST_NAME),
                              help="manifest to bundle (default: %(default)s)")
    build_parser.add_argument("-o", "--output", type=Path, default=Path("bundle/bundle.zip"),
                              help="zip to write (default: %(default)s)")
    build_parser.add_argument("-k", "--key", type=Path, default=None,
                              help="PEM RSA private key (PKCS#1 or PKCS#8) to sign with")
    build_parser.add_argument("--versioned", action="store_true",
                              help="add a content hash to the file name, so gateways fetch a changed bundle")
    build_parser.set_defaults(func=_run_build)

    verify_parser = actions.add_parser(
        "verify", help="check a bundle as the gateway will",
        description="Check the manifest, the listed files, the checksum and, with --public-key, the signature.",
    )
    verify_parser.add_argument("bundle_path", type=Path, metavar="BUNDLE", help="bundle zip to check")
    verify_parser.add_argument("--public-key", type=Path, default=None,
                               help="PEM RSA public key, as set in the gateway's public_key_path")
    verify_parser.add_argument("--server-manifest", type=Path, action="append", default=None, metavar="FILE",
                               help="a manifest the plugin server serves (its --manifest); repeat it for each: fail "
                                    "when the server would refuse a hook name of the bundle")
    verify_parser.set_defaults(func=_run_verify)


def _run_build(args: argparse.Namespace) -> int:
    try:
        written = build(args.manifest, args.output, key_path=args.key, versioned=args.versioned)
    except BundleError as exc:
        print(f"bundle build: {exc}", file=sys.stderr)
        return 1
    _warn_extractor("bundle build", Manifest.load(args.manifest))
    if args.key is None:
        print("bundle build: the bundle is unsigned; a gateway with public_key_path set refuses it "
              f'("{NOT_SIGNED}"). Pass --key to sign it.', file=sys.stderr)
    print(written)
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    try:
        manifest = verify(args.bundle_path, args.public_key)
    except BundleError as exc:
        print(f"bundle verify: {args.bundle_path}: {exc}", file=sys.stderr)
        return 1
    _warn_extractor(f"bundle verify: {args.bundle_path}", manifest)
    served = ""
    if args.server_manifest:
        problems = _server_problems(args.bundle_path, manifest, args.server_manifest)
        if problems:
            for problem in problems:
                print(f"bundle verify: {args.bundle_path}: {problem}", file=sys.stderr)
            return 1
        served = ", hook names served by the server's manifests"
    if args.public_key is not None:
        state = "signature verified"
    elif manifest.signature:
        state = "signed, signature not checked (no --public-key)"
    else:
        state = "unsigned"
    print(f"{args.bundle_path}: ok (checksum {manifest.checksum}, {state}{served})")
    return 0


def _server_problems(bundle_path: Path, manifest: Manifest, server_manifests: Sequence[Path]) -> list[str]:
    """What the plugin server, serving ``server_manifests``, would refuse of the bundle's hook names."""
    from plugin.manifest import ManifestError, hook_names, load_served_hooks, unserved  # it builds on this module

    try:
        served = load_served_hooks(server_manifests)
    except ManifestError as exc:
        return [f"--server-manifest: the server refuses to start with these manifests: {exc}"]
    return unserved(hook_names(manifest.custom_middleware), served, f"bundle {bundle_path}")


def _warn_extractor(command: str, manifest: Manifest) -> None:
    risk = extractor_risk(manifest.custom_middleware)
    if risk:
        print(f"{command}: warning: {risk}", file=sys.stderr)


# --------------------------------------------------------------------------- internals


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that keeps its members in document order, duplicates included,
    so struct fields can be filled the way Go fills them (see _fields)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _go_number(text: str) -> float:
    # Go decodes every JSON number into interface{} as float64, and refuses what overflows it.
    value = float(text)
    if math.isinf(value):
        raise BundleError(f"manifest: number {text} does not fit a float64")
    return value


def _reject_constant(text: str) -> float:
    raise BundleError(f"manifest is not valid JSON: {text} is not a JSON value")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fields(value: Any, names: Sequence[str], where: str, resettable: Sequence[str] = ()) -> dict[str, Any]:
    """Members of a JSON object that set struct fields, as Go's decoder sets them.

    A key matches its field exactly, else case-insensitively. A key given twice decodes again into
    the same field: a second object merges into the first, null leaves a struct, string or bool as
    it was, and resets only the ``resettable`` (slice and map) fields.
    """
    if value is None:
        return {}
    if not isinstance(value, _JsonObject):
        raise BundleError(f"manifest: {where} must be an object, not {_kind(value)}")
    found: dict[str, Any] = {}
    for key, item in value.pairs:
        field = key if key in names else next((name for name in names if gojson.equal_fold(name, key)), None)
        if field is None or (item is None and field not in resettable):
            continue
        previous = found.get(field)
        if isinstance(previous, _JsonObject) and isinstance(item, _JsonObject):
            item = _JsonObject(previous.pairs + item.pairs)
        found[field] = item
    return found


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BundleError(f"manifest: {where} must be a string, not {_kind(value)}")
    return _LONE_SURROGATE.sub("\ufffd", value)  # Go decodes a lone surrogate escape as U+FFFD


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BundleError(f"manifest: {where} must be true or false, not {_kind(value)}")
    return value


def _list(value: Any, where: str, item: Callable[[Any, str], _T]) -> tuple[_T, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BundleError(f"manifest: {where} must be an array, not {_kind(value)}")
    return tuple(item(element, f"{where}[{index}]") for index, element in enumerate(value))


def _plain(value: Any) -> Any:
    """JSON value as plain dicts/lists; duplicate keys resolve last-wins, as in a Go map."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _definition(value: Any, where: str) -> MiddlewareDefinition:
    names = ("disabled", "name", "path", "require_session", "raw_body_only")
    found = _fields(value, names, where)
    return MiddlewareDefinition(
        name=_string(found.get("name"), f"{where}.name"),
        path=_string(found.get("path"), f"{where}.path"),
        disabled=_bool(found.get("disabled"), f"{where}.disabled"),
        require_session=_bool(found.get("require_session"), f"{where}.require_session"),
        raw_body_only=_bool(found.get("raw_body_only"), f"{where}.raw_body_only"),
    )


def _id_extractor(value: Any, where: str) -> IdExtractor:
    found = _fields(value, ("disabled", "extract_from", "extract_with", "extractor_config"), where,
                    resettable=("extractor_config",))
    config = found.get("extractor_config")
    if config is not None and not isinstance(config, _JsonObject):
        raise BundleError(f"manifest: {where}.extractor_config must be an object, not {_kind(config)}")
    return IdExtractor(
        disabled=_bool(found.get("disabled"), f"{where}.disabled"),
        extract_from=_string(found.get("extract_from"), f"{where}.extract_from"),
        extract_with=_string(found.get("extract_with"), f"{where}.extract_with"),
        extractor_config=None if config is None else MappingProxyType(_plain(config)),
    )


def _custom_middleware(value: Any, where: str) -> CustomMiddleware:
    names = ("pre", "post", "post_key_auth", "auth_check", "response", "driver", "id_extractor")
    found = _fields(value, names, where, resettable=("pre", "post", "post_key_auth", "response"))
    return CustomMiddleware(
        pre=_list(found.get("pre"), f"{where}.pre", _definition),
        post=_list(found.get("post"), f"{where}.post", _definition),
        post_key_auth=_list(found.get("post_key_auth"), f"{where}.post_key_auth", _definition),
        auth_check=_definition(found.get("auth_check"), f"{where}.auth_check"),
        response=_list(found.get("response"), f"{where}.response", _definition),
        driver=_string(found.get("driver"), f"{where}.driver"),
        id_extractor=_id_extractor(found.get("id_extractor"), f"{where}.id_extractor"),
    )


def _manifest(document: _JsonObject) -> Manifest:
    found = _fields(document, ("file_list", "custom_middleware", "checksum", "signature"), "manifest",
                    resettable=("file_list",))
    return Manifest(
        file_list=_list(found.get("file_list"), "file_list", _string),
        custom_middleware=_custom_middleware(found.get("custom_middleware"), "custom_middleware"),
        checksum=_string(found.get("checksum"), "checksum"),
        signature=_string(found.get("signature"), "signature"),
    )


def _go_string(text: str) -> str:
    # encoding/json escapes <, > and & (HTML safety) and the JS line separators,
    # and turns unpaired surrogates into U+FFFD; everything else stays UTF-8.
    encoded = json.dumps(_LONE_SURROGATE.sub("\ufffd", text), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        encoded = encoded.replace(char, escape)
    return encoded


def _go_float(value: float) -> str:
    # strconv.FormatFloat(f, 'f' or 'e', -1, 64) as encoding/json picks it: shortest
    # round-trip digits, exponent form below 1e-6 or from 1e21, "e-07" shortened to "e-7".
    if not math.isfinite(value):
        raise BundleError(f"manifest: {value} cannot be written as JSON")
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = repr(value).split("e")
    if exponent[0] == "-" and len(exponent) == 3 and exponent[1] == "0":
        exponent = "-" + exponent[2]
    return f"{mantissa}e{exponent}"


def _go_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _go_float(float(value))
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, Mapping):  # Go writes map keys sorted
        return "{" + ",".join(f"{_go_string(str(k))}:{_go_value(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_go_value(item) for item in value) + "]"
    raise BundleError(f"manifest: cannot write a {type(value).__name__} as JSON")


def _go_object(*members: tuple[str, str]) -> str:
    """A struct: members in declaration order, values already encoded."""
    return "{" + ",".join(f"{_go_string(key)}:{encoded}" for key, encoded in members) + "}"


def _go_list(items: Iterable[_T] | None, encode: Callable[[_T], str]) -> str:
    return "null" if items is None else "[" + ",".join(encode(item) for item in items) + "]"


def _go_definition(hook: MiddlewareDefinition) -> str:
    return _go_object(
        ("disabled", _go_value(hook.disabled)),
        ("name", _go_value(hook.name)),
        ("path", _go_value(hook.path)),
        ("require_session", _go_value(hook.require_session)),
        ("raw_body_only", _go_value(hook.raw_body_only)),
    )


def _member_name(name: str) -> str:
    """The zip entry for a file_list path, refusing paths the gateway would not extract or would clobber."""
    member = posixpath.normpath(name) if name else ""
    if not member or member == "." or member.startswith("..") or PurePosixPath(member).is_absolute():
        # The gateway refuses any entry whose path starts with "..", so "..hidden.py" too.
        raise BundleError(f"file_list entry must be a relative path inside the bundle: {name!r}")
    if member == MANIFEST_NAME:
        # The gateway extracts every entry and then reads manifest.json from disk,
        # so a listed manifest.json would be overwritten and fail its own checksum.
        raise BundleError(f"file_list must not list {MANIFEST_NAME}: the bundle's own manifest goes there")
    return member


def _entry_name(info: zipfile.ZipInfo) -> str:
    """The name Go's zip reader gives an entry: without the UTF-8 flag, its raw bytes (read as UTF-8)."""
    if info.flag_bits & 0x800:
        return info.orig_filename
    return info.orig_filename.encode("cp437").decode("utf-8", "surrogateescape")


_UNIX_CREATORS = (3, 19)  # Unix, macOS: the mode bits are in the high half of external_attr


def _is_folder(info: zipfile.ZipInfo, name: str) -> bool:
    """Go's FileHeader.Mode().IsDir(): a trailing slash, or the creator's folder bit."""
    if name.endswith("/"):
        return True
    if info.create_system in _UNIX_CREATORS:
        return stat.S_ISDIR(info.external_attr >> 16)
    return bool(info.external_attr & 0x10)  # MS-DOS, NTFS, VFAT: the directory attribute


def _archive_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Regular-file entries by cleaned name, after extracting the archive the way the gateway does.

    The gateway walks the entries in order: it creates a folder only for a folder entry (never a
    missing parent, never one that exists), creates each file inside an existing folder, and reads
    every entry (stored or deflated only), so a bad entry fails the bundle even if it is not listed.
    """
    members: dict[str, zipfile.ZipInfo] = {}
    folders = {""}  # the bundle's own folder exists before extraction
    for info in archive.infolist():
        name = _entry_name(info)
        cleaned = posixpath.normpath(name) if name else "."
        if PurePosixPath(cleaned).is_absolute() or cleaned.startswith(".."):
            raise BundleError(f"invalid file path in archive: {name}")
        if "\0" in name:
            raise BundleError(f"{name!r}: a file name with a NUL byte cannot be created (invalid argument)")
        path = "" if cleaned == "." else cleaned
        parent = posixpath.dirname(path)
        if parent not in folders:
            raise BundleError(f"{name}: no folder entry for {parent}/ before it; the gateway creates a folder only "
                              "for a folder entry (no such file or directory)")
        if _is_folder(info, name):
            if path in folders or path in members:
                raise BundleError(f"{name}: that path already exists when the gateway reaches it (file exists)")
            folders.add(path)
            continue
        if path in folders:
            raise BundleError(f"{name or '(empty name)'}: that path is a folder (is a directory)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleError(f"{name}: zip: unsupported compression algorithm")
        _stream(archive, info)  # CRC and inflate errors surface here, as when the gateway copies it out
        members[path] = info
    return members


def _stream(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *digests: Any) -> None:
    """Read one entry in chunks (a small zip may inflate to gigabytes), feeding ``digests``."""
    with archive.open(info) as entry:
        while chunk := entry.read(64 * 1024):
            for digest in digests:
                digest.update(chunk)


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.create_system = 3  # Unix, so the mode bits below are the ones readers honour
    if name.endswith("/"):
        info.external_attr = (0o40755 << 16) | 0x10
        info.compress_type = zipfile.ZIP_STORED
    else:
        info.external_attr = 0o100644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _zip_bytes(files: Sequence[tuple[str, bytes]], manifest_bytes: bytes) -> bytes:
    """Files at their relative paths, then manifest.json at the root (the bundler's order).

    Parent directories get their own entries first: the gateway creates a directory
    only for a directory entry, so a nested file without one fails to extract.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        written: set[str] = set()
        for member, content in files:
            parts = member.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth]) + "/"
                if directory not in written:
                    archive.writestr(_zip_entry(directory), b"")
                    written.add(directory)
            if member not in written:  # a file listed twice counts twice in the checksum, is stored once
                archive.writestr(_zip_entry(member), content)
                written.add(member)
        archive.writestr(_zip_entry(MANIFEST_NAME), manifest_bytes)
    return buffer.getvalue()


def _content_id(manifest_bytes: bytes, files: Sequence[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256(manifest_bytes)
    for member, content in files:
        # Name and length delimit each file, so moving bytes between files changes the id.
        digest.update(b"\0" + member.encode("utf-8", "surrogatepass") + b"\0" + str(len(content)).encode() + b"\0")
        digest.update(content)
    return digest.hexdigest()[:12]


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temporary, 0o644)  # a bundle server must be able to read it
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise BundleError(f"{BUNDLE_DATA}: {path}: {exc.strerror or exc}") from None


def _pem_block(path: Path, allowed: Sequence[str]) -> bytes:
    """The first PEM block in the file, if it is one of the key types the gateway accepts."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: {exc.strerror or exc}") from None
    match = _PEM_BLOCK.search(raw)
    if match is None:
        raise BundleError(f"{path}: no PEM key found")
    kind = match.group(1).decode("ascii", errors="replace")
    if kind not in allowed:
        expected = " or ".join(f'"{name}"' for name in allowed)
        raise BundleError(f'{path}: unsupported key type "{kind}" (expected {expected})')
    return match.group(0)


def _check_signature(digest: bytes, signature: str, key: rsa.RSAPublicKey, key_path: Path) -> None:
    try:
        # Go's StdEncoding skips line breaks but is otherwise strict.
        raw = base64.b64decode(signature.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"signature is not valid base64: {exc}") from None
    try:
        key.verify(raw, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    except InvalidSignature:
        raise BundleError(f"{BAD_SIGNATURE} (not signed by the private key matching {key_path})") from None
