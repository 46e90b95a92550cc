"""The gRPC server Tyk's coprocess client talks to: Dispatcher plus the standard health service."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Mapping
from concurrent import futures
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from plugin import extensions, logs
from plugin import metrics as metricslib
from plugin.auth import Authenticator, ConfigStore
from plugin.cli import bounded, is_port
from plugin.config import SETTINGS, env_config_data, parse_config_data, split_url
from plugin.coprocess import Event, EventReply, Object, object_pb2_grpc
from plugin.decoding import Undecodable, UndecodableLog, add_dispatcher, refuse_undecodable
from plugin.errors import ConfigurationError
from plugin.hooks import HookRouter
from plugin.jwks import JwksCache, JwksSettings
from plugin.manifest import MANIFEST_ENV, MANIFEST_SEPARATOR, ManifestError, load_served_hooks, manifest_paths
from plugin.policy_index import PolicyIndex, from_gateway, from_path, gateway_source
from plugin.session import key_format
from plugin.verify import DEFAULT_MAX_TOKEN_BYTES, Verifier
from plugin.workers import (
    DEFAULT_DNS_NAME,
    SUPERVISOR_PID_ENV,
    DnsResponder,
    Supervisor,
    allowed_cpus,
    pin_this_process,
    worker_addresses,
)

log = logging.getLogger("plugin.server")

DEFAULT_LISTEN = "tcp://127.0.0.1:5555"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Past about 9.2e9 s, Python's and gRPC's timed waits overflow: a larger --grace left shutdown to a
# thread that died with a traceback, and a larger --jwks-timeout failed every fetch. The caps are far
# beyond use; the fetch timeout's is check --timeout's.
MAX_WAIT_SECONDS = 7 * 24 * 3600.0
MAX_FETCH_TIMEOUT = 3600.0


class ListenError(ValueError):
    pass


class StartupError(ValueError):
    """A server-wide setting is wrong; the message names the flag or environment variable."""


def server_defaults(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config_data of APIs that send none, from AUTH0_*; a bad variable stops the start, by name."""
    try:
        defaults = env_config_data(environ)
    except ConfigurationError as exc:
        raise startup_error(exc) from None
    check_server_defaults(defaults)
    return defaults


def check_server_defaults(defaults: Mapping[str, Any]) -> None:
    """The AUTH0_* environment is every config-less API's configuration: refuse to start on a bad one."""
    if not defaults:
        return
    try:
        parse_config_data(None, defaults)
    except ConfigurationError as exc:
        raise startup_error(exc) from None


def startup_error(exc: ConfigurationError) -> StartupError:
    """The refusal to start for a bad AUTH0_* variable, naming the variable and its setting."""
    return StartupError(f"server-wide configuration from the environment: {variable_of(exc.key)}: {exc.problem}")


def variable_of(key: str) -> str:
    """``AUTH0_AUDIENCE (audience)``: how an operator finds a config_data key among the variables."""
    variable = next((s.env for s in SETTINGS if s.key == key and s.env), None)
    return f"{variable} ({key})" if variable else key


def key_hashing_note(environ: Mapping[str, str]) -> str:
    """The start-up line naming the hash function session key ids follow: a mismatch with tyk.conf
    refuses nothing, so this line (or ``check --tyk-conf``) is where an operator can see it."""
    value = environ.get("TYK_HASH_KEY_FUNCTION", "").strip()
    shown = repr(value) if value else "none (TYK_HASH_KEY_FUNCTION unset)"
    if value and key_format(value) != value:
        shown += f" (not a function the gateway knows: it and the plugin key ids as {key_format(value)})"
    return (f"session key ids follow hash_key_function {shown} unless an API's config_data sets one; it must be "
            "tyk.conf's (Tyk ships murmur64), or native JWT and the plugin count each subject's quota apart")


def _refuse_a_live_socket(path: str) -> None:
    """gRPC replaces an existing socket file; never take one another server still answers on."""
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return  # a stale file from a server that is gone: gRPC may replace it
    finally:
        probe.close()
    raise ListenError(f"--listen unix://{path}: another server is listening on this socket")


