"""Plugin bundles: what the gateway's bundler writes and what its loader accepts.

Keys are generated per test session; no private key is stored in the repository.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from plugin import bundle
from plugin.bundle import BundleError, Manifest

REPO_ROOT = Path(__file__).resolve().parents[2]

AUTH_ONLY = {"driver": "grpc", "auth_check": {"name": "Auth0JWTAuthCheck"}}


# --------------------------------------------------------------------------- helpers


def write_project(root: Path, files: Mapping[str, bytes] | None = None,
                  custom_middleware: Mapping[str, Any] | None = None, **extra: Any) -> Path:
    """A manifest (listing ``files`` in order) and its files under ``root``; returns the manifest path."""
    files = files or {}
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    document = {"file_list": list(files), "custom_middleware": dict(custom_middleware or AUTH_ONLY), **extra}
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(document))
    return manifest


def zip_manifest(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("manifest.json"))


def rewrite_zip(path: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Rewrite the zip in place; ``change`` returns new content, or None to drop the entry."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries:
            new = change(name, content)
            if new is not None:
                archive.writestr(name, new)


def set_manifest_field(path: Path, key: str, value: Any) -> None:
    def change(name: str, content: bytes) -> bytes:
        if name != "manifest.json":
            return content
        document = json.loads(content)
        document[key] = value
        return json.dumps(document).encode()

    rewrite_zip(path, change)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tyk-auth0-plugin")
    bundle.add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: Any, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def public_pem(key: Any, fmt: serialization.PublicFormat = serialization.PublicFormat.SubjectPublicKeyInfo) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


@pytest.fixture
def key_files(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "bundle.pem", tmp_path / "keys" / "bundle.pub"
    private.parent.mkdir()
    private.write_bytes(private_pem(rsa_key))
    public.write_bytes(public_pem(rsa_key))
    return private, public


# --------------------------------------------------------------------------- checksum


def test_checksum_is_md5_hex_of_listed_files_concatenated_in_order(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"b.py": b"listed first", "a.py": b" then second"})

    built = bundle.build(manifest, tmp_path / "out.zip")

    assert zip_manifest(built)["checksum"] == hashlib.md5(b"listed first then second").hexdigest()


def test_checksum_of_empty_file_list_is_md5_of_no_bytes(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "out.zip")

    assert zip_manifest(built)["checksum"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert bundle.checksum(b"") == "d41d8cd98f00b204e9800998ecf8427e"


def test_a_file_listed_twice_counts_twice_in_the_checksum(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_bytes(b"x")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"file_list": ["a.py", "./a.py"], "custom_middleware": AUTH_ONLY}))

    built = bundle.build(manifest, tmp_path / "out.zip")

    assert zip_manifest(built)["checksum"] == hashlib.md5(b"xx").hexdigest()
    bundle.verify(built)


# --------------------------------------------------------------------------- manifest JSON


def test_manifest_is_written_like_go_json_marshal_with_every_field_in_struct_order() -> None:
    manifest = Manifest.from_json(json.dumps({"custom_middleware": AUTH_ONLY, "file_list": []}))

    assert manifest.to_json() == (
        b'{"file_list":[],"custom_middleware":{"pre":null,"post":null,"post_key_auth":null,'
        b'"auth_check":{"disabled":false,"name":"Auth0JWTAuthCheck","path":"","require_session":false,'
        b'"raw_body_only":false},"response":null,"driver":"grpc","id_extractor":{"disabled":false,'
        b'"extract_from":"","extract_with":"","extractor_config":null}},"checksum":"","signature":""}'
    )


def test_empty_hook_list_stays_an_empty_array_while_absent_one_is_null() -> None:
    written = json.loads(Manifest.from_json('{"custom_middleware": {"pre": [], "post": null}}').to_json())

    assert written["custom_middleware"]["pre"] == []
    assert written["custom_middleware"]["post"] is None
    assert written["custom_middleware"]["response"] is None


def test_extractor_config_keys_are_sorted_and_numbers_written_as_go_float64() -> None:
    raw = '{"custom_middleware": {"id_extractor": {"extractor_config": {"z": 1.0, "a": [1e21, 1e-7, 0.5, 100]}}}}'

    assert b'"extractor_config":{"a":[1e+21,1e-7,0.5,100],"z":1}' in Manifest.from_json(raw).to_json()


def test_html_characters_are_escaped_as_go_escapes_them() -> None:
    raw = '{"custom_middleware": {"auth_check": {"name": "a<b>&c"}}}'

    assert b'"name":"a\\u003cb\\u003e\\u0026c"' in Manifest.from_json(raw).to_json()


def test_manifest_keys_match_case_insensitively_like_go() -> None:
    manifest = Manifest.from_json('{"Custom_Middleware": {"DRIVER": "grpc", "Auth_Check": {"Name": "A"}}}')

    assert manifest.custom_middleware.driver == "grpc"
    assert manifest.custom_middleware.auth_check.name == "A"


def test_unknown_manifest_keys_are_dropped_like_go() -> None:
    manifest = Manifest.from_json('{"custom_middleware": {"driver": "grpc", "traffic_logs": {"name": "T"}}}')

    assert b"traffic_logs" not in manifest.to_json()


def test_a_field_of_the_wrong_json_type_is_refused_naming_the_field() -> None:
    with pytest.raises(BundleError, match=r"custom_middleware\.auth_check\.name must be a string, not number"):
        Manifest.from_json('{"custom_middleware": {"auth_check": {"name": 5}}}')


def test_manifest_that_is_not_json_is_refused() -> None:
    with pytest.raises(BundleError, match="not valid JSON"):
        Manifest.from_json("{file_list: []")


# --------------------------------------------------------------------------- validation (the bundler's refusals)


def test_refuses_a_listed_file_that_does_not_exist(tmp_path: Path) -> None:
    manifest = write_project(tmp_path)
    manifest.write_text(json.dumps({"file_list": ["missing.py"], "custom_middleware": AUTH_ONLY}))

    with pytest.raises(BundleError) as refused:
        bundle.build(manifest, tmp_path / "out.zip")
    assert str(refused.value) == "Referencing a nonexistent file: missing.py"


def test_refuses_a_manifest_without_hooks(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, custom_middleware={"driver": "grpc"})

    with pytest.raises(BundleError) as refused:
        bundle.build(manifest, tmp_path / "out.zip")
    assert str(refused.value) == "No hooks defined"


def test_refuses_a_manifest_without_driver(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, custom_middleware={"auth_check": {"name": "Auth"}})

    with pytest.raises(BundleError) as refused:
        bundle.build(manifest, tmp_path / "out.zip")
    assert str(refused.value) == "No driver specified"


def test_missing_files_are_reported_before_missing_hooks_and_driver(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"file_list": ["gone.py"], "custom_middleware": {}}))

    with pytest.raises(BundleError, match="^Referencing a nonexistent file: gone.py$"):
        bundle.build(manifest, tmp_path / "out.zip")


def test_missing_hooks_are_reported_before_missing_driver() -> None:
    with pytest.raises(BundleError, match="^No hooks defined$"):
        Manifest().validate(None)


def test_a_named_auth_check_alone_is_enough_of_a_hook() -> None:
    Manifest.from_json(json.dumps({"custom_middleware": AUTH_ONLY})).validate(None)


def test_an_auth_check_without_a_name_is_not_a_hook() -> None:
    with pytest.raises(BundleError, match="^No hooks defined$"):
        Manifest.from_json('{"custom_middleware": {"driver": "grpc", "auth_check": {"path": "x"}}}').validate(None)


@pytest.mark.parametrize("hook_list", ["pre", "post", "post_key_auth", "response"])
def test_any_non_empty_hook_list_is_enough_of_a_hook(hook_list: str) -> None:
    Manifest.from_json(json.dumps({"custom_middleware": {"driver": "grpc", hook_list: [{"name": "H"}]}})).validate(None)


def test_an_unreadable_manifest_is_refused_with_the_bundlers_message(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="^Couldn't load manifest file"):
        bundle.build(tmp_path / "nope.json", tmp_path / "out.zip")


@pytest.mark.parametrize("entry", ["../outside.py", "/etc/hostname", "lib/../../outside.py", "", "..hidden.py"])
def test_file_list_paths_that_leave_the_bundle_are_refused(tmp_path: Path, entry: str) -> None:
    (tmp_path / "outside.py").write_bytes(b"x")
    project = tmp_path / "project"
    project.mkdir()
    manifest = project / "manifest.json"
    manifest.write_text(json.dumps({"file_list": [entry], "custom_middleware": AUTH_ONLY}))

    with pytest.raises(BundleError, match="relative path inside the bundle"):
        bundle.build(manifest, tmp_path / "out.zip")


def test_file_list_may_not_list_manifest_json_itself(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"file_list": ["manifest.json"], "custom_middleware": AUTH_ONLY}))

    with pytest.raises(BundleError, match="must not list manifest.json"):
        bundle.build(manifest, tmp_path / "out.zip")


def test_repository_manifest_passes_validation() -> None:
    manifest = Manifest.load(REPO_ROOT / "manifest.json")

    manifest.validate(REPO_ROOT)
    assert manifest.custom_middleware.driver == "grpc"
    assert manifest.custom_middleware.auth_check.name


def test_repository_manifest_builds_a_bundle_that_verifies(tmp_path: Path) -> None:
    built = bundle.build(REPO_ROOT / "manifest.json", tmp_path / "bundle.zip")

    assert bundle.verify(built).checksum == "d41d8cd98f00b204e9800998ecf8427e"


# --------------------------------------------------------------------------- the zip


def test_zip_holds_listed_files_at_their_relative_paths_and_manifest_at_root(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"a.py": b"A", "lib/sub/b.py": b"B"})

    built = bundle.build(manifest, tmp_path / "out" / "bundle.zip")

    with zipfile.ZipFile(built) as archive:
        assert archive.namelist() == ["a.py", "lib/", "lib/sub/", "lib/sub/b.py", "manifest.json"]
        assert archive.read("lib/sub/b.py") == b"B"


def test_nested_files_get_directory_entries_so_the_gateway_can_extract_them(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path, {"lib/b.py": b"B"}), tmp_path / "out.zip")

    with zipfile.ZipFile(built) as archive:
        assert archive.getinfo("lib/").is_dir()
        assert archive.namelist().index("lib/") < archive.namelist().index("lib/b.py")


def test_file_list_resolves_against_the_manifest_directory_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    manifest = write_project(project, {"a.py": b"A"})
    monkeypatch.chdir(tmp_path)

    built = bundle.build(manifest, Path("out.zip"))

    assert bundle.verify(built).file_list == ("a.py",)


def test_same_inputs_build_byte_identical_bundles(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    manifest = write_project(tmp_path, {"a.py": b"A"})

    first = bundle.build(manifest, tmp_path / "one.zip", key_path=key_files[0]).read_bytes()
    second = bundle.build(manifest, tmp_path / "two.zip", key_path=key_files[0]).read_bytes()

    assert first == second


def test_unsigned_build_drops_a_signature_left_in_the_source_manifest(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, signature="c3RhbGU=", checksum="stale")

    written = zip_manifest(bundle.build(manifest, tmp_path / "out.zip"))

    assert written["signature"] == ""
    assert written["checksum"] == "d41d8cd98f00b204e9800998ecf8427e"


# --------------------------------------------------------------------------- signing


def test_signature_is_pkcs1v15_sha256_over_the_listed_files_and_verifies_with_the_public_key(
    tmp_path: Path, key_files: tuple[Path, Path], rsa_key: rsa.RSAPrivateKey
) -> None:
    manifest = write_project(tmp_path, {"a.py": b"hello ", "b.py": b"world"})

    built = bundle.build(manifest, tmp_path / "out.zip", key_path=key_files[0])

    signature = base64.b64decode(zip_manifest(built)["signature"], validate=True)
    rsa_key.public_key().verify(signature, b"hello world", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize(
    ("fmt", "pem_type"),
    [
        (serialization.PrivateFormat.TraditionalOpenSSL, b"RSA PRIVATE KEY"),
        (serialization.PrivateFormat.PKCS8, b"PRIVATE KEY"),
    ],
    ids=["pkcs1", "pkcs8"],
)
def test_pkcs1_and_pkcs8_private_keys_both_sign(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat, pem_type: bytes
) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(private_pem(rsa_key, fmt))
    assert key.read_bytes().startswith(b"-----BEGIN " + pem_type + b"-----")
    public = tmp_path / "key.pub"
    public.write_bytes(public_pem(rsa_key))

    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip", key_path=key)

    assert bundle.verify(built, public).signature


@pytest.mark.parametrize(
    "fmt", [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1], ids=["pkix", "pkcs1"]
)
def test_pkix_and_pkcs1_public_keys_both_verify(
    tmp_path: Path, key_files: tuple[Path, Path], rsa_key: rsa.RSAPrivateKey, fmt: serialization.PublicFormat
) -> None:
    public = tmp_path / "other.pub"
    public.write_bytes(public_pem(rsa_key, fmt))
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip", key_path=key_files[0])

    bundle.verify(built, public)


def test_a_non_rsa_private_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "ec.pem"
    key.write_bytes(private_pem(ec.generate_private_key(ec.SECP256R1())))

    with pytest.raises(BundleError, match="only RSA keys can sign bundles"):
        bundle.build(write_project(tmp_path), tmp_path / "out.zip", key_path=key)


def test_an_encrypted_pkcs8_key_is_refused_as_an_unsupported_key_type(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    key = tmp_path / "enc.pem"
    key.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"secret")))

    with pytest.raises(BundleError, match='unsupported key type "ENCRYPTED PRIVATE KEY"'):
        bundle.build(write_project(tmp_path), tmp_path / "out.zip", key_path=key)


def test_a_public_key_given_as_the_signing_key_is_refused(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    with pytest.raises(BundleError, match='unsupported key type "PUBLIC KEY"'):
        bundle.build(write_project(tmp_path), tmp_path / "out.zip", key_path=key_files[1])


def test_a_key_file_without_pem_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not a key")

    with pytest.raises(BundleError, match="no PEM key found"):
        bundle.build(write_project(tmp_path), tmp_path / "out.zip", key_path=key)


# --------------------------------------------------------------------------- verify (the gateway's checks)


def test_verify_accepts_a_signed_bundle_and_returns_its_manifest(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip", key_path=key_files[0])

    manifest = bundle.verify(built, key_files[1])

    assert manifest.file_list == ("a.py",)
    assert manifest.custom_middleware.auth_check.name == "Auth0JWTAuthCheck"


def test_verify_accepts_an_unsigned_bundle_when_no_public_key_is_given(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip")

    assert bundle.verify(built).signature == ""


def test_verify_detects_a_tampered_file(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip")
    rewrite_zip(built, lambda name, content: b"evil" if name == "a.py" else content)

    with pytest.raises(BundleError, match="^invalid checksum"):
        bundle.verify(built)


def test_verify_detects_a_tampered_checksum(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip")
    set_manifest_field(built, "checksum", hashlib.md5(b"B").hexdigest())

    with pytest.raises(BundleError, match="^invalid checksum"):
        bundle.verify(built)


def test_verify_detects_a_file_changed_together_with_its_checksum_by_the_signature(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip", key_path=key_files[0])
    rewrite_zip(built, lambda name, content: b"B" if name == "a.py" else content)
    set_manifest_field(built, "checksum", hashlib.md5(b"B").hexdigest())

    with pytest.raises(BundleError, match="^crypto/rsa: verification error"):
        bundle.verify(built, key_files[1])


def test_verify_refuses_an_unsigned_bundle_when_a_public_key_is_given(
    tmp_path: Path, key_files: tuple[Path, Path]
) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "out.zip")

    with pytest.raises(BundleError) as refused:
        bundle.verify(built, key_files[1])
    assert str(refused.value) == "Bundle isn't signed"


def test_verify_refuses_a_bundle_signed_by_another_key(
    tmp_path: Path, key_files: tuple[Path, Path], other_rsa_key: rsa.RSAPrivateKey
) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(private_pem(other_rsa_key))
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip", key_path=other)

    with pytest.raises(BundleError, match="^crypto/rsa: verification error"):
        bundle.verify(built, key_files[1])


def test_verify_refuses_a_signature_that_is_not_base64(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "out.zip", key_path=key_files[0])
    set_manifest_field(built, "signature", "not base64!")

    with pytest.raises(BundleError, match="signature is not valid base64"):
        bundle.verify(built, key_files[1])


def test_verify_refuses_a_bundle_without_manifest_at_its_root(tmp_path: Path) -> None:
    built = tmp_path / "out.zip"
    with zipfile.ZipFile(built, "w") as archive:
        archive.writestr("sub/", b"")
        archive.writestr("sub/manifest.json", b"{}")

    with pytest.raises(BundleError, match="manifest.json not found at the root"):
        bundle.verify(built)


def test_build_refuses_text_after_the_manifest_object_as_the_bundlers_unmarshal_does(tmp_path: Path) -> None:
    manifest = write_project(tmp_path)
    manifest.write_text(manifest.read_text() + "\nnot json")

    with pytest.raises(BundleError, match="not valid JSON"):
        bundle.build(manifest, tmp_path / "out.zip")


def test_verify_reads_only_the_first_json_value_of_the_manifest_as_the_gateways_decoder_does(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip")
    rewrite_zip(built, lambda name, content: b" \n" + content + b"\n} trailing" if name == "manifest.json" else content)

    assert bundle.verify(built).file_list == ("a.py",)


def test_verify_refuses_a_listed_file_missing_from_the_zip(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path, {"a.py": b"A"}), tmp_path / "out.zip")
    rewrite_zip(built, lambda name, content: None if name == "a.py" else content)

    with pytest.raises(BundleError, match="^Referencing a nonexistent file: a.py"):
        bundle.verify(built)


def test_verify_refuses_an_entry_that_would_extract_outside_the_bundle(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "out.zip")
    with zipfile.ZipFile(built, "a") as archive:
        archive.writestr("../escape.py", b"x")

    with pytest.raises(BundleError, match="invalid file path in archive"):
        bundle.verify(built)


def _zip_of(path: Path, entries: list[tuple[str, bytes]], manifest_files: dict[str, bytes] | None = None) -> Path:
    """A bundle written entry by entry, as another zip tool might, with a manifest checksumming ``manifest_files``."""
    files = manifest_files or {}
    document = {"file_list": list(files), "custom_middleware": AUTH_ONLY,
                "checksum": hashlib.md5(b"".join(files.values())).hexdigest()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
        archive.writestr("manifest.json", json.dumps(document))
    return path


def test_verify_accepts_nested_files_after_their_folder_entries(tmp_path: Path) -> None:
    built = _zip_of(tmp_path / "b.zip", [("lib/", b""), ("lib/deep/", b""), ("lib/deep/b.py", b"B")],
                    {"lib/deep/b.py": b"B"})
    assert bundle.verify(built).file_list == ("lib/deep/b.py",)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(("entries", "problem"), [
    ([("lib/deep/b.py", b"B")], "no folder entry for lib/deep/"),  # as tyk bundle build writes nested files
    ([("lib/", b""), ("lib/b.py", b"B"), ("lib/", b"")], "already exists"),
    ([("./", b"")], "already exists"),
    ([("a/b/", b"")], "no folder entry for a/"),
    ([("..hidden.py", b"x")], "invalid file path in archive"),
    ([("lib/", b""), ("lib", b"x")], "is a directory"),
    ([("lib", b"x"), ("lib/", b"")], "already exists"),
    ([("x/..", b"x")], "is a directory"),
])
def test_verify_refuses_what_the_gateway_cannot_extract(tmp_path: Path, entries: list[tuple[str, bytes]],
                                                         problem: str) -> None:
    with pytest.raises(BundleError, match=re.escape(problem)):
        bundle.verify(_zip_of(tmp_path / "b.zip", entries))


def test_verify_keeps_a_backslash_in_a_name_as_the_gateway_does(tmp_path: Path) -> None:
    built = _zip_of(tmp_path / "b.zip", [("a\\b.py", b"B")], {"a\\b.py": b"B"})
    assert bundle.verify(built).file_list == ("a\\b.py",)


@pytest.mark.parametrize(("create_system", "external_attr"), [(3, (0o40755 << 16)), (0, 0x10)])
def test_verify_takes_a_folder_entry_by_its_mode_bits_as_go_does(tmp_path: Path, create_system: int,
                                                                  external_attr: int) -> None:
    folder = zipfile.ZipInfo("lib")
    folder.create_system, folder.external_attr = create_system, external_attr
    built = tmp_path / "b.zip"
    document = {"file_list": ["lib/a.py"], "custom_middleware": AUTH_ONLY, "checksum": hashlib.md5(b"A").hexdigest()}
    with zipfile.ZipFile(built, "w") as archive:
        archive.writestr(folder, b"")
        archive.writestr("lib/a.py", b"A")
        archive.writestr("manifest.json", json.dumps(document))
    assert bundle.verify(built).file_list == ("lib/a.py",)


def test_verify_reads_unlisted_entries_too(tmp_path: Path) -> None:
    built = _zip_of(tmp_path / "b.zip", [("README.txt", b"hello")])
    data = bytearray(built.read_bytes())
    offset = data.index(b"README.txt") + len("README.txt")  # local header name, then the stored bytes
    data[offset:offset + 2] = b"XX"
    built.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="not a readable zip archive"):
        bundle.verify(built)


def test_verify_refuses_compression_the_gateway_cannot_read(tmp_path: Path) -> None:
    built = tmp_path / "b.zip"
    document = {"file_list": [], "custom_middleware": AUTH_ONLY, "checksum": hashlib.md5(b"").hexdigest()}
    with zipfile.ZipFile(built, "w") as archive:
        archive.writestr("notes.txt", b"x" * 100, compress_type=zipfile.ZIP_BZIP2)
        archive.writestr("manifest.json", json.dumps(document))
    with pytest.raises(BundleError, match="unsupported compression algorithm"):
        bundle.verify(built)


def test_verify_matches_names_of_zips_without_the_utf8_flag_by_their_bytes(tmp_path: Path) -> None:
    built = tmp_path / "b.zip"
    document = {"file_list": ["\u00e9.py"], "custom_middleware": AUTH_ONLY, "checksum": hashlib.md5(b"E").hexdigest()}
    with zipfile.ZipFile(built, "w") as archive:
        archive.writestr("XX.py", b"E")  # renamed below to the UTF-8 bytes of "\u00e9.py", without the UTF-8 flag
        archive.writestr("manifest.json", json.dumps(document))
    built.write_bytes(built.read_bytes().replace(b"XX.py", "\u00e9.py".encode("utf-8")))
    assert bundle.verify(built).file_list == ("\u00e9.py",)


def test_verify_refuses_a_bundle_without_hooks(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "out.zip")
    set_manifest_field(built, "custom_middleware", {"driver": "grpc"})

    with pytest.raises(BundleError, match="^No hooks defined$"):
        bundle.verify(built)


def test_verify_refuses_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    not_zip = tmp_path / "bundle.zip"
    not_zip.write_bytes(b"<html>404</html>")

    with pytest.raises(BundleError, match="not a readable zip archive"):
        bundle.verify(not_zip)


# --------------------------------------------------------------------------- versioned names


def test_versioned_name_adds_a_12_hex_content_id_to_the_file_name(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "dist" / "bundle.zip", versioned=True)

    assert built.parent == tmp_path / "dist"
    assert re.fullmatch(r"bundle-[0-9a-f]{12}\.zip", built.name)
    assert built.is_file()


def test_versioned_name_is_stable_while_content_is_unchanged(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"a.py": b"A"})

    first = bundle.build(manifest, tmp_path / "bundle.zip", versioned=True)
    second = bundle.build(manifest, tmp_path / "bundle.zip", versioned=True)

    assert first == second


def test_versioned_name_changes_when_a_file_changes(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"a.py": b"A"})
    before = bundle.build(manifest, tmp_path / "bundle.zip", versioned=True)

    (tmp_path / "a.py").write_bytes(b"A2")
    after = bundle.build(manifest, tmp_path / "bundle.zip", versioned=True)

    assert before.name != after.name


def test_versioned_name_changes_when_the_manifest_changes(tmp_path: Path) -> None:
    before = bundle.build(write_project(tmp_path), tmp_path / "bundle.zip", versioned=True)

    manifest = write_project(tmp_path, custom_middleware={**AUTH_ONLY, "auth_check": {"name": "Renamed"}})
    after = bundle.build(manifest, tmp_path / "bundle.zip", versioned=True)

    assert before.name != after.name


def test_versioned_name_changes_when_bytes_move_between_files(tmp_path: Path) -> None:
    # Same concatenation, hence same checksum and manifest; the zip still differs.
    output = tmp_path / "bundle.zip"
    before = bundle.build(write_project(tmp_path, {"a.py": b"xy", "b.py": b""}), output, versioned=True)
    after = bundle.build(write_project(tmp_path, {"a.py": b"x", "b.py": b"y"}), output, versioned=True)

    assert before.name != after.name


# --------------------------------------------------------------------------- command line


def test_cli_build_without_key_warns_unsigned_on_stderr_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_project(tmp_path)

    code = run_cli("bundle", "build", "--manifest", str(manifest), "--output", str(tmp_path / "b.zip"))

    out, err = capsys.readouterr()
    assert code == 0
    assert "unsigned" in err
    assert out.strip() == str(tmp_path / "b.zip")


def test_cli_build_with_key_does_not_warn_unsigned(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_project(tmp_path)

    code = run_cli("bundle", "build", "-m", str(manifest), "-o", str(tmp_path / "b.zip"), "--key", str(key_files[0]))

    assert code == 0
    assert "unsigned" not in capsys.readouterr().err


def test_cli_build_prints_the_versioned_path_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_project(tmp_path)

    run_cli("bundle", "build", "-m", str(manifest), "-o", str(tmp_path / "b.zip"), "--versioned")

    written = Path(capsys.readouterr().out.strip())
    assert re.fullmatch(r"b-[0-9a-f]{12}\.zip", written.name)
    assert written.is_file()


def test_cli_build_uses_manifest_json_and_bundle_zip_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)

    assert run_cli("bundle", "build") == 0
    assert (tmp_path / "bundle" / "bundle.zip").is_file()


def test_cli_build_exits_1_with_the_refusal_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_project(tmp_path, custom_middleware={"driver": "grpc"})

    code = run_cli("bundle", "build", "-m", str(manifest), "-o", str(tmp_path / "b.zip"))

    assert code == 1
    assert "No hooks defined" in capsys.readouterr().err
    assert not (tmp_path / "b.zip").exists()


def test_cli_verify_exits_0_for_a_good_signed_bundle(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "b.zip", key_path=key_files[0])

    assert run_cli("bundle", "verify", str(built), "--public-key", str(key_files[1])) == 0
    assert "signature verified" in capsys.readouterr().out


def test_cli_verify_exits_1_with_the_refusal_on_stderr(
    tmp_path: Path, key_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "b.zip")

    assert run_cli("bundle", "verify", str(built), "--public-key", str(key_files[1])) == 1
    assert "Bundle isn't signed" in capsys.readouterr().err


def server_manifest(path: Path, auth_check: str, **slots: Any) -> Path:
    """A manifest the plugin server is given with --manifest."""
    path.write_text(json.dumps({"custom_middleware": {"driver": "grpc", "auth_check": {"name": auth_check}, **slots}}))
    return path


def renamed_bundle(tmp_path: Path, name: str = "Auth0JWTAuthCheckV2", **slots: Any) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    manifest = write_project(project, custom_middleware={**AUTH_ONLY, "auth_check": {"name": name}, **slots})
    return bundle.build(manifest, tmp_path / "b.zip")


def test_cli_verify_passes_a_bundle_whose_auth_check_one_of_the_server_manifests_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = renamed_bundle(tmp_path)
    old = server_manifest(tmp_path / "old.json", "Auth0JWTAuthCheck")
    new = server_manifest(tmp_path / "new.json", "Auth0JWTAuthCheckV2")

    assert run_cli("bundle", "verify", str(built), "--server-manifest", str(old), "--server-manifest", str(new)) == 0
    assert "hook names served by the server's manifests" in capsys.readouterr().out


def test_cli_verify_fails_a_bundle_whose_auth_check_the_server_does_not_serve_naming_both_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = renamed_bundle(tmp_path)
    served = server_manifest(tmp_path / "served.json", "Auth0JWTAuthCheck")

    assert run_cli("bundle", "verify", str(built), "--server-manifest", str(served)) == 1
    err = capsys.readouterr().err
    assert f"bundle verify: {built}: auth_check 'Auth0JWTAuthCheckV2' of bundle {built} is not served" in err
    assert f"the server's manifests ({served}) name the auth check 'Auth0JWTAuthCheck'" in err
    assert "403 Key not authorised" in err


def test_cli_verify_fails_a_bundle_hook_the_server_lists_in_another_slot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = renamed_bundle(tmp_path, name="Auth0JWTAuthCheck", pre=[{"name": "Stamp"}])
    served = server_manifest(tmp_path / "served.json", "Auth0JWTAuthCheck", post=[{"name": "Stamp"}])

    assert run_cli("bundle", "verify", str(built), "--server-manifest", str(served)) == 1
    assert f"hook 'Stamp' is a pre hook in bundle {built} but a post hook in manifest {served}" in capsys.readouterr().err


def test_cli_verify_fails_when_the_server_manifests_conflict_among_themselves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = renamed_bundle(tmp_path)
    old = server_manifest(tmp_path / "old.json", "Auth0JWTAuthCheck")
    new = server_manifest(tmp_path / "new.json", "Auth0JWTAuthCheckV2", pre=[{"name": "Auth0JWTAuthCheck"}])

    assert run_cli("bundle", "verify", str(built), "--server-manifest", str(old), "--server-manifest", str(new)) == 1
    assert "--server-manifest: the server refuses to start with these manifests: hook 'Auth0JWTAuthCheck'" in \
        capsys.readouterr().err


def test_cli_verify_without_server_manifests_checks_the_bundle_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = renamed_bundle(tmp_path)

    assert run_cli("bundle", "verify", str(built)) == 0
    assert "hook names" not in capsys.readouterr().out


def test_cli_bundle_requires_an_action() -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli("bundle")
    assert exited.value.code == 2



def test_a_lone_surrogate_escape_in_the_manifest_reads_as_the_replacement_character() -> None:
    manifest = bundle.Manifest.from_json('{"file_list": ["\\udcff.py"], "custom_middleware": '
                                         '{"driver": "grpc", "auth_check": {"name": "A\\ud800"}}}')
    assert manifest.file_list == ("\ufffd.py",)
    assert manifest.custom_middleware.auth_check.name == "A\ufffd"


def test_a_key_given_twice_decodes_into_the_same_field_as_in_go() -> None:
    merged = bundle.Manifest.from_json('{"custom_middleware": {"driver": "grpc"}, '
                                       '"custom_middleware": {"auth_check": {"name": "A"}}}')
    assert (merged.custom_middleware.driver, merged.custom_middleware.auth_check.name) == ("grpc", "A")
    kept = bundle.Manifest.from_json('{"custom_middleware": {"driver": "grpc", "auth_check": {"name": "A"}, '
                                     '"Driver": null}}')
    assert kept.custom_middleware.driver == "grpc"
    reset = bundle.Manifest.from_json('{"file_list": ["a.py"], "file_list": null, '
                                      '"custom_middleware": {"driver": "grpc", "auth_check": {"name": "A"}}}')
    assert reset.file_list is None


def test_keys_match_fields_with_go_case_folding_not_pythons() -> None:
    manifest = bundle.Manifest.from_json('{"custom_middleware": {"driver": "grpc", "auth_check": {"name": "A"}, '
                                         '"po\ufb06": [{"name": "P"}], "PRE": [{"name": "Q"}]}}')
    assert manifest.custom_middleware.post is None
    assert [h.name for h in manifest.custom_middleware.pre or ()] == ["Q"]


# --------------------------------------------------------------------------- what the plugin's server answers


@pytest.mark.parametrize("driver", ["python", "GRPC", "Grpc"])
def test_build_refuses_a_driver_serve_refuses(tmp_path: Path, driver: str) -> None:
    manifest = write_project(tmp_path, custom_middleware={**AUTH_ONLY, "driver": driver})
    with pytest.raises(BundleError, match="custom_middleware.driver is"):
        bundle.build(manifest, tmp_path / "b.zip")


def test_a_bundle_of_hooks_alone_builds_and_verifies_for_an_api_with_another_auth(tmp_path: Path) -> None:
    # The gateway runs Pre and Post coprocess hooks whatever auth the API uses, as `tyk bundle build` allows.
    manifest = write_project(tmp_path, custom_middleware={"driver": "grpc", "pre": [{"name": "P"}]})
    bundle.verify(bundle.build(manifest, tmp_path / "b.zip"))


def test_verify_refuses_a_driver_serve_refuses(tmp_path: Path) -> None:
    built = bundle.build(write_project(tmp_path), tmp_path / "b.zip")
    set_manifest_field(built, "custom_middleware", {**AUTH_ONLY, "driver": "python"})
    with pytest.raises(BundleError, match="custom_middleware.driver is 'python'"):
        bundle.verify(built)


RISKY_EXTRACTORS = [
    {"extract_from": "body", "extract_with": "value"},
    {"extract_from": "header", "extract_with": "regex", "extractor_config": {"header_name": "Authorization",
                                                                              "regex_expression": "[a-z]+"}},
    {"extract_from": "header", "extract_with": "xpath"},
]


@pytest.mark.parametrize("extractor", RISKY_EXTRACTORS)
def test_build_and_verify_warn_about_an_extractor_that_may_not_yield_the_whole_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extractor: dict[str, Any]
) -> None:
    manifest = write_project(tmp_path, custom_middleware={**AUTH_ONLY, "id_extractor": extractor})
    assert run_cli("bundle", "build", "--manifest", str(manifest), "--output", str(tmp_path / "b.zip")) == 0
    assert run_cli("bundle", "verify", str(tmp_path / "b.zip")) == 0
    err = capsys.readouterr().err
    assert "bundle build: warning: custom_middleware.id_extractor" in err
    assert f"bundle verify: {tmp_path / 'b.zip'}: warning: custom_middleware.id_extractor" in err


@pytest.mark.parametrize("extractor", [
    {"extract_from": "header", "extract_with": "value", "extractor_config": {"header_name": "Authorization"}},
    {"extract_from": "form", "extract_with": "value", "extractor_config": {"param_name": "access_token"}},
    {"disabled": True, "extract_from": "body", "extract_with": "regex"},
    {},
])
def test_no_warning_for_a_value_extractor_on_a_header_or_form_field_or_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extractor: dict[str, Any]
) -> None:
    manifest = write_project(tmp_path, custom_middleware={**AUTH_ONLY, "id_extractor": extractor})
    assert run_cli("bundle", "build", "--manifest", str(manifest), "--output", str(tmp_path / "b.zip")) == 0
    assert "warning" not in capsys.readouterr().err
