"""The runs service's rules, with a stand-in for the engine: the limit, the queue, leases without
head-of-line blocking, cancel, live events, and the outcome stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import cast

import pytest
from engine_fakes import InMemoryRunStore

from support.polling import eventually
from test_coordinator.adapters.leases import LocalLeases
from test_coordinator.engine.control import RunControl, RunOptions
from test_coordinator.engine.journal import Journal, Listener, RunClock
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import Outcome, RunResult
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.ports.leases import LeaseUnavailable
from test_coordinator.ports.registry import ServiceRecord
from test_coordinator.ports.storage import RunRecord, RunStatus
from test_coordinator.scenario.discovery import DiscoveredValues
from test_coordinator.scenario.loader import LoadedScenario
from test_coordinator.service.runs.events import RunEvents
from test_coordinator.service.runs.library import ScenarioLibrary
from test_coordinator.service.runs.manager import RunManager
from test_coordinator.service.runs.metrics import RunMetrics
from test_coordinator.service.runs.requests import (
    NotAllowed,
    QueueFull,
    RunAlreadyEnded,
    RunRequest,
    ScenarioRejected,
)

OBSERVED = """
version: 1
name: {name}
vars: {{hold: 1s}}
services:
  api:
    health: {{http: {{url: "http://127.0.0.1:1/"}}}}
steps:
  - wait: ${{hold}}
"""

SHARED = """
version: 1
name: shared
services:
  link:
    proxy: {listen: 19999, upstream: "127.0.0.1:1"}
steps:
  - wait: 1s
"""


PROCESS = """
version: 1
services:
  a:
    process: {command: sh}
    health: {tcp: {port: 1}}
steps:
  - restart: a
"""


DISCOVERING = """
version: 1
name: discovering
services:
  exchange:
    discover: {service: exchange-simulator, instance: exchange-OKX}
steps:
  - wait: 1s
