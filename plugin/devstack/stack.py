"""The whole walkthrough on one machine: Redis, an Auth0 (stand-in or real), the plugin,
an echo upstream, a bundle server and the real Tyk gateway.

``Stack`` is what the e2e tests and benchmarks use; ``tyk-auth0-plugin stack`` runs it
in the foreground and prints the walkthrough's two curl commands.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from plugin.cli import is_port
from plugin.devstack import gateway as gw
from plugin.devstack.idp import AUTH0_PROFILE, DEFAULT_AUDIENCE, TOKEN_PROFILES, AuthZeroStandIn, Client, token_curl
from plugin.devstack.procs import (
    LOOPBACK,
    HTTPResult,
    ManagedProcess,
    StackError,
    free_port,
    http_answers,
    http_request,
    pick_port,
    port_is_free,
    port_open,
    serve_until_signal,
    socket_open,
    wait_until,
)
from plugin.devstack.redis import RedisServer
from plugin.devstack.upstream import EchoUpstream
from plugin.workers import worker_addresses

T = TypeVar("T")

DEMO_CLIENT_ID = "demo-m2m-client"
DEMO_SCOPE = "read:echo"

# Ports the ``stack`` command prefers (env vars override); tests use free ports.
DEFAULT_PORTS: Mapping[str, tuple[str, int]] = {
    "gateway": ("STACK_GATEWAY_PORT", 8080),
    "plugin": ("STACK_PLUGIN_PORT", 5555),
    "idp": ("STACK_IDP_PORT", 8443),
    "upstream": ("STACK_UPSTREAM_PORT", 8081),
    "bundles": ("STACK_BUNDLE_PORT", 8082),
    "redis": ("STACK_REDIS_PORT", 6380),
    "metrics": ("STACK_METRICS_PORT", 9464),
}
# Served from this process: asked for port 0, they take the one the kernel binds.
IN_PROCESS_SERVERS = frozenset({"idp", "upstream", "bundles"})
PLUGIN_SOCKET = "plugin.sock"  # with plugin_socket: the plugin's unix socket, in the workdir
# sockaddr_un holds 108 bytes with the terminating NUL: a longer path cannot be bound
MAX_SOCKET_PATH = 107


def plugin_server_available() -> bool:
    """The plugin's ``serve`` command exists once plugin.server and plugin.bundle do."""
    return all(importlib.util.find_spec(m) is not None for m in ("plugin.server", "plugin.bundle"))


def worker_count(plugin_args: Sequence[str]) -> int:
    """How many worker processes ``serve`` runs with these arguments (--workers N, else one)."""
    count = 1
    for i, arg in enumerate(plugin_args):
        if arg == "--workers" and i + 1 < len(plugin_args):
            count = int(plugin_args[i + 1])
        elif arg.startswith("--workers="):
            count = int(arg.partition("=")[2])
    return max(count, 1)


def worker_hosts(plugin_args: Sequence[str], host: str = LOOPBACK) -> list[str]:
    """The loopback addresses ``serve`` listens on: one per worker, consecutive from ``host``."""
    return worker_addresses(host, worker_count(plugin_args))


def free_port_range(count: int, host: str = LOOPBACK) -> int:
    """A free port whose next ``count - 1`` ports are free as well (worker i serves metrics on PORT+i)."""
    while True:
        port = free_port(host)
        if port + count - 1 <= 65535 and all(port_is_free(port + i, host) for i in range(1, count)):
            return port


def pick_port_range(preferred: int, count: int, host: str = LOOPBACK) -> tuple[int, bool]:
    """``pick_port`` for a range: the preferred port only when its next ``count - 1`` are free too."""
    if preferred and preferred + count - 1 <= 65535 and all(port_is_free(preferred + i, host) for i in range(count)):
        return preferred, True
    return free_port_range(count, host), preferred == 0


def normalise_domain(domain: str) -> str:
    return domain.strip().removeprefix("https://").removeprefix("http://").rstrip("/")


