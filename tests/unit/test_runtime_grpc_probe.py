"""The gRPC health probe against a real in-process grpc.aio health server."""

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.runtime.probes import GrpcHealthProbe

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthServer:
    """A grpc.aio server with the standard health service, on a fixed port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
            self.server = None


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    running = HealthServer(free_port())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def probe(server: HealthServer) -> AsyncIterator[GrpcHealthProbe]:
    checker = GrpcHealthProbe(f"127.0.0.1:{server.port}", service="orders", timeout_s=1.0)
    try:
        yield checker
    finally:
        await checker.aclose()


async def test_serving_is_ok(server: HealthServer, probe: GrpcHealthProbe) -> None:
    await server.health.set("orders", SERVING)

    result = await probe.check()

    assert (result.ok, result.value) == (True, "SERVING")


async def test_not_serving_fails_with_the_status(
    server: HealthServer, probe: GrpcHealthProbe
) -> None:
    await server.health.set("orders", NOT_SERVING)

    result = await probe.check()

    assert (result.ok, result.value) == (False, "NOT_SERVING")
    assert "NOT_SERVING, expected SERVING" in result.detail


async def test_unknown_service_fails(probe: GrpcHealthProbe) -> None:
    """The health service answers NOT_FOUND for a service it does not know."""
    result = await probe.check()

    assert not result.ok
    assert "NOT_FOUND" in result.detail


async def test_back_at_once_after_the_server_returns(
    server: HealthServer, probe: GrpcHealthProbe
) -> None:
    """After failures, the next check connects anew instead of waiting out gRPC's backoff."""
    await server.health.set("orders", SERVING)
    assert (await probe.check()).ok
    await server.stop()
    for _ in range(3):
        assert not (await probe.check()).ok

    await server.start()
    await server.health.set("orders", SERVING)
    result = await probe.check()

    assert result.ok, result.detail
