"""The server reads hook names from the bundle manifest with the same rules the bundle builder applies."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from plugin.bundle import BundleError, build
from plugin.manifest import BUILT_IN_MANIFEST, ManifestError, load_hook_names

REPO_MANIFEST = Path(__file__).resolve().parents[2] / "manifest.json"


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(document))
    return path


def middleware(**overrides: object) -> dict[str, object]:
    block: dict[str, object] = {"driver": "grpc", "auth_check": {"name": "Auth0Check"}}
    block.update(overrides)
    return {"custom_middleware": block}


def test_the_repository_manifest_names_the_auth_hook():
    assert load_hook_names(REPO_MANIFEST).auth_check


def test_hook_names_come_from_every_slot(tmp_path):
    path = write(tmp_path, middleware(pre=[{"name": "P"}], post_key_auth=[{"name": "K"}], response=[{"name": "R"}]))
    names = load_hook_names(path)
    assert (names.auth_check, names.pre, names.post_key_auth, names.response) == ("Auth0Check", ("P",), ("K",), ("R",))


def test_keys_are_matched_case_insensitively_as_go_does(tmp_path):
    path = write(tmp_path, {"Custom_Middleware": {"Driver": "grpc", "Auth_Check": {"Name": "Auth0Check"}}})
    assert load_hook_names(path).auth_check == "Auth0Check"


@pytest.mark.parametrize("driver", ["", "python", "goplugin"])
def test_a_driver_other_than_grpc_is_refused(tmp_path, driver):
    with pytest.raises(ManifestError, match="custom_middleware.driver"):
        load_hook_names(write(tmp_path, middleware(driver=driver)))


def test_a_hook_slot_that_is_not_a_list_is_refused(tmp_path):
    with pytest.raises(ManifestError):
        load_hook_names(write(tmp_path, middleware(post_key_auth={"name": "K"})))


def test_a_manifest_without_an_auth_check_name_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="auth_check.name"):
        load_hook_names(write(tmp_path, middleware(auth_check={})))


def test_a_missing_manifest_says_how_to_give_one(tmp_path):
    with pytest.raises(ManifestError, match="--manifest"):
        load_hook_names(tmp_path / "nowhere.json")


def test_the_built_in_manifest_is_the_repository_manifest():
    assert json.loads(REPO_MANIFEST.read_text()) == BUILT_IN_MANIFEST


def test_the_default_manifest_falls_back_to_the_built_in_one_when_absent(tmp_path, monkeypatch):
    monkeypatch.setattr("plugin.manifest.DEFAULT_MANIFEST", tmp_path / "manifest.json")
    assert load_hook_names(tmp_path / "manifest.json").auth_check == "Auth0JWTAuthCheck"


def test_a_manifest_named_explicitly_has_no_fallback(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        load_hook_names(tmp_path / "manifest.json")


@pytest.mark.parametrize("driver", ["GRPC", "python"])
def test_serve_and_the_bundle_builder_refuse_the_same_driver(tmp_path, driver):
    path = write(tmp_path, middleware(driver=driver))
    with pytest.raises(ManifestError) as served:
        load_hook_names(path)
    with pytest.raises(BundleError) as built:
        build(path, tmp_path / "b.zip")
    assert str(served.value).endswith(str(built.value))


def test_serve_warns_about_an_extractor_that_may_not_yield_the_whole_token(tmp_path, caplog):
    path = write(tmp_path, middleware(id_extractor={"extract_from": "body", "extract_with": "value"}))
    with caplog.at_level(logging.WARNING, logger="plugin.manifest"):
        assert load_hook_names(path).auth_check == "Auth0Check"
    assert "custom_middleware.id_extractor extracts with 'value' from 'body'" in caplog.text


def test_serve_is_silent_about_the_repository_manifests_extractor(caplog):
    with caplog.at_level(logging.WARNING, logger="plugin.manifest"):
        load_hook_names(REPO_MANIFEST)
    assert caplog.text == ""
