"""The runs API over gRPC, end to end in one process: a real grpc.aio server on 127.0.0.1
with health, reflection and the runs service over a real RunManager (SQLite store, the
engine's real dependencies, local processes), driven through CoordinatorClient."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from test_coordinator.adapters.leases import LocalLeases
from test_coordinator.adapters.storage.sqlite_file import open_sqlite_file
from test_coordinator.client import (
    CoordinatorClient,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RunEvent,
    RunRejected,
    RunStatus,
    Unauthenticated,
)
from test_coordinator.engine.wiring import runtime_deps
from test_coordinator.entrypoints.grpc_runs import (
    MAX_DOCUMENT_BYTES,
    MAX_RECEIVE_MESSAGE_BYTES,
    SERVER_OPTIONS,
    add_runs_service,
)
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.service.runs.events import RunEvents
from test_coordinator.service.runs.library import ScenarioLibrary
from test_coordinator.service.runs.manager import RunManager
from test_coordinator.service.runs.metrics import RunMetrics
from test_coordinator.targets.process import procfs

pytestmark = pytest.mark.slow

TOKEN = "grpc-test-token"
DEADLINE_S = 60.0
"""The most any one wait of these tests may take."""

SERVICE = """\
ports: [port]
services:
  web:
    process:
      command: ${python}
      args: [-m, http.server, "${port}", --bind, 127.0.0.1]
      cwd: ${scenario_dir}
    health:
      http: {url: "http://127.0.0.1:${port}/"}
"""
QUICK_RESTART = (
    "version: 1\nname: quick-restart\ntimeout: 1m\n"
    + SERVICE
    + """\
steady_state:
  - healthy: web
steps:
  - restart: web
  - expect: {healthy: web, within: 10s}
checks:
  - recovery_time: {service: web, max: 10s}
"""
)
HOLD = (
    "version: 1\nname: hold\ntimeout: 5m\n"
    + SERVICE
    + """\
steps:
  - name: hold
    wait: 5m
"""
)
INVALID = """\
version: 1
name: invalid
services:
  web:
    process: {command: python}
    health: {http: {url: "http://127.0.0.1:1/"}}
steps:
  - restart: nowhere
"""


@dataclass(frozen=True)
class Served:
    target: str
    service_name: str
    manager: RunManager


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The runs service as the lifecycle builds it, on a server of its own."""
    library = tmp_path / "scenarios"
    library.mkdir()
    (library / "quick-restart.yaml").write_text(QUICK_RESTART)
    (library / "hold.yaml").write_text(HOLD)
    store = await open_sqlite_file(tmp_path / "data")
    try:
        async with runtime_deps(store, poll_interval_s=0.005, guard=False) as deps:
            manager = RunManager(
                store=store,
                deps=deps,
                library=ScenarioLibrary(library),
                leases=LocalLeases(),
                events=RunEvents(),
                metrics=RunMetrics(PrometheusMetrics(runtime_collectors=False)),
                holder="test-coordinator",
                reports_dir=tmp_path / "reports",
                max_running=2,
                max_queued=10,
            )
            manager.start()
            server = grpc.aio.server(options=list(SERVER_OPTIONS))
            health_servicer = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
            name = add_runs_service(server, manager, TOKEN)
            reflection.enable_server_reflection(
                (
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    name,
                    reflection.SERVICE_NAME,
                ),
                server,
            )
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            try:
                yield Served(f"127.0.0.1:{port}", name, manager)
            finally:
                await server.stop(None)
                await manager.close(timeout_s=DEADLINE_S)
    finally:
        store.close()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[CoordinatorClient]:
    async with CoordinatorClient(served.target, token=TOKEN, timeout_s=DEADLINE_S) as client:
        yield client


async def watch(
    client: CoordinatorClient,
    run_id: str,
    after_seq: int = 0,
    until: Callable[[RunEvent], bool] | None = None,
) -> list[RunEvent]:
    """The run's events until the stream ends (or ``until`` holds for one), bounded."""
    events: list[RunEvent] = []
    async with asyncio.timeout(DEADLINE_S), aclosing(client.watch_run(run_id, after_seq)) as stream:
        async for event in stream:
            events.append(event)
            if until is not None and until(event):
                break
    return events


