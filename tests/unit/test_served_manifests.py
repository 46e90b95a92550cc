"""The server serves the hook names of several manifests at once (the old and the new bundle's while
gateways move to a renamed auth hook), refuses names with two meanings, and re-reads them all on SIGHUP."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from plugin import server as serverlib
from plugin.coprocess import HookType, Object
from plugin.hooks import HookRouter
from plugin.server import ServerSettings, build_app, reload, serve, worker_argv
from tests.support.objects import auth_object

OLD, NEW = "Auth0JWTAuthCheck", "Auth0JWTAuthCheckV2"


@pytest.fixture(autouse=True)
def no_server_wide_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TYK_AUTH0_MANIFEST", "AUTH0_DOMAIN", "AUTH0_JWT_SOURCE", "AUTH0_AUDIENCE", "AUTH0_ISSUER"):
        monkeypatch.delenv(name, raising=False)


def write_manifest(path: Path, auth_check: str, **slots: list[str]) -> Path:
    middleware: dict[str, object] = {"driver": "grpc", "auth_check": {"name": auth_check}}
    middleware.update({slot: [{"name": name} for name in names] for slot, names in slots.items()})
    path.write_text(json.dumps({"file_list": [], "custom_middleware": middleware}))
    return path


def checked_by(router: HookRouter, hook_name: str) -> tuple[bool, int]:
    """Whether an auth call for ``hook_name`` reached the auth check, and the reply's status (-1: granted)."""
    reached: list[Object] = []
    router._authenticate = reached.append  # the check itself is not what is under test
    reply = router.dispatch(auth_object("Bearer x", hook_name=hook_name))
    return bool(reached), reply.request.return_overrides.response_code


# -- routing ---------------------------------------------------------------------------------------


def test_an_auth_call_for_either_served_name_reaches_the_auth_check():
    router = HookRouter((OLD, NEW), lambda obj: None)
    assert checked_by(router, OLD) == (True, -1)
    assert checked_by(router, NEW) == (True, -1)


def test_an_auth_call_for_a_name_no_manifest_gives_is_refused_as_an_unknown_hook():
    router = HookRouter((OLD, NEW), lambda obj: None)
    reached, status = checked_by(router, "SomethingElse")
    assert (reached, status) == (False, 403)


def test_a_router_given_one_name_serves_that_name_only():
    router = HookRouter(OLD, lambda obj: None)
    assert router.auth_hooks == frozenset({OLD})
    assert checked_by(router, OLD[:-1]) == (False, 403)


# -- start-up --------------------------------------------------------------------------------------


def test_the_server_serves_the_auth_check_of_every_manifest_given(tmp_path):
    old = write_manifest(tmp_path / "old.json", OLD)
    new = write_manifest(tmp_path / "new.json", NEW)
    app = build_app(ServerSettings(manifests=(str(old), str(new))))
    assert app.router.auth_hooks == frozenset({OLD, NEW})
    assert checked_by(app.router, OLD)[0] and checked_by(app.router, NEW)[0]


def test_the_variable_lists_the_manifests_when_no_flag_is_given(tmp_path, monkeypatch):
    old = write_manifest(tmp_path / "old.json", OLD)
    new = write_manifest(tmp_path / "new.json", NEW)
    monkeypatch.setenv("TYK_AUTH0_MANIFEST", f"{old}{serverlib.MANIFEST_SEPARATOR}{new}")
    assert build_app(ServerSettings()).router.auth_hooks == frozenset({OLD, NEW})


def test_conflicting_manifests_stop_the_start_naming_the_files_and_the_hook(tmp_path, caplog):
    old = write_manifest(tmp_path / "old.json", OLD)
    new = write_manifest(tmp_path / "new.json", NEW, pre=[OLD])
    with caplog.at_level(logging.ERROR, logger="plugin.server"):
        code = serve(ServerSettings(listen="tcp://127.0.0.1:0", manifests=(str(old), str(new))))
    assert code == 2
    assert f"hook '{OLD}' is the auth_check in manifest {old} but a pre hook in manifest {new}" in caplog.text


def test_the_start_up_line_names_every_auth_hook_served():
    assert serverlib.auth_hooks_text(frozenset({NEW, OLD})) == f"auth hooks '{OLD}', '{NEW}'"
    assert serverlib.auth_hooks_text(frozenset({OLD})) == f"auth hook '{OLD}'"


