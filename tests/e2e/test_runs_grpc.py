"""A whole run driven through the gRPC client against `test-coordinator serve`: started,
watched event by event until its verdict, then read back; health and reflection beside it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from support.run_scenarios import QUICK_RESTART
from support.service_process import ServiceProcess, start_service
from test_coordinator.client import CoordinatorClient
from test_coordinator.client.grpc_client import PermissionDenied, Unauthenticated
from test_coordinator.ports.storage import RunStatus

pytestmark = pytest.mark.slow

TOKEN = "grpc-e2e-token"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    library = tmp_path / "library"
    library.mkdir()
    (library / "quick-restart.yaml").write_text(QUICK_RESTART)
    svc = start_service(
        tmp_path / "svc",
        {
            "SCENARIO_DIR": str(library),
            "REPORTS_DIR": str(tmp_path / "reports"),
            "API_TOKEN": TOKEN,
            "SERVICE_INSTANCE_NAME": "test-coordinator-Chaos1",
        },
    )
    yield svc
    svc.stop(timeout_s=20)


async def test_a_run_is_driven_through_grpc_to_its_verdict(service: ServiceProcess) -> None:
    target = f"127.0.0.1:{service.grpc_port}"
    async with asyncio.timeout(120), CoordinatorClient(target, TOKEN) as client:
        run = await client.start_run("quick-restart", seed=11)
        assert RunStatus.QUEUED == run.status

        events = [event async for event in client.watch_run(run.run_id)]
        final = await client.get_run(run.run_id)
        page = await client.list_runs(statuses=[RunStatus.PASSED])

    assert RunStatus.PASSED == final.status, (final.reason, [e.kind for e in events])
    kinds = [e.kind for e in events]
    seqs = [e.seq for e in events if not e.is_end]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {"run.started", "service.started", "run.finished"} <= set(kinds), kinds
    assert events[-1].is_end and events[-1].run is not None
    assert RunStatus.PASSED == events[-1].run.status == final.status, final.reason
    assert (11, "library") == (final.seed, final.source)
    assert [run.run_id] == [r.run_id for r in page.runs]


async def test_grpc_needs_the_token_and_refuses_remote_processes(service: ServiceProcess) -> None:
    target = f"127.0.0.1:{service.grpc_port}"
    async with asyncio.timeout(30):
        async with CoordinatorClient(target) as anonymous:
            with pytest.raises(Unauthenticated):
                await anonymous.list_runs()
        async with CoordinatorClient(target, TOKEN) as client:
            with pytest.raises(PermissionDenied, match=r"services\.web\.process"):
                await client.start_run(document=QUICK_RESTART)


async def test_health_answers_for_every_name_and_reflection_lists_the_runs_service(
    service: ServiceProcess,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        names = (
            "",
            "test-coordinator",
            "test-coordinator-Chaos1",
            "test_coordinator.v1.TestCoordinator",
        )
        statuses = [
            (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status
            for name in names
        ]
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        answers = [a async for a in reflection.ServerReflectionInfo(iter([request]), timeout=5)]

    assert [health_pb2.HealthCheckResponse.SERVING] * 4 == statuses
    listed = {s.name for s in answers[0].list_services_response.service}
    assert {"grpc.health.v1.Health", "test_coordinator.v1.TestCoordinator"} <= listed
