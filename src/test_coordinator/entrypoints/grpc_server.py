"""The gRPC server: standard health (Check and Watch) and server reflection.

Health answers for the whole server (``""``), for SERVICE_NAME, and for the
names a caller publishes (the service's own name and its instance's name), so a
client may ask by whichever name it knows the service by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

SERVICE_NAME = "test_coordinator.TestCoordinator"


class GrpcServer:
    """A grpc.aio server whose health follows the service's lifecycle."""

    def __init__(
        self,
        host: str,
        port: int,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        *,
        health_names: Iterable[str] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """``health_names``: more names health answers for, beside ``""`` and SERVICE_NAME;
        each is NOT_SERVING until ``set_serving(True)``. ``options``: the server's channel
        options (message size limits)."""
        self._server = grpc.aio.server(interceptors=list(interceptors), options=list(options))
        self.health = health.aio.HealthServicer()
        self.health_names: tuple[str, ...] = tuple(dict.fromkeys(("", SERVICE_NAME, *health_names)))
        self._serving: bool | None = None
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._reflected = [
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ]
        address = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"gRPC could not bind {host}:{port}")

    def add_service(self, register: Callable[[grpc.aio.Server], str]) -> None:
        """Add a service before :meth:`start`: ``register`` adds it to the server and returns
        its full name, which reflection lists and health answers for."""
        name = register(self._server)
        self._reflected.append(name)
        self.health_names = (*self.health_names, name)

    async def start(self) -> None:
        reflection.enable_server_reflection(self._reflected, self._server)
        # The published names are known from the first RPC: NOT_SERVING until
        # set_serving(True), rather than NOT_FOUND ("" starts SERVING, as it always did).
        if self._serving is None:
            for name in self.health_names[1:]:
                await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.start()

    async def set_serving(self, serving: bool) -> None:
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self.health_names:
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Refuse new RPCs and let in-flight ones finish within ``grace_s``."""
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