def test_hook_warnings_compare_the_loaded_hooks_with_every_manifest(tmp_path, caplog):
    hooks = tmp_path / "my_hooks.py"
    hooks.write_text("from plugin.extensions import Hooks\n\nhooks = Hooks()\n\n\n"
                     "@hooks.pre('Stamp')\ndef stamp(request, session, metadata, spec):\n    return request\n")
    old = write_manifest(tmp_path / "old.json", OLD)
    new = write_manifest(tmp_path / "new.json", NEW, pre=["Stamp"])
    with caplog.at_level(logging.WARNING, logger="plugin.server"):
        build_app(ServerSettings(manifests=(str(old),), hooks=(str(hooks),)))
    assert "hook 'Stamp' is not in the manifest" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="plugin.server"):
        build_app(ServerSettings(manifests=(str(old), str(new)), hooks=(str(hooks),)))
    assert "'Stamp'" not in caplog.text  # the second manifest lists it


# -- SIGHUP ----------------------------------------------------------------------------------------


def test_a_reload_rereads_every_manifest(tmp_path, caplog):
    old = write_manifest(tmp_path / "old.json", OLD)
    new = write_manifest(tmp_path / "new.json", NEW)
    settings = ServerSettings(manifests=(str(old), str(new)))
    app = build_app(settings)
    write_manifest(old, NEW)  # every gateway has moved: the old slot now holds the new manifest
    write_manifest(new, "Auth0JWTAuthCheckV3")
    with caplog.at_level(logging.INFO, logger="plugin.server"):
        reload(app, settings)
    assert app.router.auth_hooks == frozenset({NEW, "Auth0JWTAuthCheckV3"})
    assert checked_by(app.router, OLD) == (False, 403)
    assert f"reloaded: auth hooks '{NEW}', 'Auth0JWTAuthCheckV3'" in caplog.text


def test_a_reload_that_cannot_read_one_manifest_keeps_every_name_served(tmp_path, caplog):
    old = write_manifest(tmp_path / "old.json", OLD)
    new = write_manifest(tmp_path / "new.json", NEW)
    settings = ServerSettings(manifests=(str(old), str(new)))
    app = build_app(settings)
    write_manifest(old, "Elsewhere")
    new.unlink()
    with caplog.at_level(logging.ERROR, logger="plugin.server"):
        reload(app, settings)
    assert app.router.auth_hooks == frozenset({OLD, NEW})
    assert f"cannot read manifest {new}: no such file" in caplog.text
    assert f"keeping auth hooks '{OLD}', '{NEW}'" in caplog.text


def test_a_reload_onto_conflicting_manifests_keeps_every_name_served(tmp_path, caplog):
    old = write_manifest(tmp_path / "old.json", OLD)
    new = write_manifest(tmp_path / "new.json", NEW)
    settings = ServerSettings(manifests=(str(old), str(new)))
    app = build_app(settings)
    write_manifest(new, NEW, response=[OLD])
    with caplog.at_level(logging.ERROR, logger="plugin.server"):
        reload(app, settings)
    assert app.router.auth_hooks == frozenset({OLD, NEW})
    assert f"hook '{OLD}' is the auth_check in manifest {old} but a response hook in manifest {new}" in caplog.text


# -- the command line ------------------------------------------------------------------------------


def serve_args(*argv: str) -> argparse.Namespace:
    root = argparse.ArgumentParser()
    serverlib.add_cli(root.add_subparsers())
    return root.parse_args(["serve", *argv])


def test_the_manifest_flag_may_be_given_more_than_once():
    assert serve_args("--manifest", "old.json", "--manifest", "new.json").manifest == ["old.json", "new.json"]


def test_every_worker_is_started_with_every_manifest_given():
    argv = worker_argv(serve_args("--manifest", "old.json", "--manifest", "new.json", "--workers", "2"))
    flags = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--manifest"]
    assert flags == ["old.json", "new.json"]


@pytest.mark.parametrize("hook_type", [HookType.Pre, HookType.Response])
def test_custom_hook_calls_are_routed_by_name_whatever_the_manifests(hook_type):
    seen: list[str] = []
    router = HookRouter((OLD, NEW), lambda obj: None, hooks={"Stamp": lambda obj: seen.append(obj.hook_name)})
    router.dispatch(auth_object("Bearer x", hook_name="Stamp", hook_type=hook_type))
    assert seen == ["Stamp"]