def _listen_flag(text: str) -> str:
    """--listen checked as it is parsed, so a bad TYK_AUTH0_LISTEN is named as well as the flag."""
    try:
        grpc_address(text)
    except ListenError as exc:
        raise argparse.ArgumentTypeError(f"{str(exc).removeprefix('--listen ')} (from the flag or TYK_AUTH0_LISTEN)") from None
    return text


# Go's resolver (isDomainName) takes '_' in a label, and asks DNS only for a name not all digits and
# dots: an IP address in the target is dialled as it is, never resolved to the workers.
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _dns_name_flag(text: str) -> str:
    """--dns-name as the gateway's resolver can ask for it: the printed coprocess_grpc_server names it."""
    name = text.strip().rstrip(".")
    if (not name or len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in name.split("."))
            or not re.search(r"[A-Za-z_-]", name)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a DNS name (dot-separated labels of letters, digits, "
                                         "'_' and '-', not all digits) (from the flag or TYK_AUTH0_DNS_NAME)")
    return name


def grpc_address(listen: str) -> str:
    """Tyk's coprocess_grpc_server forms (tcp://HOST:PORT, unix:///path) as a grpc bind address."""
    if listen.startswith("tcp://"):
        address = listen[len("tcp://"):]
        host, sep, port = address.rpartition(":")
        if not sep or not host or not is_port(port):
            raise ListenError(f"--listen {listen!r}: expected tcp://HOST:PORT")
        return address
    if listen.startswith("unix://"):
        path = listen[len("unix://"):]
        if not path.startswith("/"):
            raise ListenError(f"--listen {listen!r}: expected unix:///absolute/path.sock")
        return f"unix://{path}"
    raise ListenError(f"--listen {listen!r}: use tcp://HOST:PORT or unix:///path.sock, as in coprocess_grpc_server")


@dataclass(frozen=True)
class ServerSettings:
    listen: str = DEFAULT_LISTEN
    manifests: tuple[str, ...] = ()  # none: TYK_AUTH0_MANIFEST's list, else the repository's manifest
    threads: int = 4
    max_concurrent: int = 256
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    token_cache_size: int = 100_000
    grace: float = 10.0
    gateway_url: str = ""
    gateway_secret: str = field(default="", repr=False)  # never in a repr, which may reach a log
    policies_path: str = ""
    metrics_listen: str = ""
    hooks: tuple[str, ...] = ()
    jwks: JwksSettings = JwksSettings()


class DispatcherService(object_pb2_grpc.DispatcherServicer):
    def __init__(self, router: HookRouter) -> None:
        self.router = router
        self.undecodable = UndecodableLog()

    def Dispatch(self, request: Object | Undecodable, context: Any) -> Object:  # noqa: N802 - gRPC method name
        if isinstance(request, Undecodable):
            self._refuse("Dispatch", "coprocess.Object", request, context)
        return self.router.dispatch(request)

    def DispatchEvent(self, request: Event | Undecodable, context: Any) -> EventReply:  # noqa: N802
        if isinstance(request, Undecodable):
            self._refuse("DispatchEvent", "coprocess.Event", request, context)
        log.info("gateway event size=%d", len(request.payload))
        return EventReply()

    def _refuse(self, method: str, what: str, request: Undecodable, context: Any) -> NoReturn:
        self.undecodable.record(method, request.size)
        refuse_undecodable(context, what)


@dataclass
class App:
    """Everything one server process owns, wired once."""

    router: HookRouter
    authenticator: Authenticator
    jwks: JwksCache
    configs: ConfigStore
    metrics: metricslib.Metrics
    hook_log: extensions.HookLog
    hook_sets: tuple[extensions.Hooks, ...] = ()


