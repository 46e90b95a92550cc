"""Run the real Tyk gateway (file-based APIs and policies) against our Redis, IdP and plugin.

The gateway is configured the way the walkthrough ends up configuring it through the
Dashboard, minus the Dashboard: API definitions and policies are JSON files and the
plugin reaches the gateway as a bundle served over HTTP.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from plugin import bundle
from plugin.devstack.procs import (
    LOOPBACK,
    BackgroundHTTPServer,
    HTTPResult,
    ManagedProcess,
    StackError,
    free_port,
    http_request,
    wait_until,
)

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
REPO_ROOT = PACKAGE_DIR.parents[1]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-gateway.sh"
MANIFEST = REPO_ROOT / "manifest.json"

ORG_ID = "default"
NATIVE_API_ID = "auth0-native"
NATIVE_OAS_API_ID = "auth0-oas-native"  # created by tests (POST /tyk/apis/oas); its file must not end in -oas.json
PLUGIN_API_ID = "auth0-plugin"
PLUGIN_SUBJECT_API_ID = "auth0-plugin-subject"
PLUGIN_DPOP_API_ID = "auth0-plugin-dpop"  # the plugin with dpop: required (DPoP-bound tokens only)
KEYLESS_API_ID = "keyless"
DEFAULT_POLICY_ID = "auth0-policy"


# -- getting a gateway binary ------------------------------------------------------


def find_gateway_binary(*, show_progress: bool = False, timeout: float = 3600.0) -> Path:
    """Run scripts/build-gateway.sh (which honours TYK_GATEWAY_BIN and caches its build).

    Raises StackError carrying the script's own explanation when no binary can be had.
    ``show_progress`` lets a first, minutes-long build talk to the terminal.
    """
    env_bin = os.environ.get("TYK_GATEWAY_BIN")
    if not BUILD_SCRIPT.exists():
        if env_bin and os.access(env_bin, os.X_OK):
            return Path(env_bin)
        raise StackError(f"{BUILD_SCRIPT} not found and TYK_GATEWAY_BIN is not an executable")
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        detail = proc.stderr.strip() if proc.stderr else "see its output above"
        raise StackError(f"scripts/build-gateway.sh failed (exit {proc.returncode}):\n{detail}")
    return Path(lines[-1])


# -- API definitions and policies --------------------------------------------------


def _api(api_id: str, name: str, listen_path: str, target_url: str) -> dict[str, Any]:
    """The fields every classic file-based API here shares."""
    return {
        "api_id": api_id,
        "org_id": ORG_ID,
        "name": name,
        "active": True,
        "use_keyless": False,
        "proxy": {
            "listen_path": listen_path,
            "target_url": target_url,
            "strip_listen_path": True,
        },
        "version_data": {
            "not_versioned": True,
            "versions": {"Default": {"name": "Default", "use_extended_paths": True}},
        },
        "enable_context_vars": False,
        "do_not_track": True,
    }


def jwt_source_for(jwks_url: str) -> str:
    """How the Dashboard stores a JWKS URL: base64, which the gateway's JWKS cache needs."""
    return base64.b64encode(jwks_url.encode()).decode()


def native_jwt_api(
    target_url: str,
    jwks_url: str,
    *,
    api_id: str = NATIVE_API_ID,
    listen_path: str = f"/{NATIVE_API_ID}/",
    default_policies: Sequence[str] = (DEFAULT_POLICY_ID,),
) -> dict[str, Any]:
    """Tyk's own JWT middleware, set up exactly as the Auth0 walkthrough does."""
    api = _api(api_id, "Auth0 (native Tyk JWT)", listen_path, target_url)
    api.update(
        {
            "enable_jwt": True,
            "jwt_signing_method": "rsa",
            "jwt_source": jwt_source_for(jwks_url),
            "jwt_identity_base_field": "sub",
            "jwt_policy_field_name": "pol",
            "jwt_default_policies": list(default_policies),
            "auth_configs": {"jwt": {"auth_header_name": "Authorization"}},
        }
    )
    return api


