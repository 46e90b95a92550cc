"""The real server on a real socket, started as an operator starts it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest

from plugin.coprocess import HookType, object_pb2_grpc
from plugin.devstack.idp import DPoPKey
from tests.integration.conftest import ROOT, ServerProcess, free_port
from tests.support import tokens as t
from tests.support.objects import auth_object


def config_for(jwks_server) -> str:
    return json.dumps({"jwt_source": jwks_server.url, "issuer": t.ISSUER, "audience": t.AUDIENCE})


def call(channel, obj, timeout=10):
    return object_pb2_grpc.DispatcherStub(channel).Dispatch(obj, timeout=timeout)


def test_valid_token_over_tcp_gets_a_session(server, jwks_server, keys):
    reply = call(server.channel, auth_object("Bearer " + t.sign(keys[0]), config=config_for(jwks_server)))
    assert reply.request.return_overrides.response_code == -1
    assert list(reply.session.apply_policies) == ["auth0-policy"]


def test_server_listens_on_a_unix_socket(tmp_path, jwks_server, keys):
    path = tmp_path / "plugin.sock"
    proc = ServerProcess(f"unix://{path}")
    try:
        reply = call(proc.channel, auth_object("Bearer " + t.sign(keys[0]), config=config_for(jwks_server)))
        assert reply.request.return_overrides.response_code == -1
    finally:
        proc.stop()


def test_after_a_rotation_the_new_key_passes_and_the_retired_one_is_refused(jwks_server, keys):
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", env={"TYK_AUTH0_JWKS_MIN_REFETCH_INTERVAL": "0.2"})
    try:
        config = config_for(jwks_server)
        assert call(proc.channel, auth_object("Bearer " + t.sign(keys[0]), config=config)).request.return_overrides.response_code == -1
        newest = t.rsa_key("newest")
        jwks_server.keys = [keys[1], newest]  # Auth0 rotate: next becomes current, a new next appears
        time.sleep(0.3)  # let the refetch cooldown pass
        assert call(proc.channel, auth_object("Bearer " + t.sign(newest), config=config)).request.return_overrides.response_code == -1
        assert call(proc.channel, auth_object("Bearer " + t.sign(keys[1]), config=config)).request.return_overrides.response_code == -1
        assert jwks_server.fetches == 2  # the load, then one refetch for the new kid; the promoted key needed none
        # Whether the retired kid costs one more refetch depends on how soon it comes after the cooldown:
        # only its refusal is asserted.
        retired = t.sign(keys[0], t.claims(sub="after-rotation"))
        assert call(proc.channel, auth_object("Bearer " + retired, config=config)).request.return_overrides.response_code == 403
    finally:
        proc.stop()


def test_a_key_never_seen_before_is_found_by_one_refetch_after_the_cooldown(jwks_server, keys):
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", env={"TYK_AUTH0_JWKS_MIN_REFETCH_INTERVAL": "1"})
    try:
        config = config_for(jwks_server)
        call(proc.channel, auth_object("Bearer " + t.sign(keys[0]), config=config))
        surprise = t.rsa_key("surprise")
        jwks_server.keys.append(surprise)
        time.sleep(1.1)  # let the refetch cooldown pass
        reply = call(proc.channel, auth_object("Bearer " + t.sign(surprise), config=config))
        assert reply.request.return_overrides.response_code == -1
        assert jwks_server.fetches == 2
    finally:
        proc.stop()


def test_a_flood_of_unknown_kids_costs_the_idp_one_fetch(jwks_server, keys):
    # A refetch interval far longer than the flood: the count cannot depend on how fast the calls run.
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", env={"TYK_AUTH0_JWKS_MIN_REFETCH_INTERVAL": "60"})
    try:
        config = config_for(jwks_server)
        for i in range(50):  # the first bogus kid finds the tenant cold and loads its keys
            forged = t.raw_token({"alg": "RS256", "kid": f"bogus-{i}"}, t.claims())
            reply = call(proc.channel, auth_object("Bearer " + forged, config=config))
            assert reply.request.return_overrides.response_code == 403
        assert jwks_server.fetches == 1
    finally:
        proc.stop()


def test_health_service_reports_serving(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    response = health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def refuses_new_calls(channel):
    """The server has stopped taking calls: a new one is refused as unavailable."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    except grpc.RpcError as exc:
        return exc.code() is grpc.StatusCode.UNAVAILABLE
    return False