class Stack:
    """Start everything in dependency order; stop everything in reverse, even on failure.

    Ports default to 0 (any free port). A non-zero port that is busy falls back to a
    free one and the change is recorded in ``notes``. ``plugin_socket`` serves the plugin on
    ``unix://WORKDIR/plugin.sock`` instead of a TCP port, and points the gateway there.
    """

    def __init__(
        self,
        *,
        workdir: Path | str | None = None,
        gateway_bin: Path | str | None = None,
        ports: Mapping[str, int] | None = None,
        audience: str = DEFAULT_AUDIENCE,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str | None = None,
        auth0_domain: str | None = None,
        token_profile: str = AUTH0_PROFILE,
        with_plugin: bool | None = None,
        use_bundle: bool = True,
        sign_bundle: bool = False,
        plugin_args: Sequence[str] = (),
        plugin_command: Sequence[str] = (),
        plugin_env: Mapping[str, str] | None = None,
        plugin_socket: bool = False,
        config_overrides: Mapping[str, Any] | None = None,
        with_gateway: bool = True,
        gateway_config: Mapping[str, Any] | None = None,
        extra_apis: Iterable[Mapping[str, Any]] = (),
        extra_policies: Iterable[Mapping[str, Any]] = (),
        log_level: str = "info",
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="devstack-"))
        self.gateway_bin = Path(gateway_bin) if gateway_bin else None
        self.requested_ports = {name: 0 for name in DEFAULT_PORTS} | dict(ports or {})
        self.auth0_domain = normalise_domain(auth0_domain) if auth0_domain else None
        self.audience = audience
        self.token_profile = token_profile  # the stand-in API's access-token profile (a real tenant sets its own)
        self.client_id = client_id
        self.client_secret = client_secret or (None if self.auth0_domain else secrets.token_urlsafe(24))
        self.with_plugin = plugin_server_available() if with_plugin is None else with_plugin
        self.use_bundle = use_bundle
        self.sign_bundle = sign_bundle
        self.plugin_args = tuple(plugin_args)
        # what runs on the plugin port; default `python -m plugin serve` (benchmarks swap in a ceiling servicer)
        self.plugin_command = tuple(plugin_command) or (sys.executable, "-m", "plugin", "serve")
        self.plugin_env = dict(plugin_env or {})
        self.plugin_socket = plugin_socket
        self.config_overrides = dict(config_overrides or {})
        self.with_gateway = with_gateway
        self.gateway_config = dict(gateway_config or {})
        self.extra_apis = list(extra_apis)
        self.extra_policies = list(extra_policies)
        self.log_level = log_level

        self.ports: dict[str, int] = {}
        self.notes: list[str] = []
        self.redis: RedisServer | None = None
        self.idp: AuthZeroStandIn | None = None
        self.upstream: EchoUpstream | None = None
        self.bundles: gw.BundleServer | None = None
        self.bundle_path: Path | None = None
        self.public_key_path: Path | None = None
        self.plugin: ManagedProcess | None = None
        self.gateway: gw.Gateway | None = None

    # -- derived addresses ---------------------------------------------------------

    @property
    def url(self) -> str:
        """Gateway base URL without trailing slash."""
        return self._need(self.gateway, "gateway").url

    @property
    def issuer(self) -> str:
        if self.auth0_domain:
            return f"https://{self.auth0_domain}/"
        return self._need(self.idp, "IdP").issuer

    @property
    def jwks_url(self) -> str:
        if self.auth0_domain:
            return f"https://{self.auth0_domain}/.well-known/jwks.json"
        return self._need(self.idp, "IdP").jwks_url

    @property
    def token_url(self) -> str:
        if self.auth0_domain:
            return f"https://{self.auth0_domain}/oauth/token"
        return self._need(self.idp, "IdP").token_url

    @property
    def metrics_url(self) -> str:
        """The plugin's /metrics, /healthz and /readyz."""
        return f"http://{LOOPBACK}:{self.ports['metrics']}"

    @property
    def plugin_socket_path(self) -> Path:
        return self.workdir.absolute() / PLUGIN_SOCKET

    @property
    def plugin_address(self) -> str:
        """The plugin's --listen, and the gateway's coprocess_grpc_server."""
        if self.plugin_socket:
            return f"unix://{self.plugin_socket_path}"
        return f"tcp://{LOOPBACK}:{self.ports['plugin']}"

    @staticmethod
    def _need(part: T | None, name: str) -> T:
        if part is None:
            raise StackError(f"the stack's {name} is not running")
        return part

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.plugin_socket and len(os.fsencode(self.plugin_socket_path)) > MAX_SOCKET_PATH:
            raise StackError(f"the plugin socket {self.plugin_socket_path} is longer than a unix socket path may be "
                             f"({MAX_SOCKET_PATH} bytes): use a shorter workdir")
        binary = (self.gateway_bin or gw.find_gateway_binary()) if self.with_gateway else None

        for name in DEFAULT_PORTS:
            if name == "plugin" and self.plugin_socket:
                continue
            wanted = self.requested_ports.get(name, 0)
            if wanted == 0 and name in IN_PROCESS_SERVERS:
                self.ports[name] = 0  # bound to a kernel-chosen port when started, so no race
                continue
            # with --workers, worker i serves metrics on PORT+i: the whole range must be free
            span = worker_count(self.plugin_args) if name == "metrics" else 1
            port, as_wanted = pick_port(wanted) if span == 1 else pick_port_range(wanted, span)
            while any(port + i in self.ports.values() for i in range(span)):  # two free_port() calls may agree
                port, as_wanted = (free_port() if span == 1 else free_port_range(span)), wanted == 0
            if not as_wanted:
                if span == 1:
                    self.notes.append(f"port {wanted} for {name} is busy; using {port}")
                else:
                    self.notes.append(f"ports {wanted}-{wanted + span - 1} for {name} (one per worker) are not all "
                                      f"free; using {port}-{port + span - 1}")
            self.ports[name] = port

        self.redis = RedisServer(self.ports["redis"], workdir=self.workdir / "redis").start()

        if not self.auth0_domain:
            clients = {
                self.client_id: Client(self.client_secret or "", scope=DEMO_SCOPE),
            }
            self.idp = AuthZeroStandIn(LOOPBACK, self.ports["idp"], audience=self.audience, clients=clients,
                                       profiles={self.audience: self.token_profile})
            self.idp.start()
            self.ports["idp"] = self.idp.port

        self.upstream = EchoUpstream(LOOPBACK, self.ports["upstream"]).start()
        self.ports["upstream"] = self.upstream.port

        if binary is None:  # plugin-only: no gateway could be had
            if self.with_plugin:
                self.start_plugin()
            return

        if self.use_bundle:
            self._build_bundle()
            self.bundles = gw.BundleServer(self.workdir / "bundles", LOOPBACK, self.ports["bundles"]).start()
            self.ports["bundles"] = self.bundles.port

        self.gateway = gw.Gateway(
            binary,
            self.workdir / "gateway",
            redis_port=self.redis.port,
            port=self.ports["gateway"],
            grpc_server=self.plugin_address,
            bundle_base_url=self.bundles.url if self.bundles else None,
            public_key_path=self.public_key_path,
            apis=self.apis(),
            policies=[*gw.default_policies(), *self.extra_policies],
            log_level=self.log_level,
            extra_config=self.gateway_config,
        )
        self.gateway.start()
        # After the gateway (which connects lazily): its policy files exist when the plugin reads them.
        if self.with_plugin:
            self.start_plugin()

    def stop(self) -> None:
        """Stop whatever is running, newest first; safe to call more than once."""
        errors: list[BaseException] = []
        for part in (self.gateway, self.bundles, self.plugin, self.upstream, self.idp, self.redis):
            if part is None:
                continue
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - one part failing to stop must not leave the others running
                errors.append(exc)
        self.gateway = self.bundles = self.plugin = self.upstream = self.idp = self.redis = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise StackError(f"errors while stopping the stack: {errors!r}")

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- pieces --------------------------------------------------------------------

    def config_data(self) -> dict[str, Any]:
        """The plugin API's ``config_data``: the same settings as the native JWT API."""
        common = {
            "audience": self.audience,
            "jwt_signing_method": "rsa",
            "jwt_identity_base_field": "sub",
            "jwt_policy_field_name": "pol",
            "jwt_default_policies": [gw.DEFAULT_POLICY_ID],
        }
        common.update(self.config_overrides)
        if self.auth0_domain:
            return {"auth0_domain": self.auth0_domain, **common}
        return {"issuer": self.issuer, "jwt_source": self.jwks_url, **common}

    def apis(self) -> list[dict[str, Any]]:
        target = self._need(self.upstream, "upstream").url
        bundle = self.bundle_path.name if self.bundle_path else None
        return [
            gw.native_jwt_api(target, self.jwks_url),
            gw.plugin_api(target, self.config_data(), bundle=bundle),
            gw.plugin_api(target, self.config_data(), bundle=None, manifest=gw.manifest_without_id_extractor(),
                          api_id=gw.PLUGIN_SUBJECT_API_ID, listen_path=f"/{gw.PLUGIN_SUBJECT_API_ID}/"),
            gw.plugin_api(target, {**self.config_data(), "dpop": "required"}, bundle=bundle,
                          api_id=gw.PLUGIN_DPOP_API_ID, listen_path=f"/{gw.PLUGIN_DPOP_API_ID}/"),
            gw.keyless_api(target),
            *[dict(a) for a in self.extra_apis],
        ]

    def _build_bundle(self) -> None:
        key_path = None
        if self.sign_bundle:
            key_path, self.public_key_path = _bundle_keypair(self.workdir / "bundle-keys")
        self.bundle_path = gw.build_bundle(self.workdir / "bundles", key_path=key_path)

    def start_plugin(self, timeout: float = 30.0) -> None:
        """Start (or restart after ``stop_plugin``) the gRPC plugin server on its fixed port or socket."""
        if self.plugin is not None and self.plugin.running:
            return
        if self.plugin_socket:
            # A restart finds the socket file its predecessor left: connecting tells a live server from it.
            plugin = self._start_plugin_process()
            wait_until(lambda: socket_open(self.plugin_socket_path), timeout=timeout,
                       what=f"the plugin to listen on {self.plugin_address}", abort=plugin.exit_reason)
            return
        if "plugin" not in self.ports:
            self.ports["plugin"], _ = pick_port(self.requested_ports.get("plugin", 0))
        plugin = self._start_plugin_process()
        port, metrics = self.ports["plugin"], self.ports["metrics"]
        # With --workers, every worker: a gateway that starts while none listens fails its calls (the
        # round-robin picker fails fast), and a worker whose metrics port is taken stops them all.
        # Its metrics port is bound last, so its answering there means the worker is past every
        # refusal (an answer, not an open port: the port may be another process's).
        addresses = worker_hosts(self.plugin_args)
        wait_until(
            lambda: all(port_open(port, host) and (len(addresses) == 1 or http_answers(metrics + i))
                        for i, host in enumerate(addresses)),
            timeout=timeout,
            what=f"the plugin to listen on {self.plugin_address}"
                 + (f" and every worker on {', '.join(addresses[1:])}" if len(addresses) > 1 else ""),
            abort=plugin.exit_reason,
        )

    def _start_plugin_process(self) -> ManagedProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(gw.REPO_ROOT), env.get("PYTHONPATH")]))
        # The plugin reads the gateway's policy files so an unknown policy gets native JWT's refusal.
        env.setdefault("TYK_AUTH0_POLICIES_PATH", str(self.workdir / "gateway" / "policies"))
        env.update(self.plugin_env)
        argv = [*self.plugin_command, "--listen", self.plugin_address,
                "--metrics-listen", f"{LOOPBACK}:{self.ports['metrics']}", *self.plugin_args]
        self.plugin = ManagedProcess("plugin", argv, self.workdir / "plugin.log", env=env, cwd=gw.REPO_ROOT)
        self.plugin.start()
        return self.plugin

    def stop_plugin(self) -> None:
        if self.plugin is not None:
            self.plugin.stop()

    def restart_plugin(self) -> None:
        self.stop_plugin()
        self.start_plugin()

    # -- using it ------------------------------------------------------------------

    def token(self, client_id: str | None = None, **overrides: Any) -> str:
        """A token for the demo client (or ``client_id``); stand-in tokens accept overrides."""
        if self.idp is not None:
            return self.idp.issue_token(client_id or self.client_id, **overrides)
        if overrides or client_id:
            raise StackError("token overrides need the Auth0 stand-in")
        return self.request_token()

    def request_token(self) -> str:
        """The walkthrough's first curl: client credentials against /oauth/token."""
        if not self.client_secret:
            raise StackError("set AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET to request a token from Auth0")
        result = http_request(
            "POST",
            self.token_url,
            body={
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "audience": self.audience,
                "grant_type": "client_credentials",
            },
        )
        if result.status != 200:
            raise StackError(f"token request failed: {result.status} {result.text}")
        return str(result.json()["access_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> HTTPResult:
        return self._need(self.gateway, "gateway").request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> HTTPResult:
        return self.request("GET", path, **kwargs)

    def _token_steps(self) -> list[str]:
        """Step 1 of the walkthrough: its token curl, and the same piped into $TOKEN.

        Only the stand-in's throwaway secret is printed; a real tenant's stays in AUTH0_CLIENT_SECRET,
        which the printed command reads from the shell (a terminal's scrollback is no place for it).
        """
        if self.auth0_domain and self.client_secret:
            get_token = token_curl(self.token_url, self.client_id, _SHELL_SECRET, self.audience).replace(
                json.dumps(_SHELL_SECRET), '"\'"$AUTH0_CLIENT_SECRET"\'"')
        else:
            get_token = token_curl(self.token_url, self.client_id, self.client_secret or "{CLIENT_SECRET}", self.audience)
        extract = (
            "TOKEN=$("
            + get_token.replace("curl --request", "curl -s --request")
            + " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
        )
        return [
            "# 1. Get a token (the walkthrough's Auth0 'Test' tab curl):",
            get_token,
            "",
            "#    ...or straight into $TOKEN:",
            extract,
            "",
        ]

    def curl_commands(self, api: str = gw.PLUGIN_API_ID) -> str:
        call = f'curl -X GET {self.url}/{api}/get -H "Accept: application/json" -H "Authorization: Bearer $TOKEN"'
        return "\n".join([*self._token_steps(), "# 2. Call the API through Tyk with it:", call, "",
                          *self._dpop_steps()])

    def _dpop_steps(self) -> list[str]:
        """A DPoP client's token request and calls (a proof per request cannot be typed into curl)."""
        secret = "" if self.auth0_domain else f" --client-secret {shlex.quote(self.client_secret or '')}"
        return [
            f"# 3. DPoP: a token bound to a client key, then calls with a proof each (/{gw.PLUGIN_DPOP_API_ID}/):",
            f"{shlex.quote(sys.executable)} -m plugin.devstack.dpop_client {self.url}/{gw.PLUGIN_DPOP_API_ID}/get "
            f"--token-url {self.token_url} --client-id {shlex.quote(self.client_id)}{secret} "
            f"--audience {shlex.quote(self.audience)}",
        ]

    def failure(self) -> str | None:
        """Why the stack is broken (a child process died), or None while all is well."""
        if self.gateway is not None and not self.gateway.running:
            return f"the gateway stopped; log tail:\n{self.gateway.log_tail()}"
        if self.plugin is not None and not self.plugin.running and self.with_plugin:
            return self.plugin.exit_reason()
        if self.redis is not None and not self.redis.running:
            return "redis-server stopped"
        return None

    def describe(self) -> dict[str, Any]:
        """Addresses as data, written to ``stack.json`` for scripts driving a running stack."""
        if self.gateway is None:
            return {"gateway": None, "issuer": self.issuer, "jwks_url": self.jwks_url, "token_url": self.token_url,
                    "audience": self.audience, "client_id": self.client_id,
                    "plugin": self.plugin_address if self.plugin else None, "ports": self.ports,
                    "config_data": self.config_data()}
        return {
            "gateway": self.url,
            "gateway_secret": self._need(self.gateway, "gateway").secret,
            "issuer": self.issuer,
            "jwks_url": self.jwks_url,
            "token_url": self.token_url,
            "audience": self.audience,
            "client_id": self.client_id,
            "plugin": self.plugin_address if self.plugin else None,
            "ports": self.ports,
            "apis": {
                api_id: f"{self.url}/{api_id}/"
                for api_id in (gw.PLUGIN_API_ID, gw.PLUGIN_SUBJECT_API_ID, gw.PLUGIN_DPOP_API_ID, gw.NATIVE_API_ID,
                               gw.KEYLESS_API_ID)
            },
        }

    def plugin_only_summary(self) -> str:
        """What runs, and how to try a token, when no gateway binary could be had."""
        config = json.dumps(self.config_data(), separators=(",", ":"))
        return "\n".join([
            *self.notes,
            "No Tyk gateway could be had (see the build error above; set TYK_GATEWAY_BIN to a v5.14.0 binary).",
            "Running without it:",
            f"IdP            {'Auth0 tenant ' + self.auth0_domain if self.auth0_domain else 'Auth0 stand-in ' + self.issuer}",
            f"plugin         {self.plugin_address}" + (f"  (log {self.plugin.log_path})" if self.plugin else ""),
            f"upstream       {self._need(self.upstream, 'upstream').url}",
            "",
            *self._token_steps(),
            "# 2. Ask the plugin's own checker what the gateway would answer for it:",
            f"tyk-auth0-plugin check --config-data '{config}' --org-id {gw.ORG_ID} --api-id {gw.PLUGIN_API_ID} "
            '--token "$TOKEN"',
        ])

    def _api_lines(self) -> list[str]:
        """One line per API the gateway serves: its listen path and how it authenticates."""
        apis = [
            (gw.PLUGIN_API_ID, "gRPC plugin auth" + ("" if self.plugin else "  [plugin NOT running]")),
            (gw.PLUGIN_SUBJECT_API_ID, "the same without the ID extractor (sessions per subject)"),
            (gw.PLUGIN_DPOP_API_ID, "the same with dpop: required (DPoP-bound tokens with a proof per request)"),
            (gw.NATIVE_API_ID, "Tyk's native JWT auth"),
            (gw.KEYLESS_API_ID, "no auth"),
        ]
        width = max(len(api_id) for api_id, _ in apis) + 2
        return [f"  {'/' + api_id + '/':<{width}}  {what}" for api_id, what in apis]

    def summary(self) -> str:
        gateway = self._need(self.gateway, "gateway")
        idp = f"Auth0 tenant {self.auth0_domain}" if self.auth0_domain else f"Auth0 stand-in {self.issuer}"
        lines = [
            f"Tyk gateway    {gateway.url}  (secret {gateway.secret}, log {gateway.log_path})",
            *self._api_lines(),
            f"IdP            {idp}  (jwks {self.jwks_url})",
            f"plugin         {self.plugin_address}"
            + (f"  (log {self.plugin.log_path}; metrics {self.metrics_url}/metrics)" if self.plugin else "  (not started)"),
            f"upstream       {self._need(self.upstream, 'upstream').url}",
            f"redis          {self._need(self.redis, 'redis').url}",
        ]
        if self.bundles and self.bundle_path:
            lines.append(f"bundle         {self.bundles.url}{self.bundle_path.name}")
        return "\n".join([*self.notes, *lines])


_SHELL_SECRET = "\0AUTH0_CLIENT_SECRET\0"  # stands for the shell's $AUTH0_CLIENT_SECRET in a printed command


def _bundle_keypair(directory: Path) -> tuple[Path, Path]:
    """A throwaway signing key for signed-bundle runs; lives and dies with the stack's workdir."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "bundle-signing.pem"
    public = directory / "bundle-signing.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


# -- command line ------------------------------------------------------------------


def _env_port(name: str) -> int:
    env_name, default = DEFAULT_PORTS[name]
    raw = os.environ.get(env_name, "").strip()
    if not raw:
        return default
    if not is_port(raw):
        raise SystemExit(f"{env_name}={raw!r} is not a port number (0 to 65535; 0: any free port)")
    return int(raw)


def _env_token_profile() -> str:
    """STACK_TOKEN_PROFILE: the stand-in API's access-token profile, as an Auth0 API sets it."""
    raw = os.environ.get("STACK_TOKEN_PROFILE", "").strip().lower()
    if not raw:
        return AUTH0_PROFILE
    if raw not in TOKEN_PROFILES:
        raise SystemExit(f"STACK_TOKEN_PROFILE={raw!r} is not a token profile (one of {', '.join(sorted(TOKEN_PROFILES))})")
    return raw


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stack",
        help="run Redis, an Auth0 stand-in, the plugin, an echo upstream and the Tyk gateway",
        description=(
            "Run the Auth0 walkthrough locally. Uses a real Auth0 tenant when AUTH0_DOMAIN and "
            "AUTH0_AUDIENCE are set (with AUTH0_CLIENT_ID/AUTH0_CLIENT_SECRET for the printed curl), "
            "else a local stand-in (its audience, client id and secret from STACK_AUDIENCE, STACK_CLIENT_ID, "
            "STACK_CLIENT_SECRET; its token profile from STACK_TOKEN_PROFILE). Ports come from STACK_GATEWAY_PORT, "
            "STACK_PLUGIN_PORT, STACK_IDP_PORT, STACK_UPSTREAM_PORT, STACK_BUNDLE_PORT, STACK_REDIS_PORT, "
            "STACK_METRICS_PORT (the plugin's /metrics). "
            "The gateway binary comes from scripts/build-gateway.sh (honours TYK_GATEWAY_BIN)."
        ),
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("STACK_WORKDIR", ".stack")),
        help="where configs and logs go (env STACK_WORKDIR; default .stack/; the previous run's files are replaced)",
    )
    parser.add_argument("--no-plugin", action="store_true", help="do not start the plugin server")
    parser.add_argument("--plugin-socket", action="store_true",
                        help="serve the plugin on unix://WORKDIR/plugin.sock, and point the gateway there, "
                             "instead of a TCP port")
    parser.add_argument("--sign-bundle", action="store_true", help="sign the bundle and make the gateway verify it")
    parser.add_argument("--log-level", default=os.environ.get("STACK_GATEWAY_LOG_LEVEL", "info"), type=_gateway_log_level,
                        help="the gateway's log_level: debug, info, warn or error (env STACK_GATEWAY_LOG_LEVEL; default info)")
    parser.set_defaults(func=run_cli)
    return parser