"""


class StandInEngine:
    """Runs 'run' until released (or interrupted); journals two events; records who ran."""

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.running: set[str] = set()
        self.most = 0
        self.order: list[str] = []
        self.loaded: dict[str, LoadedScenario] = {}
        self.undo: dict[str, asyncio.Event] = {}
        """Runs whose undo at the end waits for this event."""
        self.undoing: set[str] = set()

    async def __call__(
        self,
        loaded: LoadedScenario,
        deps: EngineDeps,
        options: RunOptions,
        *,
        control: RunControl | None = None,
        listeners: Sequence[Listener] = (),
    ) -> RunResult:
        assert control is not None
        control.attach(asyncio.current_task())
        journal = Journal(options.run_id, RunClock(lambda: 0.0), tuple(listeners))
        journal.record("run.started", scenario=loaded.name)
        release = self.release.setdefault(options.run_id, asyncio.Event())
        self.running.add(options.run_id)
        self.order.append(loaded.name)
        self.loaded[options.run_id] = loaded
        self.most = max(self.most, len(self.running))
        outcome = Outcome.PASSED
        try:
            await release.wait()
        except asyncio.CancelledError:
            outcome = Outcome.INTERRUPTED
        finally:
            undone = self.undo.get(options.run_id)
            if undone is not None:  # as the engine: its undo at the end, never cut short
                control.end()
                self.undoing.add(options.run_id)
                await undone.wait()
            self.running.discard(options.run_id)
        journal.record("run.finished", outcome=outcome.value)
        await journal.flush(deps.store)
        await deps.store.save_run(
            RunRecord(
                run_id=options.run_id,
                scenario=loaded.name,
                status=outcome.run_status,
                started_at_ms=1,
                ended_at_ms=2,
                summary={"outcome": outcome.value, "reason": ""},
            )
        )
        return RunResult(
            run_id=options.run_id,
            scenario=loaded.name,
            file=loaded.path,
            outcome=outcome,
            reason="",
            seed=options.seed,
            started_at_epoch_ms=1,
            duration_ms=1.0,
            run_dir=options.run_dir,
        )

    def finish(self, run_id: str) -> None:
        self.release.setdefault(run_id, asyncio.Event()).set()


class Deps:
    def __init__(self, store: InMemoryRunStore) -> None:
        self.store = store


@pytest.fixture
def library(tmp_path: Path) -> ScenarioLibrary:
    root = tmp_path / "library"
    root.mkdir()
    for name in ("one", "two"):
        (root / f"{name}.yaml").write_text(OBSERVED.format(name=name))
    (root / "shared.yaml").write_text(SHARED)
    return ScenarioLibrary(root)


def make_manager(
    tmp_path: Path, library: ScenarioLibrary, **options: object
) -> tuple[RunManager, StandInEngine, InMemoryRunStore]:
    store = InMemoryRunStore()
    engine = StandInEngine()
    settings: dict[str, object] = {
        "store": store,
        "deps": cast(EngineDeps, Deps(store)),
        "library": library,
        "leases": LocalLeases(),
        "events": RunEvents(),
        "metrics": RunMetrics(PrometheusMetrics("", runtime_collectors=False)),
        "holder": "test-coordinator",
        "reports_dir": tmp_path / "reports",
        "max_running": 2,
        "max_queued": 3,
        "write_reports": lambda result: None,
        "runner": engine,
        **options,
    }
    return RunManager(**settings), engine, store  # type: ignore[arg-type]


@pytest.fixture
async def parts(
    tmp_path: Path, library: ScenarioLibrary
) -> AsyncIterator[tuple[RunManager, StandInEngine, InMemoryRunStore]]:
    manager, engine, store = make_manager(tmp_path, library)
    manager.start()
    yield manager, engine, store
    for run_id in list(engine.release):
        engine.finish(run_id)
    await manager.close(5.0)


async def status_of(store: InMemoryRunStore, run_id: str) -> RunStatus:
    return store.runs[run_id].status


async def test_at_most_the_limit_run_and_the_queue_is_bounded(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    manager, engine, store = parts
    ids = [(await manager.submit(RunRequest(scenario="one"))).record.run_id for _ in range(3)]
    await eventually(lambda: len(engine.running) == 2, timeout_s=5, what="two running")
    ids += [(await manager.submit(RunRequest(scenario="one"))).record.run_id for _ in range(2)]

    with pytest.raises(QueueFull, match="the queue is full: 3 runs wait"):
        await manager.submit(RunRequest(scenario="one"))
    assert (await manager.get(ids[2])).queue_position == 1
    for run_id in ids:
        engine.finish(run_id)
    for run_id in ids:
        await asyncio.wait_for(manager.wait(run_id), 5)

    assert 2 == engine.most == manager.most_running
    assert [RunStatus.PASSED] * 5 == [await status_of(store, run_id) for run_id in ids]
    assert {"submitted_at_ms", "source", "vars", "seed", "leases"} <= set(
        store.runs[ids[0]].summary
    )


async def test_a_run_waiting_for_a_shared_target_does_not_hold_up_the_others(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    manager, engine, _ = parts
    first = (await manager.submit(RunRequest(scenario="shared"))).record.run_id
    await eventually(lambda: first in engine.running, timeout_s=5, what="the first shared run")
    second = (await manager.submit(RunRequest(scenario="shared"))).record.run_id
    other = (await manager.submit(RunRequest(scenario="two"))).record.run_id

    await eventually(lambda: other in engine.running, timeout_s=5, what="the run behind it")
    waiting = await manager.get(second)
    assert "listen:127.0.0.1:19999 by test-coordinator/" + first in waiting.waiting_for
    assert second not in engine.running
    engine.finish(first)
    await eventually(lambda: second in engine.running, timeout_s=5, what="the second shared run")


async def test_cancel_drops_a_queued_run_and_interrupts_a_running_one(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    manager, engine, store = parts
    running = [(await manager.submit(RunRequest(scenario="one"))).record.run_id for _ in range(2)]
    queued = (await manager.submit(RunRequest(scenario="one"))).record.run_id
    await eventually(lambda: len(engine.running) == 2, timeout_s=5, what="two running")

    assert RunStatus.CANCELLED == (await manager.cancel(queued)).record.status
    view = await manager.cancel(running[0])
    assert view.cancel_requested
    await asyncio.wait_for(manager.wait(running[0]), 5)

    assert RunStatus.CANCELLED == await status_of(store, running[0])
    assert "cancelled through the API" == store.runs[running[0]].summary["reason"]
    with pytest.raises(RunAlreadyEnded, match="already ended \\(cancelled\\)"):
        await manager.cancel(running[0])
    assert queued not in engine.order and len(engine.order) == 2


async def test_cancel_of_a_run_already_undoing_at_its_end_is_refused_and_changes_nothing(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    manager, engine, store = parts
    run_id = (await manager.submit(RunRequest(scenario="one"))).record.run_id
    await eventually(lambda: run_id in engine.running, timeout_s=5, what="running")
    undone = engine.undo[run_id] = asyncio.Event()
    engine.finish(run_id)
    await eventually(lambda: run_id in engine.undoing, timeout_s=5, what="undoing")

    with pytest.raises(RunAlreadyEnded, match="already ending: its undo is running"):
        await manager.cancel(run_id)
    assert not (await manager.get(run_id)).cancel_requested
    undone.set()
    await asyncio.wait_for(manager.wait(run_id), 5)

    assert RunStatus.PASSED == await status_of(store, run_id)


async def test_a_follower_gets_every_event_once_live_then_from_the_store(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    manager, engine, _ = parts
    run_id = (await manager.submit(RunRequest(scenario="one"))).record.run_id

    async def follow() -> list[tuple[int, str]]:
        return [(e.seq, e.kind) async for e in manager.follow(run_id)]

    live = asyncio.create_task(follow())
    await eventually(lambda: run_id in engine.running, timeout_s=5, what="running")
    engine.finish(run_id)
    await asyncio.wait_for(manager.wait(run_id), 5)

    expected = [(1, "run.started"), (2, "run.finished")]
    assert expected == await asyncio.wait_for(live, 5)
    assert expected == await follow()  # ended: from the store
    assert [(2, "run.finished")] == [(e.seq, e.kind) async for e in manager.follow(run_id, 1)]


async def test_what_cannot_run_is_refused_before_it_is_queued(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    manager, _, store = parts
    with pytest.raises(ScenarioRejected) as invalid:
        await manager.submit(RunRequest(document="version: 1\nsteps: 3\n"))
    with pytest.raises(ScenarioRejected) as undeclared:
        await manager.submit(RunRequest(scenario="one", vars={"holdd": "2s"}))
    process = PROCESS
    with pytest.raises(NotAllowed, match=r"services\.a\.process: starts the local process 'sh'"):
        await manager.submit(RunRequest(document=process))

    assert all(p.file == "request" for p in invalid.value.problems)
    assert ["vars.holdd"] == [p.path for p in undeclared.value.problems]
    assert {} == store.runs
    accepted = await manager.submit(RunRequest(document=process, remote=False))
    assert RunStatus.QUEUED == accepted.record.status


async def test_with_no_queue_a_run_starts_in_a_free_slot_and_none_waits(
    tmp_path: Path, library: ScenarioLibrary
) -> None:
    """MAX_QUEUED_RUNS=0: a run is accepted while a slot is free, refused once none is."""
    manager, engine, _ = make_manager(tmp_path, library, max_running=1, max_queued=0)
    manager.start()
    try:
        first = (await manager.submit(RunRequest(scenario="one"))).record.run_id
        await eventually(lambda: len(engine.running) == 1, timeout_s=5, what="it runs")

        with pytest.raises(QueueFull, match="the queue is full: 0 runs wait"):
            await manager.submit(RunRequest(scenario="one"))
        engine.finish(first)
        await asyncio.wait_for(manager.wait(first), 5)
        second = (await manager.submit(RunRequest(scenario="one"))).record.run_id
        engine.finish(second)
        await asyncio.wait_for(manager.wait(second), 5)
    finally:
        await manager.close(5.0)


async def test_submissions_at_the_same_moment_never_overfill_the_queue(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    manager, engine, store = parts
    answers = await asyncio.gather(
        *(manager.submit(RunRequest(scenario="one")) for _ in range(10)), return_exceptions=True
    )

    refused = [a for a in answers if isinstance(a, QueueFull)]
    accepted = 10 - len(refused)
    # At most three wait, at most two run: between three (none started yet) and five.
    assert 3 <= accepted <= 5, answers
    await eventually(lambda: len(engine.running) == 2, timeout_s=5, what="two running")
    assert accepted == manager.queued + manager.running == len(store.runs)
    assert manager.queued <= 3


async def test_a_run_finds_its_discovered_services_in_the_registry_before_it_starts(
    tmp_path: Path, library: ScenarioLibrary
) -> None:
    asked: list[Path | str] = []

    async def discover(source: Path | str) -> DiscoveredValues:
        asked.append(source)
        record = ServiceRecord(
            "exchange-simulator", "exchange-OKX", "10.1.2.3", 8081, 50052, "1", "docker",
            "healthy", "2026-12-01T00:00:00Z",
        )  # fmt: skip
        return {"exchange": record} if "discover:" in str(source) else {}

    manager, engine, _ = make_manager(tmp_path, library, discover=discover)
    manager.start()
    try:
        view = await manager.submit(RunRequest(document=DISCOVERING))
        run_id = view.record.run_id
        await eventually(lambda: run_id in engine.running, timeout_s=5, what="running")
        engine.finish(run_id)
        await asyncio.wait_for(manager.wait(run_id), 5)
    finally:
        await manager.close(5.0)

    assert [DISCOVERING] == asked
    health = engine.loaded[run_id].model.services["exchange"].health.http
    assert health is not None and health.url.startswith("http://10.1.2.3:8081/")
    assert "instance:exchange-simulator:exchange-OKX" in view.record.summary["leases"]


async def test_the_service_may_allow_remote_scenarios_to_run_things(
    tmp_path: Path, library: ScenarioLibrary
) -> None:
    manager, _, _ = make_manager(tmp_path, library, allow_remote_execution=True)

    view = await manager.submit(RunRequest(document=PROCESS))

    assert RunStatus.QUEUED == view.record.status


class FlakyLeases(LocalLeases):
    """Local leases with a time to live, whose renewals fail while ``down`` is set."""

    ttl_ms = 600

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed = 0
        self.renewed = 0

    async def renew(self, keys: Collection[str], holder: str) -> list[str]:
        if self.down:
            self.failed += 1
            raise LeaseUnavailable("redis://leases: connection refused")
        self.renewed += 1
        return await super().renew(keys, holder)


async def test_a_lease_store_out_of_reach_until_the_leases_may_expire_interrupts_the_run(
    tmp_path: Path, library: ScenarioLibrary
) -> None:
    leases = FlakyLeases()
    manager, engine, store = make_manager(tmp_path, library, leases=leases)
    manager.start()
    try:
        blip = (await manager.submit(RunRequest(scenario="shared"))).record.run_id
        await eventually(lambda: blip in engine.running, timeout_s=5, what="running")
        leases.down = True  # one renewal fails: the leases still hold past the next one
        await eventually(lambda: leases.failed == 1, timeout_s=5, what="a failed renewal")
        leases.down = False
        renewed = leases.renewed
        await eventually(lambda: leases.renewed > renewed, timeout_s=5, what="a renewal")
        engine.finish(blip)
        await asyncio.wait_for(manager.wait(blip), 5)
        assert RunStatus.PASSED == await status_of(store, blip)

        cut = (await manager.submit(RunRequest(scenario="shared"))).record.run_id
        await eventually(lambda: cut in engine.running, timeout_s=5, what="running")
        leases.down = True
        await asyncio.wait_for(manager.wait(cut), 5)
    finally:
        for run_id in list(engine.release):
            engine.finish(run_id)
        await manager.close(5.0)

    record = store.runs[cut]
    assert RunStatus.PASSED != record.status
    assert "leases could not be renewed for 0.6 s" in record.summary["reason"]


async def test_validation_finds_the_variables_a_run_would_be_refused_for(
    parts: tuple[RunManager, StandInEngine, InMemoryRunStore],
) -> None:
    """The validate endpoints (REST and gRPC) and the submission judge variables alike."""
    manager, _, _ = parts

    problems = await manager.problems(name="one", document=None, overrides={"nosuch": "1"})

    assert ["vars.nosuch"] == [p.path for p in problems]
    assert "the scenario declares no variable 'nosuch'" in problems[0].message
    with pytest.raises(ScenarioRejected):
        await manager.submit(RunRequest(scenario="one", vars={"nosuch": "1"}))