def test_sigterm_lets_in_flight_calls_finish(jwks_server, keys):
    jwks_server.hold = threading.Event()  # the cold JWKS fetch keeps the call in flight until released
    # Grace and the fetch's wait far beyond the test's own 10 s polls, so a loaded machine cannot end
    # the call before the hold is released.
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", args=("--grace", "60", "--jwks-timeout", "20"))
    results: list[object] = []

    def slow_call() -> None:
        results.append(call(proc.channel, auth_object("Bearer " + t.sign(keys[0]), config=config_for(jwks_server))))

    worker = threading.Thread(target=slow_call)
    worker.start()
    try:
        deadline = time.time() + 10
        while jwks_server.fetches < 1 and time.time() < deadline:
            time.sleep(0.01)
        assert jwks_server.fetches == 1  # the call is now waiting on the held fetch
        proc.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while not refuses_new_calls(proc.channel) and time.time() < deadline:
            time.sleep(0.01)
        assert refuses_new_calls(proc.channel)  # the SIGTERM is being handled: the server is stopping
        assert worker.is_alive() and not results  # with the call still in flight
    finally:
        jwks_server.hold.set()
        worker.join(timeout=15)
        code, stderr = proc.stop()
    assert results and results[0].request.return_overrides.response_code == -1
    assert code == 0
    assert "finishing in-flight calls" in stderr


def test_logs_never_contain_the_token(jwks_server, keys):
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", env={"TYK_AUTH0_LOG_LEVEL": "DEBUG"})
    tokens = [t.sign(keys[0]), t.sign(keys[0], t.claims(exp=1)), t.sign(t.rsa_key("x")), "garbage.token.value"]
    for token in tokens:
        call(proc.channel, auth_object("Bearer " + token, config=config_for(jwks_server)))
    _, stderr = proc.stop()
    for token in tokens:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in stderr


def test_bad_listen_address_is_refused_naming_the_flag():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "plugin", "serve", "--listen", "127.0.0.1:5555"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--listen" in result.stderr


def test_health_is_not_serving_until_the_default_tenant_keys_load(jwks_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    jwks_server.status = 503
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", env={"AUTH0_JWT_SOURCE": jwks_server.url})
    try:
        stub = health_pb2_grpc.HealthStub(proc.channel)
        check = lambda: stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status  # noqa: E731
        assert check() == health_pb2.HealthCheckResponse.NOT_SERVING
        jwks_server.status = 200
        deadline = time.time() + 15
        while check() != health_pb2.HealthCheckResponse.SERVING and time.time() < deadline:
            time.sleep(0.2)
        assert check() == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.stop()


def test_saturation_is_answered_at_once_not_queued(jwks_server, keys):
    jwks_server.hold = threading.Event()  # every admitted call waits on the cold JWKS fetch until released
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", env={"TYK_AUTH0_MAX_CONCURRENT": "2"})
    try:
        stub = object_pb2_grpc.DispatcherStub(proc.channel)
        obj = auth_object("Bearer " + t.sign(keys[0]), config=config_for(jwks_server))
        futures = [stub.Dispatch.future(obj, timeout=20) for _ in range(8)]
        deadline = time.time() + 10
        while sum(f.done() for f in futures) < 6 and time.time() < deadline:
            time.sleep(0.01)
        refused = [f for f in futures if f.done()]
        # Answered while the admitted calls still wait on the held fetch: refused, not queued behind it.
        assert len(refused) == 6
        assert all(f.code() is grpc.StatusCode.RESOURCE_EXHAUSTED for f in refused)
        jwks_server.hold.set()
        admitted = [f for f in futures if f not in refused]
        assert [f.result().request.return_overrides.response_code for f in admitted] == [-1, -1]
    finally:
        if jwks_server.hold is not None:
            jwks_server.hold.set()
        proc.stop()


def test_sighup_rereads_configuration_and_keeps_the_jwks_cache(tmp_path, jwks_server, keys):
    import base64
    import hashlib
    import hmac as hmaclib

    secret_file = tmp_path / "hmac-secret"
    secret_file.write_text(base64.b64encode(b"first-secret").decode())
    config = json.dumps({"jwt_signing_method": "hmac", "jwt_source_file": str(secret_file),
                         "jwt_default_policies": ["p"]})
    jwks_config = config_for(jwks_server)

    def hs256(secret: bytes) -> str:
        head = t.b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = t.b64url(json.dumps(t.claims()).encode())
        signature = hmaclib.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{t.b64url(signature)}"

    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}")
    try:
        def code(token: str, cfg: str = config) -> int:
            return call(proc.channel, auth_object("Bearer " + token, config=cfg)).request.return_overrides.response_code
        assert code(t.sign(keys[0]), jwks_config) == -1
        fetches = jwks_server.fetches
        assert code(hs256(b"first-secret")) == -1
        secret_file.write_text(base64.b64encode(b"second-secret").decode())
        assert code(hs256(b"second-secret")) == 403  # not re-read yet
        proc.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while code(hs256(b"second-secret")) != -1 and time.time() < deadline:
            time.sleep(0.1)
        assert code(hs256(b"second-secret")) == -1
        assert code(hs256(b"first-secret")) == 403
        assert code(t.sign(keys[0]), jwks_config) == -1
        assert jwks_server.fetches == fetches  # the key set survived the reload
    finally:
        _, stderr = proc.stop()
    assert "reloaded" in stderr