def _gateway_log_level(text: str) -> str:
    """The levels the gateway accepts (it stops at start-up on any other)."""
    level = text.strip().lower()
    if level not in ("debug", "info", "warn", "error"):
        raise argparse.ArgumentTypeError(f"{text!r}: the gateway's log_level is one of debug, info, warn, error "
                                         "(from the flag or STACK_GATEWAY_LOG_LEVEL)")
    return level


STACK_FILE = "stack.json"
_RUN_ENTRIES = ("gateway", "bundles", "bundle-keys", "redis", "plugin.log", PLUGIN_SOCKET, STACK_FILE)


def _clear_previous_run(workdir: Path) -> None:
    """Remove only what an earlier run wrote, so a mistyped --workdir cannot wipe anything else."""
    for name in _RUN_ENTRIES:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def stack_from_env(args: argparse.Namespace) -> Stack:
    domain = os.environ.get("AUTH0_DOMAIN", "").strip()
    audience_env = os.environ.get("AUTH0_AUDIENCE", "").strip()
    if bool(domain) != bool(audience_env):
        # One alone would run the stand-in while the plugin, which inherits this environment, took it
        # as its server-wide tenant: the real tenant's keys, or (AUTH0_AUDIENCE alone) no start at all.
        given, missing = ("AUTH0_DOMAIN", "AUTH0_AUDIENCE") if domain else ("AUTH0_AUDIENCE", "AUTH0_DOMAIN")
        raise SystemExit(f"{given} is set but {missing} is not: a real Auth0 tenant needs both; unset {given} "
                         "for the local stand-in")
    real = bool(domain and audience_env)
    if real:
        audience = audience_env
        client_id = os.environ.get("AUTH0_CLIENT_ID", "").strip() or "{CLIENT_ID}"
        client_secret = os.environ.get("AUTH0_CLIENT_SECRET", "").strip() or None
    else:
        audience = os.environ.get("STACK_AUDIENCE", "").strip() or DEFAULT_AUDIENCE
        client_id = os.environ.get("STACK_CLIENT_ID", "").strip() or DEMO_CLIENT_ID
        client_secret = os.environ.get("STACK_CLIENT_SECRET", "").strip() or None
    ports = {name: _env_port(name) for name in DEFAULT_PORTS}  # read before anything is removed
    token_profile = _env_token_profile()
    workdir: Path = args.workdir.resolve()
    _clear_previous_run(workdir)
    return Stack(
        workdir=workdir,
        ports=ports,
        audience=audience,
        client_id=client_id,
        client_secret=client_secret,
        auth0_domain=domain if real else None,
        token_profile=token_profile,
        with_plugin=False if args.no_plugin else None,
        plugin_socket=args.plugin_socket,
        sign_bundle=args.sign_bundle,
        log_level=args.log_level,
    )


