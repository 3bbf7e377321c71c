"""In-memory doubles for the engine's ports: a store, a target backend, probes, load.

A fake service is healthy when its process is ``running`` and it is not marked
sick; probes of other URLs answer from ``FakeWorld.values``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from test_coordinator.engine.ports import EngineDeps, LoadRunner, Probe
from test_coordinator.ports.storage import (
    JournalEvent,
    RunPage,
    RunQuery,
    RunRecord,
    UndoRecord,
    UndoStatus,
)
from test_coordinator.runtime.load import LoadSummary
from test_coordinator.runtime.probes import ProbeResult
from test_coordinator.scenario.probes import ProbeSpec
from test_coordinator.scenario.steps import LoadSpec
from test_coordinator.targets.port import RunScope, TargetError, TargetSpec, TargetState
from test_coordinator.targets.router import RunTargets


class InMemoryRunStore:
    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.events_by_run: dict[str, list[JournalEvent]] = {}
        self.undos: dict[str, UndoRecord] = {}
        self.undo_log: list[tuple[str, str]] = []

    async def save_run(self, run: RunRecord) -> None:
        self.runs[run.run_id] = run

    async def append_events(self, events: Sequence[JournalEvent]) -> None:
        for event in events:
            self.events_by_run.setdefault(event.run_id, []).append(event)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return self.runs.get(run_id)

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        return sorted(self.runs.values(), key=lambda r: -r.started_at_ms)[:limit]

    async def query_runs(self, query: RunQuery) -> RunPage:
        return query.select(self.runs.values())

    async def events(self, run_id: str) -> list[JournalEvent]:
        return list(self.events_by_run.get(run_id, []))

    async def record_undo(self, undo: UndoRecord) -> None:
        self.undos[undo.undo_id] = undo
        self.undo_log.append(("recorded", undo.undo_id))

    async def finish_undo(self, undo_id: str, status: UndoStatus, detail: str = "") -> None:
        from dataclasses import replace

        self.undos[undo_id] = replace(self.undos[undo_id], status=status, detail=detail)
        self.undo_log.append((status.value, undo_id))

    async def pending_undos(self, *, include_failed: bool = False) -> list[UndoRecord]:
        wanted = {UndoStatus.PENDING, *((UndoStatus.FAILED,) if include_failed else ())}
        return [u for u in self.undos.values() if u.status in wanted]


class FakeBackend:
    """Targets as states; every call is logged in ``calls`` as ``(action, name)``."""

    kind = "process"
    _pids = itertools.count(1000)

    def __init__(
        self,
        log_dir: Path,
        *,
        store: InMemoryRunStore | None = None,
        specs: Mapping[str, TargetSpec] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.states: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self.specs: dict[str, TargetSpec] = dict(specs or {})
        self.calls: list[tuple[str, str]] = []
        self.closed = False
        self.fail_start: set[str] = set()
        self.store = store
        self.pending_undos_at_injection: list[int] = []
        self.adopted: dict[str, Mapping[str, Any]] = {}

    def _note_injection(self) -> None:
        if self.store is not None:
            pending = [u for u in self.store.undos.values() if u.status is UndoStatus.PENDING]
            self.pending_undos_at_injection.append(len(pending))

    async def start(self, name: str) -> str:
        self.calls.append(("start", name))
        if name in self.fail_start:
            raise TargetError(f"{name}: exited with status 1 right after start")
        if self.states.get(name) in ("running", "paused"):
            raise TargetError(f"{name}: already running")
        self.states[name] = "running"
        self.pids[name] = next(self._pids)
        return f"pid {self.pids[name]}"

    async def stop(
        self, name: str, grace_s: float | None = None, signum: int | None = None
    ) -> None:
        self.calls.append(("stop", name) if signum is None else (f"stop:{int(signum)}", name))
        self._note_injection()
        if name in self.states:
            self.states[name] = "exited"

    async def restart(self, name: str) -> str:
        self.calls.append(("restart", name))
        self._note_injection()
        self.states[name] = "running"
        self.pids[name] = next(self._pids)
        return f"pid {self.pids[name]}"

    async def signal(self, name: str, signum: int) -> None:
        self.calls.append((f"kill:{int(signum)}", name))
        self._note_injection()
        self.states[name] = "paused" if signum == 19 else "exited"

    async def pause(self, name: str) -> None:
        self.calls.append(("pause", name))
        self._note_injection()
        self.states[name] = "paused"

    async def resume(self, name: str) -> None:
        self.calls.append(("resume", name))
        if self.states.get(name) == "paused":
            self.states[name] = "running"

    async def remove(self, name: str) -> str:
        self.calls.append(("remove", name))
        was = self.states.get(name, "not-started")
        if name in self.states:
            self.states[name] = "exited"
        return f"{name} removed (was {was})"

    async def close(self) -> None:
        self.calls.append(("close", "*"))
        self.closed = True
        for name in self.states:
            self.states[name] = "exited"

    def state(self, name: str) -> TargetState:
        return TargetState(self.states.get(name, "not-started"))

    async def exit_problem(self, name: str) -> str | None:
        return None if self.state(name) in ("running", "paused") else f"{name} exited"

    def pid(self, name: str) -> int | None:
        return self.pids.get(name) if self.state(name) in ("running", "paused") else None

    def identity(self, name: str) -> str | None:
        pid = self.pid(name)
        return f"pid {pid}" if pid is not None else None

    def handle(self, name: str) -> dict[str, Any]:
        return {"pid": self.pid(name)}

    def adopt(self, name: str, handle: Mapping[str, Any]) -> None:
        self.adopted[name] = dict(handle)

    def owns(self, name: str) -> bool:
        return True

    async def sync_logs(self, name: str) -> None:
        return None

    def log_paths(self, name: str) -> list[Path]:
        return [self.log_dir / f"{name}.out.log", self.log_dir / f"{name}.err.log"]


def fake_targets(backend: FakeBackend, specs: Mapping[str, TargetSpec]) -> RunTargets:
    backend.specs.update(specs)
    return RunTargets({name: backend for name in specs})


@dataclass
class FakeWorld:
    """What the fake probes see. URLs ``fake://SERVICE/health`` follow the backend's state."""

    backend: FakeBackend | None = None
    sick: set[str] = field(default_factory=set)
    values: dict[str, Any] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    probe_count: int = 0
    closed_probes: int = 0

    def answer(self, url: str) -> ProbeResult:
        self.probe_count += 1
        host, _, path = url.removeprefix("fake://").partition("/")
        if path == "health":
            state = self.backend.state(host) if self.backend is not None else "running"
            ok = state == "running" and host not in self.sick
            return ProbeResult(ok, {"status": "healthy" if ok else state}, f"{host} {state}", 0.1)
        if host == "value":
            if path in self.values:
                return ProbeResult(True, self.values[path], f"value {path}", 0.1)
            return ProbeResult(False, None, f"no value {path}", 0.1)
        return ProbeResult(False, None, f"unknown fake url {url}", 0.1)