def build_app(settings: ServerSettings) -> App:
    manifests = manifest_paths(settings.manifests)
    hooks = load_served_hooks(manifests)
    jwks = JwksCache(replace(settings.jwks, waiters=settings.threads - 1))  # one call thread beyond them
    configs = ConfigStore(defaults=server_defaults(os.environ))
    verifier = Verifier(jwks, max_token_bytes=settings.max_token_bytes)
    policy_index = None
    if settings.policies_path:
        policy_index = PolicyIndex(from_path(Path(settings.policies_path)), source=settings.policies_path)
    elif settings.gateway_url and settings.gateway_secret:
        policy_index = PolicyIndex(from_gateway(settings.gateway_url, settings.gateway_secret),
                                   source=gateway_source(settings.gateway_url))
    authenticator = Authenticator(verifier, configs, cache_size=settings.token_cache_size, policy_index=policy_index)
    metrics = metricslib.Metrics()
    hook_sets = extensions.load_all(settings.hooks)
    for problem in extensions.manifest_problems(hook_sets, hooks):
        log.warning("hooks: %s", problem)
    hook_log = extensions.HookLog()
    router = HookRouter(hooks.auth_checks,
                        metrics.instrument_auth(authenticator.authenticate, by_hook_name=len(manifests) > 1),
                        hooks=extensions.as_router_hooks(*hook_sets, on_outcome=metrics.hook_outcome, logs=hook_log),
                        on_outcome=metrics.request)
    metrics.bind(token_cache=lambda: (authenticator.hits, authenticator.misses),
                 jwks_fetches=lambda: (jwks.stats.ok, jwks.stats.failed), jwks_ages=jwks.ages)
    return App(router=router, authenticator=authenticator, jwks=jwks, configs=configs, metrics=metrics,
               hook_log=hook_log, hook_sets=tuple(hook_sets))


def auth_hooks_text(names: frozenset[str]) -> str:
    """``auth hook 'A'``, or ``auth hooks 'A', 'B'`` when several manifests are served."""
    shown = ", ".join(repr(name) for name in sorted(names))
    return f"auth hook {shown}" if len(names) == 1 else f"auth hooks {shown}"


def reload(app: App, settings: ServerSettings) -> None:
    """SIGHUP: re-read what can change without a restart; key sets and in-flight calls are untouched.

    Every manifest's hook names (all of them or, when one cannot be read or they conflict, none:
    the names served stay as they were), every API's parsed config_data (so a rotated secret behind
    ``jwt_source_file`` or ``jwt_source_env`` is read again; verified tokens of the old
    configuration are no longer reachable), and the gateway's policy list. The JWKS cache
    survives, so a reload never costs a fetch.
    """
    try:
        hooks = load_served_hooks(manifest_paths(settings.manifests))
    except ManifestError as exc:
        log.error("reload: %s; keeping %s", exc, auth_hooks_text(app.router.auth_hooks))
    else:
        app.router.auth_hooks = frozenset(hooks.auth_checks)
        for problem in extensions.manifest_problems(app.hook_sets, hooks):
            log.warning("hooks: %s", problem)
    app.configs.clear()
    if app.authenticator.policy_index is not None:
        app.authenticator.policy_index.refresh()
    log.info("reloaded: %s, API configurations will be parsed again, JWKS cache kept",
             auth_hooks_text(app.router.auth_hooks))


_CALL_THREADS = "dispatch"  # the name prefix of the gRPC call threads