def run_cli(args: argparse.Namespace) -> int:
    stack = stack_from_env(args)
    print(f"starting the stack in {stack.workdir} ...", flush=True)
    try:
        stack.gateway_bin = gw.find_gateway_binary(show_progress=True)
    except StackError as exc:
        print(f"stack: no gateway ({exc}); starting the rest without it", file=sys.stderr)
        stack.with_gateway = False
    try:
        stack.start()
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    if not stack.with_plugin:
        print("note: the plugin server is not running; /auth0-plugin/ will answer 403.", flush=True)
    stack_file = stack.workdir / STACK_FILE
    stack_file.write_text(json.dumps(stack.describe(), indent=2))

    def stop() -> None:
        stack_file.unlink(missing_ok=True)
        stack.stop()
        print("stack stopped", flush=True)

    if stack.gateway is None:
        return serve_until_signal(stop, banner=stack.plugin_only_summary() + "\nCtrl-C to stop.", check=stack.failure)
    banner = "\n".join(
        [
            stack.summary(),
            "",
            stack.curl_commands(),
            "",
            f"(same with Tyk's native JWT: replace /{gw.PLUGIN_API_ID}/ by /{gw.NATIVE_API_ID}/)",
            "Ctrl-C to stop.",
        ]
    )
    return serve_until_signal(stop, banner=banner, check=stack.failure)
