"""``serve`` publishes gRPC health under the names its settings give it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.service_process import start_service
from test_coordinator.entrypoints.grpc_server import SERVICE_NAME

pytestmark = pytest.mark.slow


async def check_all(port: int, names: list[str]) -> dict[str, str]:
    answers: dict[str, str] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in names:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                answers[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as exc:
                answers[name] = exc.code().name
    return answers


def test_service_and_instance_names_are_serving(tmp_path: Path) -> None:
    service = start_service(tmp_path, {"SERVICE_INSTANCE_NAME": "test-coordinator-Chaos1"})
    try:
        names = ["", SERVICE_NAME, "test-coordinator", "test-coordinator-Chaos1", "other"]
        answers = asyncio.run(check_all(service.grpc_port, names))
    finally:
        service.stop()

    assert {
        "": "SERVING",
        SERVICE_NAME: "SERVING",
        "test-coordinator": "SERVING",
        "test-coordinator-Chaos1": "SERVING",
        "other": "NOT_FOUND",
    } == answers
