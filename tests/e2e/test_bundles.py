"""Bundles the real gateway accepts or refuses, built by us and by the gateway's own bundler."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from plugin import bundle
from plugin.devstack import gateway as gw
from plugin.devstack.procs import StackError
from plugin.devstack.stack import Stack

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "signing.pem", directory / "signing.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


class BundleGateway:
    """A second gateway on the session's Redis and plugin, serving one given bundle."""

    def __init__(self, stack: Stack, binary: Path, workdir: Path, bundle_zip: Path, public_key: Path | None) -> None:
        assert stack.upstream is not None and stack.redis is not None
        bundles = workdir / "bundles"
        bundles.mkdir(parents=True)
        shutil.copy(bundle_zip, bundles / bundle_zip.name)
        self.server = gw.BundleServer(bundles).start()
        api = gw.plugin_api(stack.upstream.url, stack.config_data(), bundle=bundle_zip.name)
        self.gateway = gw.Gateway(binary, workdir / "gateway", redis_port=stack.redis.port,
                                  grpc_server=stack.plugin_address, bundle_base_url=self.server.url,
                                  public_key_path=public_key, apis=[api], policies=gw.default_policies())

    def start(self) -> bool:
        """True when the API loaded; False when the gateway refused the bundle."""
        try:
            self.gateway.start(timeout=8)
            return True
        except StackError:
            return False

    def stop(self) -> None:
        self.gateway.stop()
        self.server.stop()


@pytest.fixture()
def serve_bundle(plugin_stack: Stack, gateway_binary: Path, tmp_path: Path) -> Iterator:
    started: list[BundleGateway] = []

    def serve(bundle_zip: Path, public_key: Path | None) -> BundleGateway:
        instance = BundleGateway(plugin_stack, gateway_binary, tmp_path / f"gw{len(started)}", bundle_zip, public_key)
        started.append(instance)
        return instance

    yield serve
    for instance in started:
        instance.stop()


def works(instance: BundleGateway, stack: Stack) -> bool:
    result = instance.gateway.get("/auth0-plugin/get", headers={"Authorization": "Bearer " + stack.token()})
    return result.status == 200


def test_unsigned_bundle_loads_without_public_key_path(serve_bundle, plugin_stack, tmp_path):
    unsigned = bundle.build(ROOT / "manifest.json", tmp_path / "unsigned.zip")
    instance = serve_bundle(unsigned, None)
    assert instance.start()
    assert works(instance, plugin_stack)


def test_signed_bundle_loads_with_public_key_path(serve_bundle, plugin_stack, keys, tmp_path):
    signed = bundle.build(ROOT / "manifest.json", tmp_path / "signed.zip", key_path=keys[0])
    instance = serve_bundle(signed, keys[1])
    assert instance.start()
    assert works(instance, plugin_stack)


def test_unsigned_bundle_is_refused_when_public_key_path_is_set(serve_bundle, keys, tmp_path):
    unsigned = bundle.build(ROOT / "manifest.json", tmp_path / "unsigned2.zip")
    instance = serve_bundle(unsigned, keys[1])
    assert not instance.start()
    assert "Bundle isn't signed" in instance.gateway.log_text()


def rewrite_zip(source: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as out:
        for item in original.infolist():
            out.writestr(item, edit(item.filename, original.read(item.filename)))
    return target


def test_bundle_with_a_forged_signature_is_refused(serve_bundle, keys, tmp_path):
    signed = bundle.build(ROOT / "manifest.json", tmp_path / "signed2.zip", key_path=keys[0])

    def forge(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["signature"] = base64.b64encode(b"\x01" * 256).decode()
        return json.dumps(manifest).encode()

    instance = serve_bundle(rewrite_zip(signed, tmp_path / "forged.zip", forge), keys[1])
    assert not instance.start()
    assert "verification error" in instance.gateway.log_text()


def test_bundle_with_a_tampered_file_is_refused(serve_bundle, keys, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "hooks.txt").write_text("the file the signature covers\n")
    manifest = json.loads((ROOT / "manifest.json").read_text())
    manifest["file_list"] = ["hooks.txt"]
    (source / "manifest.json").write_text(json.dumps(manifest))
    signed = bundle.build(source / "manifest.json", tmp_path / "with-file.zip", key_path=keys[0])
    tampered = rewrite_zip(signed, tmp_path / "tampered.zip",
                           lambda name, data: b"changed\n" if name == "hooks.txt" else data)
    instance = serve_bundle(tampered, keys[1])
    assert not instance.start()
    assert "invalid checksum" in instance.gateway.log_text()


def test_our_bundle_and_the_gateway_bundler_output_agree_and_cross_verify(serve_bundle, plugin_stack, keys,
                                                                           gateway_binary, tmp_path):
    ours = bundle.build(ROOT / "manifest.json", tmp_path / "ours.zip", key_path=keys[0])
    work = tmp_path / "tyk-bundler"
    work.mkdir()
    shutil.copy(ROOT / "manifest.json", work / "manifest.json")
    subprocess.run([str(gateway_binary), "bundle", "build", "-m", "manifest.json", "-k", str(keys[0]),
                    "-o", "theirs.zip"], cwd=work, check=True, capture_output=True, timeout=60)
    theirs = work / "theirs.zip"
    ours_manifest = json.loads(zipfile.ZipFile(ours).read("manifest.json"))
    theirs_manifest = json.loads(zipfile.ZipFile(theirs).read("manifest.json"))
    assert ours_manifest["checksum"] == theirs_manifest["checksum"]
    assert ours_manifest["signature"] == theirs_manifest["signature"]  # PKCS#1 v1.5 is deterministic
    bundle.verify(theirs, keys[1])  # ours accepts theirs
    for zip_path in (ours, theirs):  # the gateway accepts both
        instance = serve_bundle(zip_path, keys[1])
        assert instance.start(), zip_path.name
        assert works(instance, plugin_stack)