class PluginServer:
    def __init__(self, settings: ServerSettings, app: App | None = None) -> None:
        self.settings = settings
        self.app = app or build_app(settings)
        self.health = health.HealthServicer()
        self._executor = futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix=_CALL_THREADS)
        self.server = grpc.server(
            self._executor,
            maximum_concurrent_rpcs=settings.max_concurrent,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.dispatcher = DispatcherService(self.app.router)
        add_dispatcher(self.dispatcher, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        address = grpc_address(settings.listen)
        if address.startswith("unix:"):
            _refuse_a_live_socket(address[len("unix:"):])
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            raise ListenError(f"--listen {settings.listen!r}: cannot bind (address in use, or not an address "
                              "of this host?)") from None
        self.address = address if address.startswith("unix:") else f"{address.rpartition(':')[0]}:{self.port}"
        # A --workers child stops when its supervisor is gone, rather than hold its address forever.
        supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
        self._parent = int(supervisor) if supervisor.isascii() and supervisor.isdigit() else None
        self._stopped = threading.Event()
        self._done = threading.Event()

    def start(self) -> None:
        self.server.start()
        self.app.jwks.start()
        if self.app.authenticator.policy_index is not None:
            self.app.authenticator.policy_index.start()
        self._prefetch_default_tenant()
        self.app.metrics.bind(ready=lambda: (not self._stopped.is_set() and self.app.jwks.ready(),
                                             "stopping" if self._stopped.is_set() else "JWKS not loaded"))
        if self.settings.metrics_listen:
            self.app.metrics.start(*metricslib.parse_listen(self.settings.metrics_listen))
        self.update_health()
        log.info("listening on %s (%s)", self.address, auth_hooks_text(self.app.router.auth_hooks))
        log.info("%s", key_hashing_note(os.environ))

    def _prefetch_default_tenant(self) -> None:
        defaults = self.app.configs.defaults
        if not defaults:
            return
        config = parse_config_data(None, defaults)  # checked by build_app
        for url in config.key_source.jwks_urls:
            self.app.jwks.prefetch(url, config.jwks_cache_ttl, required=True)

    def update_health(self) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if self.app.jwks.ready() else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set("", status)
        self.health.set("coprocess.Dispatcher", status)

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace`` seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(self.settings.grace if grace is None else grace).wait()
        self._executor.shutdown(wait=False, cancel_futures=True)  # idle call threads end; a stuck one is abandoned
        self.app.router.refusals.flush(force=True)
        self.app.hook_log.flush(force=True)
        self.dispatcher.undecodable.flush(force=True)
        self.app.jwks.stop()
        if self.app.authenticator.policy_index is not None:
            self.app.authenticator.policy_index.stop()
        self.app.metrics.stop()
        log.info("stopped")
        self._done.set()

    def calls_running(self, timeout: float) -> int:
        """After stop(): call threads still inside a handler once ``timeout`` more seconds have passed."""
        deadline = time.monotonic() + timeout
        threads = [t for t in threading.enumerate() if t.name.startswith(_CALL_THREADS + "_")]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in threads)

    def wait(self) -> None:
        """Block until stop() has finished; refresh health meanwhile."""
        while not self._done.wait(1.0):
            if self._stopped.is_set():
                continue
            if self._parent is not None and os.getppid() != self._parent:
                log.warning("the --workers supervisor is gone: stopping")
                self.stop()
                continue
            self.update_health()
            self.app.router.refusals.flush()
            self.app.hook_log.flush()
            self.dispatcher.undecodable.flush()


def serve(settings: ServerSettings) -> int:
    try:
        server = PluginServer(settings)
    except extensions.HookError as exc:
        log.error("--hooks (TYK_AUTH0_HOOKS): %s", exc)
        return 2
    except (ListenError, StartupError, ManifestError) as exc:
        log.error("%s", exc)
        return 2

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing in-flight calls", signal.Signals(signum).name)
        threading.Thread(target=server.stop, name="shutdown", daemon=True).start()

    def on_hangup(_signum: int, _frame: Any) -> None:
        threading.Thread(target=reload, args=(server.app, settings), name="reload", daemon=True).start()

    # Before start(): a signal while the first JWKS loads must still stop or reload cleanly.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # held since start-up (cli.main)
    try:
        server.start()
    except OSError as exc:
        log.error("--metrics-listen %s: %s", settings.metrics_listen, exc.strerror or exc)
        server.stop(0)
        return 2
    server.wait()
    stuck = server.calls_running(timeout=1.0)
    if stuck:
        # The interpreter would wait for them at exit, for as long as a hook or a fetch hangs.
        log.warning("%d call(s) still running after the %g s grace period: exiting without them", stuck,
                    settings.grace)
        logging.shutdown()
        os._exit(0)
    return 0


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"", "0", "false", "no", "off"})