class FakeProbe:
    def __init__(self, world: FakeWorld, url: str) -> None:
        self.world = world
        self.url = url

    async def check(self) -> ProbeResult:
        delay = self.world.delays.get(self.url)
        if delay:
            await asyncio.sleep(delay)  # a target that answers late
        return self.world.answer(self.url)

    async def aclose(self) -> None:
        self.world.closed_probes += 1


class FakeProbes:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def probe(self, spec: ProbeSpec) -> Probe:
        assert spec.http is not None, "fake probes answer http specs only"
        return FakeProbe(self.world, spec.http.url)


class FakeLoad:
    def __init__(self, spec: LoadSpec, summary: LoadSummary) -> None:
        self.spec = spec
        self._summary = summary
        self.started = False
        self.stopped = False
        self.windows: list[tuple[float | None, float | None]] = []

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def summary(self, start_ms: float | None = None, end_ms: float | None = None) -> LoadSummary:
        self.windows.append((start_ms, end_ms))
        return self._summary


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polling a fake's state, with a deadline
            await asyncio.sleep(0.001)


@dataclass
class Harness:
    store: InMemoryRunStore
    world: FakeWorld
    backends: list[FakeBackend]
    loads: list[FakeLoad]
    metrics: dict[str, float]
    deps: EngineDeps

    @property
    def backend(self) -> FakeBackend:
        return self.backends[-1]


def harness(
    *,
    load_summary: LoadSummary | None = None,
    metrics: Mapping[str, float] | None = None,
    poll_interval_s: float = 0.001,
) -> Harness:
    store = InMemoryRunStore()
    world = FakeWorld()
    backends: list[FakeBackend] = []
    loads: list[FakeLoad] = []
    metric_values = dict(metrics or {})

    def targets_factory(specs: Mapping[str, TargetSpec], scope: RunScope) -> RunTargets:
        backend = FakeBackend(scope.log_dir, store=store)
        world.backend = backend
        backends.append(backend)
        return fake_targets(backend, specs)

    async def read_metric(url: str, name: str, labels: Mapping[str, str]) -> float | None:
        return metric_values.get(name)

    def load_factory(spec: LoadSpec, origin_s: float) -> LoadRunner:
        summary = load_summary or LoadSummary(100, 0, 0.0, 1.0, 2.0, 3.0, 4.0)
        load = FakeLoad(spec, summary)
        loads.append(load)
        return load

    deps = EngineDeps(
        store=store,
        targets_factory=targets_factory,
        probes=FakeProbes(world),
        read_metric=read_metric,
        load_factory=load_factory,
        poll_interval_s=poll_interval_s,
    )
    return Harness(store, world, backends, loads, metric_values, deps)