def native_oas_jwt_api(target_url: str, jwks_url: str, *, scheme: Mapping[str, Any] | None = None,
                       api_id: str = NATIVE_OAS_API_ID, default_policies: Sequence[str] = (DEFAULT_POLICY_ID,),
                       ) -> dict[str, Any]:
    """Tyk OAS with native JWT: the only form of it that checks iss, aud and jti (``scheme`` adds
    allowedIssuers, allowedAudiences, jtiValidation, ... to the JWT security scheme)."""
    jwt = {
        "enabled": True,
        "source": jwt_source_for(jwks_url),
        "signingMethod": "rsa",
        "identityBaseField": "sub",
        "policyFieldName": "pol",
        "defaultPolicies": list(default_policies),
        "header": {"enabled": True, "name": "Authorization"},
        **(scheme or {}),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": api_id, "version": "1.0.0"},
        "paths": {},
        "components": {"securitySchemes": {"jwtAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"jwtAuth": []}],
        "x-tyk-api-gateway": {
            "info": {"id": api_id, "orgId": ORG_ID, "name": api_id, "state": {"active": True}},
            "upstream": {"url": target_url},
            "server": {
                "listenPath": {"value": f"/{api_id}/", "strip": True},
                "authentication": {"enabled": True, "securitySchemes": {"jwtAuth": jwt}},
            },
        },
    }


def plugin_api(
    target_url: str,
    config_data: Mapping[str, Any],
    *,
    bundle: str | None,
    manifest: Mapping[str, Any] | None = None,
    api_id: str = PLUGIN_API_ID,
    listen_path: str = f"/{PLUGIN_API_ID}/",
) -> dict[str, Any]:
    """Custom (coprocess) auth through our gRPC plugin.

    With a bundle the gateway takes ``custom_middleware`` from the bundle's manifest;
    without one the manifest's section is inlined so the API still works.
    """
    api = _api(api_id, "Auth0 (gRPC plugin)", listen_path, target_url)
    api.update(
        {
            "enable_coprocess_auth": True,
            "base_identity_provided_by": "custom_auth",
            "config_data": dict(config_data),
            "config_data_disabled": False,
            "auth_configs": {"coprocess": {"auth_header_name": "Authorization"}},
        }
    )
    if bundle:
        api["custom_middleware_bundle"] = bundle
    else:
        section = (manifest or load_manifest())["custom_middleware"]
        api["custom_middleware"] = copy.deepcopy(section)
    return api


def manifest_without_id_extractor(manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The same hooks without the ID extractor: the gateway keys sessions by the plugin's token
    (org id + md5 of the subject), so quotas follow the Auth0 subject across renewed tokens."""
    variant = copy.deepcopy(dict(manifest or load_manifest()))
    variant["custom_middleware"].pop("id_extractor", None)
    return variant


def keyless_api(target_url: str, *, api_id: str = KEYLESS_API_ID) -> dict[str, Any]:
    """No auth at all: the gateway's own ceiling for benchmarks."""
    api = _api(api_id, "Keyless", f"/{api_id}/", target_url)
    api["use_keyless"] = True
    return api


def policy(
    policy_id: str,
    api_ids: Iterable[str],
    *,
    rate: float = 100_000,
    per: float = 1,
    quota_max: int = -1,
    quota_renewal_rate: int = 3600,
    name: str | None = None,
) -> dict[str, Any]:
    rights = {
        api_id: {"api_id": api_id, "api_name": api_id, "versions": ["Default"], "allowed_urls": []}
        for api_id in api_ids
    }
    return {
        "id": policy_id,
        "name": name or policy_id,
        "org_id": ORG_ID,
        "rate": rate,
        "per": per,
        "quota_max": quota_max,
        "quota_renewal_rate": quota_renewal_rate,
        "throttle_interval": -1,
        "throttle_retry_limit": -1,
        "max_query_depth": -1,
        "access_rights": rights,
        "active": True,
        "is_inactive": False,
        "hmac_enabled": False,
        "key_expires_in": 0,
        "tags": [],
        "meta_data": {},
        "partitions": {"quota": False, "rate_limit": False, "complexity": False, "acl": False, "per_api": False},
    }


def default_policies() -> list[dict[str, Any]]:
    """``auth0-policy`` for the walkthrough plus small ones tests can hit quickly."""
    auth0_apis = (NATIVE_API_ID, PLUGIN_API_ID, PLUGIN_SUBJECT_API_ID, PLUGIN_DPOP_API_ID, NATIVE_OAS_API_ID)
    return [
        policy(DEFAULT_POLICY_ID, auth0_apis, name="Auth0 policy"),
        policy("limited", auth0_apis, rate=3, per=60, name="3 requests a minute"),
        policy("quota3", auth0_apis, quota_max=3, quota_renewal_rate=3600, name="3 requests an hour (quota)"),
        policy("no-access", (KEYLESS_API_ID,), name="No access to the Auth0 APIs"),
        policy("no-rights", (), name="Grants no API at all"),
    ]


# -- the plugin bundle -------------------------------------------------------------


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def build_bundle(output_dir: Path, manifest_path: Path = MANIFEST, key_path: Path | None = None) -> Path:
    """Build the bundle zip with the project's builder, named after its content.

    The gateway caches bundles by name, so a changed bundle must get a new name.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    return bundle.build(manifest_path, output_dir / "bundle.zip", key_path=key_path, versioned=True)


class _FilesHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        self.server.owner.downloads += 1  # type: ignore[attr-defined]
        super().do_GET()


class BundleServer(BackgroundHTTPServer):
    """Static files for ``bundle_base_url`` (the gateway downloads bundles over HTTP)."""

    def __init__(self, directory: Path, host: str = LOOPBACK, port: int = 0) -> None:
        super().__init__(host, port)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.handler_class = partial(_FilesHandler, directory=str(self.directory))  # type: ignore[assignment]
        self.downloads = 0


# -- the gateway process -----------------------------------------------------------


class Gateway:
    """One Tyk gateway process with its own tyk.conf, apps/, policies/ and middleware/."""

    def __init__(
        self,
        binary: Path | str,
        workdir: Path,
        *,
        redis_port: int,
        redis_host: str = LOOPBACK,
        port: int = 0,
        host: str = LOOPBACK,
        secret: str | None = None,
        grpc_server: str | None = None,
        bundle_base_url: str | None = None,
        public_key_path: Path | None = None,
        apis: Iterable[Mapping[str, Any]] = (),
        policies: Iterable[Mapping[str, Any]] = (),
        template_path: Path = TEMPLATES_DIR,
        log_level: str = "info",
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.secret = secret or secrets.token_hex(16)
        self.redis_host, self.redis_port = redis_host, redis_port
        self.grpc_server = grpc_server
        self.bundle_base_url = bundle_base_url
        self.public_key_path = public_key_path
        self.template_path = template_path
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})
        self.apis: dict[str, dict[str, Any]] = {a["api_id"]: dict(a) for a in apis}
        self.policies: dict[str, dict[str, Any]] = {p["id"]: dict(p) for p in policies}
        self._proc: ManagedProcess | None = None

    # -- paths and addresses

    @property
    def conf_path(self) -> Path:
        return self.workdir / "tyk.conf"

    @property
    def apps_dir(self) -> Path:
        return self.workdir / "apps"

    @property
    def policies_dir(self) -> Path:
        return self.workdir / "policies"

    @property
    def middleware_dir(self) -> Path:
        return self.workdir / "middleware"

    @property
    def log_path(self) -> Path:
        return self.workdir / "gateway.log"

    @property
    def url(self) -> str:
        """Base URL, no trailing slash (listen paths start with one)."""
        return f"http://{self.host}:{self.port}"

    # -- configuration

    def config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "listen_address": self.host,
            "listen_port": self.port,
            "secret": self.secret,
            "node_secret": self.secret,
            "template_path": str(self.template_path),
            "app_path": str(self.apps_dir) + "/",
            "use_db_app_configs": False,
            "policies": {"policy_source": "file", "policy_path": str(self.policies_dir)},
            "storage": {
                "type": "redis",
                "host": self.redis_host,
                "port": self.redis_port,
                "database": 0,
                "optimisation_max_idle": 2000,
                "optimisation_max_active": 4000,
            },
            "enable_analytics": False,
            "health_check": {"enable_health_checks": False},
            "hash_keys": False,
            "enable_jsvm": False,
            "middleware_path": str(self.middleware_dir),
            "pid_file_location": str(self.workdir / "tyk.pid"),
            "log_level": self.log_level,
            "max_idle_connections_per_host": 500,
            "coprocess_options": {
                "enable_coprocess": self.grpc_server is not None,
                "coprocess_grpc_server": self.grpc_server or "",
            },
            "enable_bundle_downloader": self.bundle_base_url is not None,
            "bundle_base_url": self.bundle_base_url or "",
        }
        if self.public_key_path is not None:
            conf["public_key_path"] = str(self.public_key_path)
        return _deep_merge(conf, self.extra_config)

    def write_files(self) -> None:
        """(Re)write tyk.conf, every API and every policy from the in-memory state."""
        if not (self.template_path / "error.json").exists():
            raise StackError(f"gateway error templates missing in {self.template_path}")
        for directory in (self.apps_dir, self.policies_dir, self.middleware_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for stale in [*self.apps_dir.glob("*.json"), *self.policies_dir.glob("*.json")]:
            stale.unlink()
        for api_id, api in self.apis.items():
            (self.apps_dir / f"{api_id}.json").write_text(json.dumps(api, indent=2))
        for policy_id, pol in self.policies.items():
            (self.policies_dir / f"{policy_id}.json").write_text(json.dumps(pol, indent=2))
        self.conf_path.write_text(json.dumps(self.config(), indent=2))

    # -- lifecycle

    def start(self, timeout: float = 60.0, *, wait_for: Iterable[str] | None = None) -> Gateway:
        """Start and wait until the APIs ``wait_for`` names (default: all of them) are loaded.

        A gateway that cannot load an API (its bundle unreachable or refused) still starts: name
        the others to watch it do so.
        """
        if self._proc is not None and self._proc.running:
            return self
        if not self.binary.exists():
            raise StackError(f"gateway binary {self.binary} does not exist")
        if self.port == 0:
            self.port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_files()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TYK_")}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        self._proc = ManagedProcess(
            "tyk-gateway",
            [str(self.binary), f"--conf={self.conf_path}"],
            self.log_path,
            env=env,
            cwd=self.workdir,
        )
        self._proc.start()
        try:
            self._wait_ready(timeout, wait_for)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def restart(self, timeout: float = 60.0, *, wait_for: Iterable[str] | None = None) -> None:
        self.stop()
        self.start(timeout, wait_for=wait_for)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    def _wait_ready(self, timeout: float, wait_for: Iterable[str] | None = None) -> None:
        assert self._proc is not None
        wait_until(
            lambda: self.get("/hello").status == 200,
            timeout=timeout,
            what=f"the gateway to answer on {self.url}/hello",
            abort=self._proc.exit_reason,
            interval=0.1,
        )
        self._wait_apis(timeout, wait_for)

    def _wait_apis(self, timeout: float, wait_for: Iterable[str] | None = None) -> None:
        want = set(self.apis if wait_for is None else wait_for)

        def loaded() -> bool:
            return want <= self.loaded_api_ids()

        try:
            wait_until(
                loaded,
                timeout=timeout,
                what=f"APIs {sorted(want)} to load",
                abort=self._proc.exit_reason if self._proc else None,
                interval=0.1,
            )
        except StackError as exc:
            missing = sorted(want - self.loaded_api_ids()) if self.running else sorted(want)
            raise StackError(f"{exc}; not loaded: {missing}; gateway log tail:\n{self.log_tail()}") from None

    def reload(self, timeout: float = 30.0, *, wait_for: Iterable[str] | None = None) -> None:
        """Rewrite the files and make the gateway load them, waiting until it has loaded ``wait_for``
        (default: every API)."""
        self.write_files()
        # block=true answers once the reload is done: a bundle download that fails takes up to 11 s
        result = self.admin("GET", "/tyk/reload?block=true", timeout=timeout)
        if result.status != 200:
            raise StackError(f"gateway reload failed: {result.status} {result.text}")
        self._wait_apis(timeout, wait_for)

    # -- state changes for tests

    def put_api(self, api: Mapping[str, Any]) -> None:
        """Add or replace an API definition (takes effect on ``reload()``)."""
        self.apis[api["api_id"]] = dict(api)

    def remove_api(self, api_id: str) -> None:
        self.apis.pop(api_id, None)

    def put_policy(self, pol: Mapping[str, Any]) -> None:
        self.policies[pol["id"]] = dict(pol)

    # -- talking to it

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> HTTPResult:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        return http_request(method, self.url + path, headers=hdrs, body=body, timeout=timeout)

    def get(self, path: str, **kwargs: Any) -> HTTPResult:
        return self.request("GET", path, **kwargs)

    def admin(self, method: str, path: str, body: Mapping[str, Any] | None = None,
              timeout: float = 10.0) -> HTTPResult:
        """The Gateway API (``/tyk/...``), authenticated with the node secret."""
        return http_request(method, self.url + path, headers={"X-Tyk-Authorization": self.secret}, body=body,
                            timeout=timeout)

    def loaded_api_ids(self) -> set[str]:
        result = self.admin("GET", "/tyk/apis")
        if result.status != 200:
            return set()
        return {str(api.get("api_id")) for api in result.json() or []}

    def flush_jwks_cache(self, api_id: str | None = None) -> None:
        path = "/tyk/cache/jwks" + (f"/{api_id}" if api_id else "")
        self.admin("DELETE", path)

    def session(self, key_id: str) -> dict[str, Any] | None:
        result = self.admin("GET", f"/tyk/keys/{key_id}")
        if result.status != 200:
            return None
        session: dict[str, Any] = result.json()
        return session

    def log_text(self) -> str:
        return self._proc.log_text() if self._proc else _read(self.log_path)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