def flag_value(value: bool | str, name: str) -> bool:
    """A switch given as a flag (True) or by its environment variable (the variable's text, default
    ""): 1/true/yes/on or 0/false/no/off; anything else is refused, naming the variable."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}={value!r}: expected 1/true/yes/on or 0/false/no/off")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(_LOG_LEVELS)} (from the flag or "
                                         f"TYK_AUTH0_LOG_LEVEL), got {text!r}")
    return level


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def add_cli(subparsers: Any) -> None:
    env = os.environ.get
    parser = subparsers.add_parser("serve", help="run the gRPC plugin server Tyk calls")
    parser.add_argument("--listen", default=env("TYK_AUTH0_LISTEN", DEFAULT_LISTEN), type=_listen_flag,
                        help="tcp://HOST:PORT or unix:///path.sock (env TYK_AUTH0_LISTEN; default %(default)s)")
    parser.add_argument("--manifest", action="append", default=None, metavar="FILE",
                        help="bundle manifest naming the hooks; repeat it to serve the hooks of several manifests "
                             "at once, e.g. the old and the new bundle's while gateways move to a renamed auth hook "
                             f"(env {MANIFEST_ENV}: one path, or several separated by {MANIFEST_SEPARATOR!r} as in "
                             "PATH; flags replace the env; default: the repository's manifest.json, or the same one "
                             "built in when installed)")
    parser.add_argument("--threads", type=bounded(int, 1, "TYK_AUTH0_THREADS"), default=env("TYK_AUTH0_THREADS", "4"),
                        help="gRPC worker threads (env TYK_AUTH0_THREADS; default %(default)s)")
    parser.add_argument("--grace", type=bounded(float, 0, "TYK_AUTH0_GRACE", maximum=MAX_WAIT_SECONDS),
                        default=env("TYK_AUTH0_GRACE", "10"),
                        help="on SIGTERM/SIGINT, seconds in-flight calls may take to finish; the process then exits "
                             "even if a call is still running (env TYK_AUTH0_GRACE; default %(default)s)")
    parser.add_argument("--max-concurrent", type=bounded(int, 1, "TYK_AUTH0_MAX_CONCURRENT"),
                        default=env("TYK_AUTH0_MAX_CONCURRENT", "256"),
                        help="calls admitted at once; beyond it the gateway gets an immediate refusal, not a queue "
                             "(env TYK_AUTH0_MAX_CONCURRENT; default %(default)s)")
    parser.add_argument("--token-cache-size", type=bounded(int, 0, "TYK_AUTH0_TOKEN_CACHE_SIZE"),
                        default=env("TYK_AUTH0_TOKEN_CACHE_SIZE", "100000"),
                        help="verified tokens remembered (by hash); 0 verifies every call "
                             "(env TYK_AUTH0_TOKEN_CACHE_SIZE; default %(default)s)")
    parser.add_argument("--max-token-bytes", type=bounded(int, 1024, "TYK_AUTH0_MAX_TOKEN_BYTES"),
                        default=env("TYK_AUTH0_MAX_TOKEN_BYTES", str(DEFAULT_MAX_TOKEN_BYTES)),
                        help="longest token checked; a longer one is refused before any parsing "
                             "(env TYK_AUTH0_MAX_TOKEN_BYTES; default %(default)s)")
    parser.add_argument("--jwks-min-refetch-interval", type=bounded(float, 0, "TYK_AUTH0_JWKS_MIN_REFETCH_INTERVAL"),
                        default=env("TYK_AUTH0_JWKS_MIN_REFETCH_INTERVAL", "10"),
                        help="seconds between two JWKS fetches of one URL for unknown kids, whatever the traffic "
                             "(env TYK_AUTH0_JWKS_MIN_REFETCH_INTERVAL; default %(default)s)")
    parser.add_argument("--jwks-max-stale", type=bounded(float, 0, "TYK_AUTH0_JWKS_MAX_STALE"),
                        default=env("TYK_AUTH0_JWKS_MAX_STALE", str(6 * 3600)),
                        help="seconds past its TTL a key set keeps serving while the IdP is unreachable "
                             "(env TYK_AUTH0_JWKS_MAX_STALE; default %(default)s)")
    parser.add_argument("--jwks-timeout", type=bounded(float, 0, "TYK_AUTH0_JWKS_TIMEOUT", above=True,
                                                       maximum=MAX_FETCH_TIMEOUT),
                        default=env("TYK_AUTH0_JWKS_TIMEOUT", "3"),
                        help="seconds one JWKS fetch may wait on the IdP (env TYK_AUTH0_JWKS_TIMEOUT; default %(default)s)")
    parser.add_argument("--tyk-gateway-url", default=env("TYK_AUTH0_GATEWAY_URL", ""),
                        help="the gateway's API base URL; with TYK_AUTH0_GATEWAY_SECRET the plugin reads the policy list "
                             "and refuses unknown policies as native JWT does, and starts sessions from the base "
                             "policy's values as native JWT does (env TYK_AUTH0_GATEWAY_URL)")
    parser.add_argument("--tyk-policies", default=env("TYK_AUTH0_POLICIES_PATH", ""),
                        help="or: the gateway's policy_path directory / policy file, read for the same purpose "
                             "(env TYK_AUTH0_POLICIES_PATH)")
    parser.add_argument("--workers", type=bounded(int, 1, "TYK_AUTH0_WORKERS"), default=env("TYK_AUTH0_WORKERS", "1"),
                        help="server processes, one per loopback address from the --listen host up, answered by a "
                             "DNS responder so the gateway can spread calls (env TYK_AUTH0_WORKERS; default %(default)s)")
    parser.add_argument("--pin-workers", action="store_const", const=True, default=env("TYK_AUTH0_PIN_WORKERS", ""),
                        help="hold each worker process to one core, round robin over the cores this process may "
                             "use (env TYK_AUTH0_PIN_WORKERS=true); best where the plugin has cores of its own")
    parser.add_argument("--dns-listen", default=env("TYK_AUTH0_DNS_LISTEN", "127.0.0.1:5554"),
                        help="with --workers > 1: HOST:PORT of the DNS responder (env TYK_AUTH0_DNS_LISTEN; "
                             "default %(default)s)")
    parser.add_argument("--dns-name", type=_dns_name_flag, default=env("TYK_AUTH0_DNS_NAME", DEFAULT_DNS_NAME),
                        help="with --workers > 1: the name it answers (env TYK_AUTH0_DNS_NAME; default %(default)s)")
    metricslib.add_serve_arguments(parser)
    extensions.add_serve_arguments(parser)
    parser.add_argument("--log-level", type=_log_level, default=env("TYK_AUTH0_LOG_LEVEL", "INFO"),
                        help=f"one of {', '.join(_LOG_LEVELS)} (env TYK_AUTH0_LOG_LEVEL; default %(default)s)")
    parser.add_argument("--log-json", action="store_const", const=True, default=env("TYK_AUTH0_LOG_JSON", ""),
                        help="one JSON object per log line (env TYK_AUTH0_LOG_JSON=true)")
    parser.set_defaults(func=_run_serve)


def checked_gateway_access(url: str, secret: str, policies_path: str = "") -> str:
    """The gateway secret to send with ``--tyk-gateway-url``, blanks trimmed (a secret mounted from a
    file often ends in a newline). Errors name the setting and never quote the secret or the URL."""
    secret = secret.strip()
    if not url:
        return secret
    if policies_path:  # one would be ignored, and which one is nowhere to be seen
        raise ValueError("--tyk-policies (TYK_AUTH0_POLICIES_PATH) and --tyk-gateway-url (TYK_AUTH0_GATEWAY_URL) "
                         "are both set: the policy list comes from one of them")
    parts = split_url(url)
    if parts is None:
        raise ValueError("--tyk-gateway-url (TYK_AUTH0_GATEWAY_URL) is not a valid URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("--tyk-gateway-url (TYK_AUTH0_GATEWAY_URL) must be an http(s) URL with a host")
    if "@" in parts.netloc:
        raise ValueError("--tyk-gateway-url (TYK_AUTH0_GATEWAY_URL) carries credentials (user@host); "
                         "the gateway takes its secret from TYK_AUTH0_GATEWAY_SECRET")
    if not secret:
        raise ValueError("--tyk-gateway-url is set but TYK_AUTH0_GATEWAY_SECRET is not: the policy list cannot be read")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in secret):
        raise ValueError("TYK_AUTH0_GATEWAY_SECRET holds a control character; an HTTP header cannot carry it")
    return secret


def _run_serve(args: argparse.Namespace) -> int:
    try:
        args.log_json = flag_value(args.log_json, "TYK_AUTH0_LOG_JSON")
        args.pin_workers = flag_value(args.pin_workers, "TYK_AUTH0_PIN_WORKERS")
    except ValueError as exc:
        logs.setup(args.log_level)
        log.error("%s", exc)
        return 2
    logs.setup(args.log_level, args.log_json)
    try:
        gateway_secret = checked_gateway_access(args.tyk_gateway_url, os.environ.get("TYK_AUTH0_GATEWAY_SECRET", ""),
                                                args.tyk_policies)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    if args.workers > 1:
        return _run_workers(args)
    cpu = pin_this_process(os.environ, args.pin_workers)
    if cpu is not None:
        log.info("pinned to cpu %d", cpu)
    jwks = JwksSettings(fetch_timeout=args.jwks_timeout, min_refetch_interval=args.jwks_min_refetch_interval,
                        max_stale=args.jwks_max_stale)
    return serve(ServerSettings(listen=args.listen, manifests=tuple(args.manifest or ()), threads=args.threads, jwks=jwks, grace=args.grace,
                                max_concurrent=args.max_concurrent, token_cache_size=args.token_cache_size,
                                max_token_bytes=args.max_token_bytes, gateway_url=args.tyk_gateway_url, gateway_secret=gateway_secret,
                                policies_path=args.tyk_policies, metrics_listen=args.metrics_listen,
                                hooks=tuple(extensions.hook_targets(args))))


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The ``serve`` flags each worker gets (the supervisor adds its --listen); the environment is inherited."""
    argv = ["--threads", str(args.threads), "--max-concurrent", str(args.max_concurrent), "--grace", str(args.grace),
            "--token-cache-size", str(args.token_cache_size), "--max-token-bytes", str(args.max_token_bytes),
            "--jwks-min-refetch-interval", str(args.jwks_min_refetch_interval),
            "--jwks-max-stale", str(args.jwks_max_stale), "--jwks-timeout", str(args.jwks_timeout),
            "--log-level", args.log_level, "--workers", "1",
            "--tyk-gateway-url", args.tyk_gateway_url, "--tyk-policies", args.tyk_policies,
            "--metrics-listen", ""]  # replaced per worker when metrics are on: worker i on PORT+i
    for target in extensions.hook_targets(args):
        argv += ["--hooks", target]
    for manifest in args.manifest or ():
        argv += ["--manifest", manifest]
    if args.log_json:
        argv.append("--log-json")
    return argv