def _serve(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "plugin", "serve", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ, **(env or {})))


def test_a_port_in_use_is_refused_naming_the_flag(server):
    result = _serve("--listen", server.listen)
    assert result.returncode == 2
    assert "--listen" in result.stderr and "cannot bind" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_unix_socket_another_server_answers_on_is_not_taken_over(tmp_path):
    path = tmp_path / "plugin.sock"
    first = ServerProcess(f"unix://{path}")
    try:
        result = _serve("--listen", f"unix://{path}")
        assert result.returncode == 2
        assert "another server is listening" in result.stderr
        assert call(first.channel, auth_object("Bearer x")).request.return_overrides.response_code == 403
    finally:
        first.stop()


def test_a_hooks_file_that_raises_on_import_stops_the_start_naming_the_site_not_the_message(tmp_path):
    hooks = tmp_path / "leaky_hooks.py"
    hooks.write_text("import os\n\nraise RuntimeError('secret-in-import-error')\n")
    result = _serve("--listen", f"tcp://127.0.0.1:{free_port()}", "--hooks", str(hooks))
    assert result.returncode == 2
    assert f"cannot load hooks from {hooks}: RuntimeError at leaky_hooks.py:3" in result.stderr
    assert "secret-in-import-error" not in result.stderr and "Traceback" not in result.stderr


def test_a_gateway_url_without_its_secret_is_refused():
    result = _serve("--listen", f"tcp://127.0.0.1:{free_port()}", "--tyk-gateway-url", "http://127.0.0.1:8080",
                    env={"TYK_AUTH0_GATEWAY_SECRET": ""})
    assert result.returncode == 2
    assert "TYK_AUTH0_GATEWAY_SECRET" in result.stderr


def test_a_bad_server_wide_auth0_variable_stops_the_start_naming_it():
    result = _serve("--listen", f"tcp://127.0.0.1:{free_port()}",
                    env={"AUTH0_DOMAIN": "tenant.example.auth0.com", "AUTH0_JWT_SIGNING_METHOD": "RS256"})
    assert result.returncode == 2
    assert "AUTH0_JWT_SIGNING_METHOD" in result.stderr


def test_stopping_a_server_frees_its_metrics_port():
    import socket

    from plugin.server import PluginServer, ServerSettings

    metrics_port = free_port()
    settings = ServerSettings(listen=f"tcp://127.0.0.1:{free_port()}", manifests=(str(ROOT / "manifest.json"),),
                              metrics_listen=f"127.0.0.1:{metrics_port}")
    for _ in range(2):  # the second start binds the same metrics port again
        server = PluginServer(settings)
        server.start()
        socket.create_connection(("127.0.0.1", metrics_port), timeout=5).close()
        server.stop(0)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", metrics_port), timeout=5)


