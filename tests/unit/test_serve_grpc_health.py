"""gRPC health of GrpcServer over a real channel: the names it answers for, and when."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from test_coordinator.entrypoints.grpc_server import SERVICE_NAME, GrpcServer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NOT_FOUND = "NOT_FOUND"
PUBLISHED = ("test-coordinator", "test-coordinator-Chaos1")
EVERY_NAME = ("", SERVICE_NAME, *PUBLISHED)


async def check(stub: health_pb2_grpc.HealthStub, name: str) -> object:
    """The status health answers for ``name``, or NOT_FOUND."""
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        return NOT_FOUND
    return reply.status


async def statuses(stub: health_pb2_grpc.HealthStub, names: Sequence[str]) -> list[object]:
    return [await check(stub, name) for name in names]


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    grpc_server = GrpcServer("127.0.0.1", 0, health_names=PUBLISHED)
    await grpc_server.start()
    try:
        yield grpc_server
    finally:
        await grpc_server.stop(0)


@pytest.fixture
async def stub(server: GrpcServer) -> AsyncIterator[health_pb2_grpc.HealthStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield health_pb2_grpc.HealthStub(channel)


async def test_every_published_name_is_serving_once_ready(
    server: GrpcServer, stub: health_pb2_grpc.HealthStub
) -> None:
    """The whole server (""), the gRPC service, the service and its instance."""
    await server.set_serving(True)

    assert [SERVING] * 4 == await statuses(stub, EVERY_NAME)
    assert NOT_FOUND == await check(stub, "exchange-simulator")


async def test_named_services_are_known_but_not_serving_before_ready(
    stub: health_pb2_grpc.HealthStub,
) -> None:
    assert [NOT_SERVING] * 3 == await statuses(stub, EVERY_NAME[1:])


async def test_every_name_stops_serving_at_shutdown(
    server: GrpcServer, stub: health_pb2_grpc.HealthStub
) -> None:
    await server.set_serving(True)
    await server.set_serving(False)

    assert [NOT_SERVING] * 4 == await statuses(stub, EVERY_NAME)


async def test_watch_by_the_service_name_sees_it_become_serving(
    server: GrpcServer, stub: health_pb2_grpc.HealthStub
) -> None:
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="test-coordinator"), timeout=5)
    first = await watch.read()
    await server.set_serving(True)
    second = await watch.read()
    watch.cancel()

    assert (NOT_SERVING, SERVING) == (first.status, second.status)


async def test_an_instance_named_like_its_service_is_published_once() -> None:
    grpc_server = GrpcServer("127.0.0.1", 0, health_names=("test-coordinator", "test-coordinator"))

    assert ("", SERVICE_NAME, "test-coordinator") == grpc_server.health_names
    await grpc_server.stop(0)


async def test_without_names_only_the_server_and_the_grpc_service_answer() -> None:
    """Other callers (the sample services) keep what they had."""
    grpc_server = GrpcServer("127.0.0.1", 0)
    await grpc_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await grpc_server.set_serving(True)
            answers = await statuses(stub, EVERY_NAME)
    finally:
        await grpc_server.stop(0)

    assert [SERVING, SERVING, NOT_FOUND, NOT_FOUND] == answers