def _run_workers(args: argparse.Namespace) -> int:
    try:
        address = grpc_address(args.listen)
        if address.startswith("unix:"):
            raise ListenError("--workers needs a tcp:// --listen address")
        host, _, port = address.rpartition(":")
        if int(port) == 0:  # each worker would take another free port, and the name cannot say which
            raise ListenError("--workers needs a fixed --listen port, not 0: every worker listens on it and "
                              "coprocess_grpc_server names it")
        addresses = worker_addresses(host, args.workers)
        metrics = metricslib.parse_listen(args.metrics_listen) if args.metrics_listen else None
        if metrics is not None and metrics[1] == 0:  # worker i serves PORT+i: 0, then 1, 2, ... are no choice
            raise ValueError(f"--metrics-listen {args.metrics_listen}: --workers needs a fixed metrics port, not 0: "
                             "worker i serves its metrics on PORT+i")
        if metrics is not None and metrics[1] + args.workers - 1 > 65535:
            raise ValueError(f"--metrics-listen {args.metrics_listen}: {args.workers} workers need ports "
                             f"{metrics[1]}..{metrics[1] + args.workers - 1}")
    except (ListenError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    dns_host, _, dns_port = args.dns_listen.rpartition(":")
    try:
        if not dns_host or not is_port(dns_port):
            raise ValueError("expected HOST:PORT")
        responder = DnsResponder(dns_host, int(dns_port), args.dns_name, addresses)
    except (ValueError, OSError) as exc:
        log.error("--dns-listen %s (from the flag or TYK_AUTH0_DNS_LISTEN): %s", args.dns_listen,
                  getattr(exc, "strerror", None) or exc)
        return 2
    responder.start()
    supervisor = Supervisor(addresses=addresses, port=int(port), argv=worker_argv(args),
                            cpus=allowed_cpus() if args.pin_workers else None, metrics=metrics)
    log.info("%d workers on %s port %s; in tyk.conf coprocess_options set coprocess_grpc_server "
             "\"dns://%s:%d/%s:%s\" and grpc_round_robin_load_balancing true",
             args.workers, ",".join(addresses), port, dns_host, responder.port, args.dns_name, port)

    def on_signal(signum: int, _frame: Any) -> None:
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda _s, _f: supervisor.reload())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # held since start-up (cli.main)
    try:
        return supervisor.run()
    finally:
        responder.stop()