def test_a_call_stuck_past_the_grace_period_does_not_keep_the_process_alive(tmp_path):
    entered = tmp_path / "entered"
    hooks = tmp_path / "stuck_hooks.py"
    hooks.write_text("import pathlib, time\nfrom plugin.extensions import Hooks\nhooks = Hooks()\n\n"
                     "@hooks.pre('Stuck')\ndef stuck(request, session, metadata, spec):\n"
                     f"    pathlib.Path({str(entered)!r}).touch()\n    time.sleep(120)\n")
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}",
                         env={"TYK_AUTH0_HOOKS": str(hooks), "TYK_AUTH0_GRACE": "0.5"})
    stub = object_pb2_grpc.DispatcherStub(proc.channel)
    pending = stub.Dispatch.future(auth_object("Bearer x", hook_name="Stuck", hook_type=HookType.Pre))
    deadline = time.monotonic() + 15
    while not entered.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert entered.exists()
    code, stderr = proc.stop()  # SIGTERM; stop() gives up after 20 s, long before the hook's 120 s
    assert code == 0
    assert "1 call(s) still running after the 0.5 s grace period: exiting without them" in stderr
    with pytest.raises(grpc.RpcError):
        pending.result(timeout=5)


def test_bytes_that_are_not_a_coprocess_message_are_refused_as_invalid_argument_and_summed_in_the_log(jwks_server,
                                                                                                       keys):
    not_an_object = b"\x08\x01\x12\x07secret\xff"  # a Pre call whose hook name is not UTF-8
    not_an_event = b"\x0a\x07secret\xff"  # an event whose payload is not UTF-8
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}")
    try:
        for method, raw, what in (("Dispatch", not_an_object, "coprocess.Object"),
                                  ("DispatchEvent", not_an_event, "coprocess.Event")):
            send = proc.channel.unary_unary(f"/coprocess.Dispatcher/{method}")  # bytes as they are
            for _ in range(20):
                with pytest.raises(grpc.RpcError) as refused:
                    send(raw, timeout=10)
                assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert refused.value.details() == f"request is not a valid {what}"
        reply = call(proc.channel, auth_object("Bearer " + t.sign(keys[0]), config=config_for(jwks_server)))
        assert reply.request.return_overrides.response_code == -1
    finally:
        _, stderr = proc.stop()
    assert "Traceback" not in stderr and "deserializing" not in stderr and "secret" not in stderr
    lines = [line for line in stderr.splitlines() if "undecodable calls" in line]
    assert 2 <= len(lines) <= 3  # the first at once, then sums (every 10 s and at shutdown), not one per call
    counts = [int(n) for line in lines for n in re.findall(r"count=(\d+)", line)]
    assert sum(counts) == 40


def test_a_3_mib_body_through_a_post_key_auth_hook_fits_the_gateways_default_4_mib_reply_limit(server):
    # gRPC clients, the gateway's and this one, accept replies of up to 4 MiB unless told otherwise.
    obj = auth_object("Bearer x", hook_name="Auth0ClaimsToHeaders", hook_type=HookType.PostKeyAuth)
    body = "a" * (3 * 1024 * 1024)
    obj.request.raw_body, obj.request.body = body.encode(), body  # as the gateway sends a UTF-8 body
    reply = call(server.channel, obj)
    assert reply.request.raw_body == body.encode() and reply.request.return_overrides.response_code == -1


def test_hooks_that_cannot_load_are_refused_naming_the_flag(tmp_path):
    result = _serve("--listen", f"tcp://127.0.0.1:{free_port()}", "--hooks", str(tmp_path / "missing_hooks.py"))
    assert result.returncode == 2
    assert "--hooks (TYK_AUTH0_HOOKS): hooks file" in result.stderr


# -- several manifests -------------------------------------------------------------------------------


def write_manifest(path, auth_check: str, **slots: list[str]):
    middleware = {"driver": "grpc", "auth_check": {"name": auth_check},
                  **{slot: [{"name": name} for name in names] for slot, names in slots.items()}}
    path.write_text(json.dumps({"file_list": [], "custom_middleware": middleware}))
    return path


def test_one_server_answers_the_auth_hooks_of_two_manifests(tmp_path, jwks_server, keys):
    old = write_manifest(tmp_path / "old.json", "Auth0JWTAuthCheck")
    new = write_manifest(tmp_path / "new.json", "Auth0JWTAuthCheckV2")
    metrics = f"127.0.0.1:{free_port()}"
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", args=("--manifest", str(old), "--manifest", str(new),
                                                                  "--metrics-listen", metrics))
    try:
        def answer(hook: str) -> tuple[int, list[str]]:
            reply = call(proc.channel, auth_object("Bearer " + t.sign(keys[0]), config=config_for(jwks_server),
                                                   hook_name=hook))
            return reply.request.return_overrides.response_code, list(reply.session.apply_policies)
        assert answer("Auth0JWTAuthCheck") == (-1, ["auth0-policy"])
        assert answer("Auth0JWTAuthCheckV2") == (-1, ["auth0-policy"])
        assert answer("Auth0JWTAuthCheckV3") == (403, [])
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as response:
            exported = response.read().decode()
        assert 'tyk_auth0_auth_hook_calls_total{name="Auth0JWTAuthCheck"} 1.0' in exported
        assert 'tyk_auth0_auth_hook_calls_total{name="Auth0JWTAuthCheckV2"} 1.0' in exported
        assert "Auth0JWTAuthCheckV3" not in exported
    finally:
        _, stderr = proc.stop()
    assert "(auth hooks 'Auth0JWTAuthCheck', 'Auth0JWTAuthCheckV2')" in stderr