async def test_a_run_started_watched_got_listed_and_not_cancelled_once_ended(
    client: CoordinatorClient,
) -> None:
    run = await client.start_run("quick-restart", seed=42)
    assert run.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    assert run.scenario == "quick-restart"
    assert run.seed == 42
    assert run.source == "library"

    events = await watch(client, run.run_id)

    *journal, end = events
    seqs = [e.seq for e in journal]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    kinds = [e.kind for e in journal]
    assert kinds[0] == "run.started" and "run.finished" in kinds
    assert "service.started" in kinds and "fault.injected" in kinds
    started = journal[0]
    assert started.data["run_id"] == run.run_id and started.data["seed"] == 42
    assert end.is_end
    assert end.data == {"run_id": run.run_id, "status": "passed"}
    assert end.final_status is RunStatus.PASSED
    assert end.run is not None and end.run.outcome == "passed"

    got = await client.get_run(run.run_id)
    assert got.status is RunStatus.PASSED and got.finished
    assert got.ended_at_ms is not None and got.ended_at_ms >= got.started_at_ms
    assert got.submitted_at_ms is not None and got.queue_position is None
    # What it did, from its journal, as the REST API's run detail shows it.
    assert got.detail is not None and got.detail.setup is not None
    assert "passed" == got.detail.setup.status
    assert [s.kind for s in got.detail.steps] and all(
        "passed" == s.status and s.ended_at_ms >= s.started_at_ms for s in got.detail.steps
    )
    [recovery] = got.detail.recoveries
    assert recovery.recovery_ms is not None and recovery.recovery_ms > 0
    assert got.detail.undos and all("done" == u.status for u in got.detail.undos)
    assert (await client.list_runs()).runs[0].detail is None  # GetRun only

    # watching an ended run: its stored journal after after_seq, then the end
    again = await watch(client, run.run_id, after_seq=seqs[-2])
    assert [e.seq for e in again] == [seqs[-1], 0]
    assert again[-1].final_status is RunStatus.PASSED

    page = await client.list_runs(scenario="quick-restart", statuses=[RunStatus.PASSED])
    assert [r.run_id for r in page.runs] == [run.run_id]
    assert page.next_cursor is None
    assert (await client.list_runs(statuses=["failed"])).runs == ()
    assert (await client.list_runs(started_to_ms=run.started_at_ms)).runs == ()

    with pytest.raises(FailedPrecondition, match="already ended"):
        await client.cancel_run(run.run_id)


async def test_refusals_map_to_status_codes(client: CoordinatorClient, served: Served) -> None:
    # a document sent over the network may not start a process on this host
    with pytest.raises(PermissionDenied, match="local process"):
        await client.start_run(document=QUICK_RESTART)

    with pytest.raises(RunRejected) as rejected:
        await client.start_run(document=INVALID)
    error = rejected.value
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.total == 1
    [problem] = error.problems
    assert (problem.file, problem.line, problem.column) == ("request", 8, 14)
    assert problem.path == "steps[0].restart"
    assert "nowhere" in problem.message
    assert "request:8:14: steps[0].restart:" in error.message

    with pytest.raises(RunRejected) as unknown_var:
        await client.start_run("quick-restart", vars={"nope": 1})
    assert [p.path for p in unknown_var.value.problems] == ["vars.nope"]

    with pytest.raises(NotFound):
        await client.start_run("no-such-scenario")
    with pytest.raises(NotFound):
        await client.get_run("no-such-run")
    with pytest.raises(NotFound):
        await client.cancel_run("no-such-run")
    with pytest.raises(NotFound):
        await watch(client, "no-such-run")

    # what a client may ask is bounded
    with pytest.raises(InvalidArgument) as too_many:
        await client.list_runs(limit=501)
    assert not isinstance(too_many.value, RunRejected)
    with pytest.raises(InvalidArgument, match="cursor"):
        await client.list_runs(cursor="not-a-cursor")
    with pytest.raises(InvalidArgument, match="seed"):
        await client.start_run("quick-restart", seed=-1)
    with pytest.raises(InvalidArgument, match="more than the 1048576 allowed"):
        await client.start_run(document="#" * (MAX_DOCUMENT_BYTES + 1))
    # beyond what the server reads at all: refused by the transport
    with pytest.raises(ResourceExhausted):
        await client.start_run(document="#" * (MAX_RECEIVE_MESSAGE_BYTES + 1))
    assert served.manager.queued == 0 and served.manager.running == 0


async def test_problems_are_cut_to_fit_in_metadata(client: CoordinatorClient) -> None:
    """401 problems do not fit in gRPC's 8 KiB of metadata: the first ones are sent, with
    their number; ValidateScenario returns every one."""
    document = "version: 1\nname: many\nservices: {}\nsteps:\n" + "".join(
        f"  - restart: missing{i}\n" for i in range(400)
    )

    with pytest.raises(RunRejected) as rejected:
        await client.start_run(document=document)

    error = rejected.value
    assert error.total == 401
    assert 10 < len(error.problems) < 401
    assert str(error.problems[0]) == "request:3:11: services: needs at least 1 item(s)"
    assert "more (ValidateScenario lists them all)" in error.message
    validation = await client.validate_scenario(document=document)
    assert not validation.valid and len(validation.problems) == 401


async def test_scenarios_listed_and_validated(client: CoordinatorClient) -> None:
    scenarios = await client.list_scenarios()
    assert [s.name for s in scenarios] == ["hold", "quick-restart"]
    assert scenarios[1].file.endswith("quick-restart.yaml")

    assert (await client.validate_scenario("quick-restart")).valid
    invalid = await client.validate_scenario(document=INVALID)
    assert not invalid.valid
    assert [(p.line, p.column, p.path) for p in invalid.problems] == [(8, 14, "steps[0].restart")]
    with pytest.raises(NotFound):
        await client.validate_scenario("no-such-scenario")


