from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import grpc_testing
import pytest

from plugin.auth import Authenticator, ConfigStore
from plugin.coprocess import Object, object_pb2
from plugin.hooks import HookRouter
from plugin.jwks import JwksCache, JwksSettings
from plugin.server import DispatcherService
from plugin.verify import Verifier
from tests.support.objects import AUTH_HOOK
from tests.support.tokens import FakeJwks, SigningKey, rsa_key

_SERVICE = object_pb2.DESCRIPTOR.services_by_name["Dispatcher"]


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return rsa_key("key-current")


@pytest.fixture(scope="session")
def next_key() -> SigningKey:
    return rsa_key("key-next")


@pytest.fixture()
def idp(signing_key: SigningKey, next_key: SigningKey) -> FakeJwks:
    return FakeJwks(keys=[signing_key, next_key])


@dataclass
class Plugin:
    """The servicer behind grpcio-testing's mock channel: calls go through real gRPC method handlers."""

    server: grpc_testing.Server
    authenticator: Authenticator
    jwks: JwksCache

    def dispatch(self, obj: Object) -> Object:
        call = self.server.invoke_unary_unary(_SERVICE.methods_by_name["Dispatch"], (), obj, None)
        reply, _, code, _ = call.termination()
        assert code is grpc.StatusCode.OK
        return reply

    def dispatch_event(self, payload: str) -> object:
        call = self.server.invoke_unary_unary(
            _SERVICE.methods_by_name["DispatchEvent"], (), object_pb2.Event(payload=payload), None)
        reply, _, code, _ = call.termination()
        assert code is grpc.StatusCode.OK
        return reply


@pytest.fixture()
def make_plugin(idp: FakeJwks) -> Callable[..., Plugin]:
    def make(clock: Callable[[], float] | None = None, defaults: dict | None = None,
             settings: JwksSettings | None = None) -> Plugin:
        jwks = JwksCache(settings or JwksSettings(min_refetch_interval=10.0), fetcher=idp)
        verifier = Verifier(jwks, clock=clock or time.time)
        authenticator = Authenticator(verifier, ConfigStore(defaults=defaults or {}), clock=clock or time.time)
        router = HookRouter(AUTH_HOOK, authenticator.authenticate)
        server = grpc_testing.server_from_dictionary({_SERVICE: DispatcherService(router)},
                                                     grpc_testing.strict_real_time())
        return Plugin(server=server, authenticator=authenticator, jwks=jwks)

    return make


@pytest.fixture()
def plugin(make_plugin: Callable[..., Plugin]) -> Plugin:
    return make_plugin()