def test_sighup_rereads_every_manifest_the_variable_lists(tmp_path):
    import os

    old = write_manifest(tmp_path / "old.json", "Auth0JWTAuthCheck")
    new = write_manifest(tmp_path / "new.json", "Auth0JWTAuthCheckV2")
    proc = ServerProcess(f"tcp://127.0.0.1:{free_port()}", env={"TYK_AUTH0_MANIFEST": f"{old}{os.pathsep}{new}"})
    try:
        def served(hook: str) -> bool:
            # No key set: a served name reaches the auth check (500, no config); another is refused 403.
            reply = call(proc.channel, auth_object("Bearer x", hook_name=hook, with_config=False))
            return reply.request.return_overrides.response_code != 403
        assert served("Auth0JWTAuthCheck") and served("Auth0JWTAuthCheckV2")
        write_manifest(old, "Auth0JWTAuthCheckV2")  # every gateway moved on: the old name is dropped
        write_manifest(new, "Auth0JWTAuthCheckV3")
        proc.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while served("Auth0JWTAuthCheck") and time.time() < deadline:
            time.sleep(0.1)
        assert not served("Auth0JWTAuthCheck")
        assert served("Auth0JWTAuthCheckV2") and served("Auth0JWTAuthCheckV3")
    finally:
        _, stderr = proc.stop()
    assert "reloaded: auth hooks 'Auth0JWTAuthCheckV2', 'Auth0JWTAuthCheckV3'" in stderr


def test_manifests_giving_one_name_two_meanings_stop_the_start_naming_the_files(tmp_path):
    old = write_manifest(tmp_path / "old.json", "Auth0JWTAuthCheck")
    new = write_manifest(tmp_path / "new.json", "Auth0JWTAuthCheckV2", pre=["Auth0JWTAuthCheck"])
    result = _serve("--listen", f"tcp://127.0.0.1:{free_port()}", "--manifest", str(old), "--manifest", str(new))
    assert result.returncode == 2
    assert (f"hook 'Auth0JWTAuthCheck' is the auth_check in manifest {old} but a pre hook in manifest {new}"
            in result.stderr)
    assert "Traceback" not in result.stderr


DPOP_URL = "http://127.0.0.1:8080/auth0-plugin/get"  # the request auth_object builds


def dpop_call(server, jwks_server, token: str, proof: str):
    config = json.dumps({**json.loads(config_for(jwks_server)), "dpop": "required"})
    obj = auth_object(f"DPoP {token}", config=config)
    obj.request.headers["Dpop"] = proof
    return call(server.channel, obj)


def test_a_dpop_bound_token_with_its_proof_gets_a_session_the_gateway_never_reuses(server, jwks_server, keys):
    client = DPoPKey.generate()
    token = t.sign(keys[0], t.claims(cnf={"jkt": client.thumbprint}))
    reply = dpop_call(server, jwks_server, token, client.proof("GET", DPOP_URL, token))
    assert reply.request.return_overrides.response_code == -1
    assert list(reply.session.apply_policies) == ["auth0-policy"]
    assert reply.session.id_extractor_deadline == 0


def test_a_replayed_dpop_proof_is_refused_with_the_dpop_challenge(server, jwks_server, keys):
    client = DPoPKey.generate()
    token = t.sign(keys[0], t.claims(cnf={"jkt": client.thumbprint}))
    proof = client.proof("GET", DPOP_URL, token)
    dpop_call(server, jwks_server, token, proof)
    overrides = dpop_call(server, jwks_server, token, proof).request.return_overrides
    assert (overrides.response_code, overrides.response_error) == (401, "Key not authorized: DPoP proof has already been used")
    assert overrides.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