async def test_every_call_needs_the_token_but_health_and_reflection_do_not(
    served: Served,
) -> None:
    async def every_call(client: CoordinatorClient) -> list[Callable[[], Awaitable[Any]]]:
        return [
            lambda: client.start_run("quick-restart"),
            lambda: client.get_run("some-run"),
            lambda: client.list_runs(),
            lambda: client.cancel_run("some-run"),
            lambda: watch(client, "some-run"),
            lambda: client.list_scenarios(),
            lambda: client.validate_scenario("quick-restart"),
        ]

    for token in (None, "wrong-token", TOKEN + "x", ""):
        async with CoordinatorClient(served.target, token=token, timeout_s=DEADLINE_S) as client:
            for call in await every_call(client):
                with pytest.raises(Unauthenticated, match="bearer token"):
                    await call()
    assert served.manager.queued == 0 and served.manager.running == 0

    async with grpc.aio.insecure_channel(served.target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE_S
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(timeout=DEADLINE_S)
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        response = await call.read()
        await call.done_writing()
        names = {s.name for s in response.list_services_response.service}
        assert served.service_name == "test_coordinator.v1.TestCoordinator"
        assert served.service_name in names


async def test_cancelling_a_running_run_undoes_it(client: CoordinatorClient) -> None:
    run = await client.start_run("hold")
    before = await watch(
        client, run.run_id, until=lambda e: e.kind == "step.started" and e.data["step"] == "1"
    )
    services = [e.data for e in before if e.kind == "service.started"]
    assert services and all(isinstance(s["pid"], int) for s in services)
    assert procfs.read_stat(services[0]["pid"]) is not None

    cancelled = await client.cancel_run(run.run_id)
    assert cancelled.status is RunStatus.RUNNING
    assert cancelled.cancel_requested

    after = await watch(client, run.run_id, after_seq=before[-1].seq)
    end = after[-1]
    assert end.final_status is RunStatus.CANCELLED
    assert end.run is not None and "cancelled through the API" in (end.run.reason or "")
    assert "run.finished" in [e.kind for e in after]
    for service in services:
        stat = procfs.read_stat(service["pid"])
        gone = stat is None or stat.is_zombie or stat.start_ticks != service["start_ticks"]
        assert gone, f"{service} still runs: {stat}"
    assert (await client.get_run(run.run_id)).status is RunStatus.CANCELLED


async def test_a_queued_run_is_dropped_by_a_cancel(client: CoordinatorClient) -> None:
    holding = [await client.start_run("hold") for _ in range(2)]  # max_running=2
    queued = await client.start_run("hold", vars={})
    assert queued.status is RunStatus.QUEUED and queued.queue_position is not None
    watcher = asyncio.create_task(watch(client, queued.run_id))

    dropped = await client.cancel_run(queued.run_id)

    assert dropped.status is RunStatus.CANCELLED and dropped.queue_position is None
    [end] = await asyncio.wait_for(watcher, DEADLINE_S)
    assert end.final_status is RunStatus.CANCELLED
    page = await client.list_runs(statuses=[RunStatus.QUEUED, RunStatus.CANCELLED])
    assert [r.run_id for r in page.runs] == [queued.run_id]
    for run in holding:
        await client.cancel_run(run.run_id)
        assert (await watch(client, run.run_id))[-1].final_status is RunStatus.CANCELLED


@pytest.mark.parametrize("method", ["GetRun", "WatchRun", "StartRun"])
async def test_bytes_that_are_not_the_request_message_are_an_invalid_argument(
    served: Served, method: str
) -> None:
    """Not UNKNOWN with a traceback in the log: the caller is told what was expected, and
    only once its token is right."""
    garbage = b"\xff\xff\xff\x0f not a protobuf message"
    path = f"/{served.service_name}/{method}"
    async with grpc.aio.insecure_channel(served.target) as channel:
        if method == "WatchRun":
            call: Any = channel.unary_stream(path)(garbage, metadata=(), timeout=DEADLINE_S)
            refused = call.read()
        else:
            refused = channel.unary_unary(path)(garbage, timeout=DEADLINE_S)
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await refused
        assert grpc.StatusCode.UNAUTHENTICATED == anonymous.value.code()

        bearer = (("authorization", f"Bearer {TOKEN}"),)
        if method == "WatchRun":
            call = channel.unary_stream(path)(garbage, metadata=bearer, timeout=DEADLINE_S)
            refused = call.read()
        else:
            refused = channel.unary_unary(path)(garbage, metadata=bearer, timeout=DEADLINE_S)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await refused
    assert grpc.StatusCode.INVALID_ARGUMENT == caught.value.code()
    assert f"not a valid test_coordinator.v1.{method}Request message" in str(caught.value.details())
