"""The server reads hook names from the bundle manifests with the same rules the bundle builder applies,
and serves several manifests' names only where each name keeps one meaning."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from plugin.bundle import BundleError, build
from plugin.manifest import (
    BUILT_IN_MANIFEST,
    DEFAULT_MANIFEST,
    HookNames,
    ManifestError,
    load_hook_names,
    load_served_hooks,
    manifest_path,
    manifest_paths,
    unserved,
)

REPO_MANIFEST = Path(__file__).resolve().parents[2] / "manifest.json"


def write(tmp_path: Path, document: object, name: str = "manifest.json") -> Path:
    path = tmp_path / name
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


# -- which manifests are served ----------------------------------------------------------------------


def test_every_manifest_flag_is_served_in_the_order_given():
    assert manifest_paths(["old.json", "new.json"], environ={}) == (Path("old.json"), Path("new.json"))


def test_the_variable_lists_manifests_separated_as_path_lists_directories():
    environ = {"TYK_AUTH0_MANIFEST": f"/etc/a.json{os.pathsep}/etc/b.json"}
    assert manifest_paths(None, environ) == (Path("/etc/a.json"), Path("/etc/b.json"))


def test_blanks_and_empty_entries_in_the_variable_are_ignored():
    environ = {"TYK_AUTH0_MANIFEST": f" /etc/a.json {os.pathsep}{os.pathsep}/etc/b.json{os.pathsep}"}
    assert manifest_paths(None, environ) == (Path("/etc/a.json"), Path("/etc/b.json"))


def test_flags_replace_the_variable():
    assert manifest_paths(["flag.json"], {"TYK_AUTH0_MANIFEST": "env.json"}) == (Path("flag.json"),)


def test_without_flags_or_variable_the_repository_manifest_is_served():
    assert manifest_paths(None, {}) == (DEFAULT_MANIFEST,)
    assert manifest_paths(None, {"TYK_AUTH0_MANIFEST": "  "}) == (DEFAULT_MANIFEST,)


def test_a_manifest_given_twice_is_served_once():
    assert manifest_paths(["a.json", "b.json", "a.json"], {}) == (Path("a.json"), Path("b.json"))


def test_a_command_writing_one_manifest_refuses_a_variable_listing_several():
    with pytest.raises(ManifestError, match="lists 2 manifests .*--manifest"):
        manifest_path(None, {"TYK_AUTH0_MANIFEST": f"a.json{os.pathsep}b.json"})
    assert manifest_path("chosen.json", {"TYK_AUTH0_MANIFEST": f"a.json{os.pathsep}b.json"}) == Path("chosen.json")


# -- several manifests served together ----------------------------------------------------------------


def test_the_auth_check_names_of_every_manifest_are_served(tmp_path):
    old = write(tmp_path, middleware(), "old.json")
    new = write(tmp_path, middleware(auth_check={"name": "Auth0CheckV2"}), "new.json")
    served = load_served_hooks([old, new])
    assert served.auth_checks == ("Auth0Check", "Auth0CheckV2")
    assert served.manifests == (old, new)


def test_custom_hooks_of_every_manifest_are_served_once_each(tmp_path):
    old = write(tmp_path, middleware(pre=[{"name": "AddRequestId"}]), "old.json")
    new = write(tmp_path, middleware(auth_check={"name": "V2"}, pre=[{"name": "AddRequestId"}],
                                     response=[{"name": "HideServer"}]), "new.json")
    served = load_served_hooks([old, new])
    assert (served.pre, served.response) == (("AddRequestId",), ("HideServer",))


def test_two_manifests_naming_the_same_auth_check_serve_it_once(tmp_path):
    served = load_served_hooks([write(tmp_path, middleware(), "a.json"), write(tmp_path, middleware(), "b.json")])
    assert served.auth_checks == ("Auth0Check",)


def test_an_auth_check_name_that_another_manifest_lists_as_a_pre_hook_is_refused_naming_both_files(tmp_path):
    old = write(tmp_path, middleware(), "old.json")
    new = write(tmp_path, middleware(auth_check={"name": "V2"}, pre=[{"name": "Auth0Check"}]), "new.json")
    with pytest.raises(ManifestError) as refused:
        load_served_hooks([old, new])
    assert str(refused.value).startswith(f"hook 'Auth0Check' is the auth_check in manifest {old} but a pre hook in "
                                         f"manifest {new}: ")


def test_a_custom_hook_listed_in_two_slots_by_two_manifests_is_refused(tmp_path):
    first = write(tmp_path, middleware(pre=[{"name": "Stamp"}]), "a.json")
    second = write(tmp_path, middleware(post=[{"name": "Stamp"}]), "b.json")
    with pytest.raises(ManifestError, match=f"hook 'Stamp' is a pre hook in manifest {first} but a post hook in "
                                            f"manifest {second}"):
        load_served_hooks([first, second])


def test_one_manifest_listing_a_name_in_two_slots_is_refused_naming_it_once(tmp_path):
    path = write(tmp_path, middleware(post_key_auth=[{"name": "Auth0Check"}]))
    with pytest.raises(ManifestError, match=f"hook 'Auth0Check' is both the auth_check and a post_key_auth hook in "
                                            f"manifest {path}: "):
        load_served_hooks([path])


def test_one_unreadable_manifest_among_several_is_refused_by_name(tmp_path):
    with pytest.raises(ManifestError, match="nowhere.json: no such file"):
        load_served_hooks([write(tmp_path, middleware()), tmp_path / "nowhere.json"])


# -- a bundle's hooks against the served ones -----------------------------------------------------------


def test_a_bundle_whose_auth_check_is_served_has_no_problem(tmp_path):
    served = load_served_hooks([write(tmp_path, middleware(), "a.json"),
                                write(tmp_path, middleware(auth_check={"name": "V2"}), "b.json")])
    assert unserved(HookNames(auth_check="V2", pre=("Anything",)), served, "bundle b.zip") == []


def test_a_bundle_auth_check_the_server_does_not_serve_is_named_with_the_served_ones(tmp_path):
    path = write(tmp_path, middleware())
    problems = unserved(HookNames(auth_check="Renamed"), load_served_hooks([path]), "bundle b.zip")
    assert problems == [f"auth_check 'Renamed' of bundle b.zip is not served: the server's manifests ({path}) name "
                        "the auth check 'Auth0Check', so every auth call for it gets 403 Key not authorised"]


def test_a_bundle_hook_the_servers_manifests_give_another_slot_is_named(tmp_path):
    path = write(tmp_path, middleware(pre=[{"name": "Stamp"}]))
    problems = unserved(HookNames(auth_check="Auth0Check", post=("Stamp",)), load_served_hooks([path]), "bundle b.zip")
    assert problems == [f"hook 'Stamp' is a post hook in bundle b.zip but a pre hook in manifest {path}: the gateway "
                        "calls a hook by its name, so one name must name one hook; rename one of them"]
