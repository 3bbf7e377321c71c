"""The runs service: accept, queue, lease, run, cancel and remember scenario runs.

A submitted run is validated at once (problems come back to the caller, never a
run that cannot start), checked against what a remote caller may do, and queued
(``429`` beyond ``max_queued``). A dispatcher starts queued runs in order, at
most ``max_running`` at a time, each once it holds the leases on its shared
targets (see :mod:`.target_keys`); a run whose targets are busy waits without
holding up the runs behind it. Each run goes through the engine exactly as from
the CLI (setup, faults, checks, the one undo path, its guard process), its
journal events are published live (:mod:`.events`) and stored, its reports
written to ``reports_dir/<run id>``.

Cancelling a queued run drops it; cancelling a running one interrupts it: the
engine undoes its faults, and the run is stored as ``cancelled``. Closing the
manager cancels what is queued and interrupts what runs, waiting a bounded time;
what a killed service leaves is undone on its next start (or by each run's
guard at once), like any dead coordinator's runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from test_coordinator.engine.control import RunControl, RunOptions, new_run_id, new_seed
from test_coordinator.engine.executor import run_scenario
from test_coordinator.engine.identity import coordinator_identity
from test_coordinator.engine.journal import Listener
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import RunResult
from test_coordinator.ports.leases import Leases, LeaseUnavailable
from test_coordinator.ports.storage import JournalEvent, RunRecord, RunStatus, RunStore
from test_coordinator.scenario.discovery import DiscoveredValues
from test_coordinator.scenario.loader import LoadedScenario
from test_coordinator.scenario.problems import ScenarioInvalid, ScenarioProblem
from test_coordinator.service.runs.events import RunEvents
from test_coordinator.service.runs.library import (
    DOCUMENT_LABEL,
    ScenarioLibrary,
    undeclared_variables,
)
from test_coordinator.service.runs.metrics import RunMetrics
from test_coordinator.service.runs.remote_policy import local_execution
from test_coordinator.service.runs.requests import (
    NotAllowed,
    QueueFull,
    RunAlreadyEnded,
    RunNotFound,
    RunRequest,
    ScenarioRejected,
    ServiceStopping,
)
from test_coordinator.service.runs.target_keys import lease_keys

log = logging.getLogger(__name__)

VALIDATION_THREADS = 2
LEASE_RETRY_S = 0.25
"""How often queued runs whose targets are leased elsewhere try again."""
CANCELLED_BY_USER = "cancelled through the API"
FINISHED = frozenset(
    {RunStatus.PASSED, RunStatus.FAILED, RunStatus.ERROR, RunStatus.ABORTED, RunStatus.CANCELLED}
)


Discover = Callable[[Path | str], Awaitable[DiscoveredValues]]


class Runner(Protocol):
    async def __call__(
        self,
        loaded: LoadedScenario,
        deps: EngineDeps,
        options: RunOptions,
        *,
        control: RunControl | None = None,
        listeners: Sequence[Listener] = (),
    ) -> RunResult: ...


@dataclass(eq=False)
class _Entry:
    """A run the manager holds: queued or running."""

    run_id: str
    request: RunRequest
    scenario: str
    seed: int
    keys: frozenset[str]
    submitted_at_ms: int
    control: RunControl = field(default_factory=RunControl)
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the run leaves the queue (it started, or was dropped)."""
    waiting_for: str = ""
    """Why it is still queued: the leases it waits for."""

    def submission(self) -> dict[str, Any]:
        return {
            "submitted_at_ms": self.submitted_at_ms,
            "source": "library" if self.request.scenario is not None else "document",
            "vars": dict(self.request.vars),
            "seed": self.seed,
            "leases": sorted(self.keys),
        }


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as the API shows it: its stored record, and what the manager knows live."""

    record: RunRecord
    queue_position: int | None = None
    waiting_for: str = ""
    cancel_requested: bool = False
    live: bool = False


class RunManager:
    def __init__(
        self,
        *,
        store: RunStore,
        deps: EngineDeps,
        library: ScenarioLibrary,
        leases: Leases,
        events: RunEvents,
        metrics: RunMetrics,
        holder: str,
        reports_dir: Path,
        max_running: int,
        max_queued: int,
        allow_remote_execution: bool = False,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        allocate_port: Callable[[], int] | None = None,
        write_reports: Callable[[RunResult], object] | None = None,
        runner: Runner = run_scenario,
        discover: Discover | None = None,
    ) -> None:
        """``runner``: the engine's ``run_scenario`` (a stand-in in unit tests); ``discover``:
        finds the ``discover:`` services of a scenario (its file, or a document's text) in
        the registry, before each run."""
        self._store = store
        self._deps = deps
        self.library = library
        self._leases = leases
        self.events = events
        self._metrics = metrics
        self._holder = holder
        self._reports_dir = reports_dir
        self.max_running = max_running
        self.max_queued = max_queued
        self._allow_remote_execution = allow_remote_execution
        self._now_ms = wall_clock_ms
        self._allocate_port = allocate_port
        self._write_reports = write_reports
        self._runner = runner
        self._discover = discover
        self._queued: dict[str, _Entry] = {}
        self._reserved = 0
        self._validation = ThreadPoolExecutor(VALIDATION_THREADS, thread_name_prefix="validate")
        """Validation has threads of its own: a flood of large documents waits here, and the
        store's calls (in the default pool) go on."""
        self._running: dict[str, _Entry] = {}
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self.most_running = 0
        """The most runs seen running at once since the start."""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="run-dispatcher")

    async def close(self, timeout_s: float) -> None:
        """Cancel the queued runs, interrupt the running ones and wait (bounded) for their undo."""
        self._closing = True
        self._validation.shutdown(wait=False, cancel_futures=True)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        for entry in list(self._queued.values()):
            await self._drop_queued(entry, "the service stopped before the run started")
        running = list(self._running.values())
        for entry in running:
            entry.cancel_reason = entry.cancel_reason or "the service is stopping"
            entry.control.interrupt(entry.cancel_reason)
        tasks = {entry.task: entry for entry in running if entry.task is not None}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                entry = tasks[task]
                entry.control.abandon()  # its guard undoes what is left and writes the reports
                log.warning("run %s still undoing at shutdown; its guard takes over", entry.run_id)

    # -- the API -----------------------------------------------------------------------

    async def problems(
        self, *, name: str | None, document: str | None, overrides: Mapping[str, str]
    ) -> list[ScenarioProblem]:
        """Every problem of a named scenario or a document (UnknownScenario for a bad name)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._validation,
            lambda: self.library.problems(name=name, document=document, overrides=overrides),
        )

    @property
    def store(self) -> RunStore:
        return self._store

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queued)

    async def submit(self, request: RunRequest) -> RunView:
        """Validate and queue a run; RunRefused (one of its kinds) when it cannot be."""
        if self._closing:
            raise ServiceStopping("the service is stopping")
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(self._validation, self._validate, request)
        # A run passes through the queue even when a slot is free: only the runs beyond
        # the free slots wait, and MAX_QUEUED_RUNS bounds those (0: none waits).
        waiting = len(self._queued) + self._reserved
        free_slots = max(0, self.max_running - len(self._running))
        if waiting - free_slots >= self.max_queued:
            raise QueueFull(
                f"the queue is full: {len(self._queued)} runs wait (MAX_QUEUED_RUNS "
                f"{self.max_queued}), {len(self._running)} run; try again later"
            )
        entry = _Entry(
            run_id=new_run_id(),
            request=request,
            scenario=loaded.name,
            seed=request.seed if request.seed is not None else new_seed(),
            keys=lease_keys(loaded.model, private_ports=set(loaded.ports.values())),
            submitted_at_ms=self._now_ms(),
        )
        record = RunRecord(
            run_id=entry.run_id,
            scenario=entry.scenario,
            status=RunStatus.QUEUED,
            started_at_ms=entry.submitted_at_ms,
            # Who queued it: when this process is gone, recovery marks the run aborted.
            summary={**entry.submission(), "coordinator": coordinator_identity()},
        )
        self._reserved += 1  # the queue's place is taken across the await below
        try:
            await self._store.save_run(record)
        finally:
            self._reserved -= 1
        self._queued[entry.run_id] = entry
        self._metrics.queue_length(len(self._queued))
        self._wake.set()
        return RunView(record, queue_position=len(self._queued), live=True)

    async def get(self, run_id: str) -> RunView:
        record = await self._store.get_run(run_id)
        if record is None:
            raise RunNotFound(f"no run {run_id!r}")
        return self._view(record)

    def view_of(self, record: RunRecord) -> RunView:
        return self._view(record)

    async def cancel(self, run_id: str) -> RunView:
        """Drop a queued run, or interrupt a running one (its undo runs); 409 once it ended
        or reached its undo (its verdict is made)."""
        queued = self._queued.get(run_id)
        if queued is not None:
            await self._drop_queued(queued, CANCELLED_BY_USER, RunStatus.CANCELLED)
            return await self.get(run_id)
        running = self._running.get(run_id)
        if running is not None:
            if running.cancel_reason is None and running.control.ending:
                raise RunAlreadyEnded(
                    f"run {run_id} is already ending: its undo is running and its verdict stands"
                )
            if running.cancel_reason is None:
                running.cancel_reason = CANCELLED_BY_USER
                running.control.interrupt(CANCELLED_BY_USER, RunStatus.CANCELLED)
            return await self.get(run_id)
        view = await self.get(run_id)
        raise RunAlreadyEnded(f"run {run_id} has already ended ({view.record.status.value})")

    async def follow(self, run_id: str, after_seq: int = 0) -> AsyncGenerator[JournalEvent, None]:
        """The run's journal events after ``after_seq``, live while it runs, until it ends.

        A queued run is waited for; an ended one gives its stored journal. RunNotFound
        when there is no such run."""
        queued = self._queued.get(run_id)
        if queued is not None:
            await queued.started.wait()
        elif run_id not in self._running and await self._store.get_run(run_id) is None:
            raise RunNotFound(f"no run {run_id!r}")
        last = after_seq
        async for event in self.events.follow(run_id, after_seq):
            last = event.seq
            yield event
        # Not live (any more): the engine stored the whole journal before the run ended.
        for event in await self._store.events(run_id):
            if event.seq > last:
                last = event.seq
                yield event

    async def wait(self, run_id: str) -> None:
        """Until the run is no longer queued nor running (for tests and the gRPC watch)."""
        while True:
            entry = self._queued.get(run_id) or self._running.get(run_id)
            if entry is None:
                return
            if entry.task is not None:
                await asyncio.wait([entry.task])
            else:
                await asyncio.sleep(0.01)

    # -- validation --------------------------------------------------------------------

    def _validate(self, request: RunRequest) -> LoadedScenario:
        try:
            loaded = self.library.load(
                name=request.scenario, document=request.document, overrides=request.vars
            )
        except ScenarioInvalid as exc:
            raise ScenarioRejected(exc.problems) from None
        undeclared = undeclared_variables(request.scenario or DOCUMENT_LABEL, request.vars, loaded)
        if undeclared:
            raise ScenarioRejected(undeclared)
        if request.remote and request.document is not None and not self._allow_remote_execution:
            found = local_execution(loaded.model)
            if found:
                raise NotAllowed(
                    "a scenario sent over the network may not run anything on this host "
                    "(ALLOW_REMOTE_EXECUTION is off): " + "; ".join(found)
                )
        return loaded

    # -- dispatching -------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            timeout = LEASE_RETRY_S if self._queued else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._start_what_can_start()
            except Exception:
                log.exception("run dispatcher: starting queued runs failed")

    async def _start_what_can_start(self) -> None:
        for entry in list(self._queued.values()):
            if len(self._running) >= self.max_running:
                return
            if entry.run_id not in self._queued:
                continue
            holder = f"{self._holder}/{entry.run_id}"
            try:
                taken = await self._leases.try_acquire(entry.keys, holder)
            except LeaseUnavailable as exc:
                entry.waiting_for = f"the leases cannot be taken: {exc}"
                continue
            if not taken:
                held = await self._holders(entry.keys)
                entry.waiting_for = "targets in use: " + ", ".join(
                    f"{key} by {who}" for key, who in sorted(held.items())
                )
                continue
            if entry.run_id not in self._queued:  # cancelled while the leases were taken
                await self._release(entry)
                continue
            del self._queued[entry.run_id]
            entry.waiting_for = ""
            self._running[entry.run_id] = entry
            self.events.open(entry.run_id)
            entry.started.set()
            self.most_running = max(self.most_running, len(self._running))
            self._metrics.queue_length(len(self._queued))
            self._metrics.in_progress(len(self._running))
            entry.task = asyncio.create_task(self._execute(entry), name=f"run-{entry.run_id}")

    async def _holders(self, keys: frozenset[str]) -> dict[str, str]:
        try:
            return await self._leases.holders(keys)
        except LeaseUnavailable:
            return {}

    # -- one run -----------------------------------------------------------------------

    async def _execute(self, entry: _Entry) -> None:
        renewer = (
            asyncio.create_task(self._renew(entry), name=f"leases-{entry.run_id}")
            if entry.keys
            else None
        )
        result: RunResult | None = None
        problem = ""
        try:
            result = await self._run(entry)
        except asyncio.CancelledError:
            problem = "the service stopped during the run"
            raise
        except Exception as exc:
            log.exception("run %s: could not be run", entry.run_id)
            problem = f"could not be run: {exc}"
        finally:
            if renewer is not None:
                renewer.cancel()
                await asyncio.wait([renewer])
            await asyncio.shield(self._finish(entry, result, problem))

    async def _run(self, entry: _Entry) -> RunResult | None:
        from test_coordinator.runtime.ports_alloc import free_port

        request = entry.request
        discovered = None
        if self._discover is not None:
            source = self.library.source(name=request.scenario, document=request.document)
            try:
                discovered = await self._discover(source)
            except ScenarioInvalid as exc:  # DiscoveryFailed: not registered, no registry
                raise RuntimeError(f"service discovery: {exc.problems[0].message}") from None
        try:
            loaded = self.library.load(
                name=request.scenario,
                document=request.document,
                overrides=request.vars,
                run_id=entry.run_id,
                reports_dir=self._reports_dir,
                allocate_port=self._allocate_port or free_port,
                discovered=discovered,
            )
        except ScenarioInvalid as exc:  # the library's file changed since it was submitted
            raise RuntimeError(f"the scenario is no longer valid: {exc.problems[0]}") from None
        options = RunOptions(run_id=entry.run_id, seed=entry.seed, reports_dir=self._reports_dir)
        result = await self._runner(
            loaded, self._deps, options, control=entry.control, listeners=(self.events.publish,)
        )
        await asyncio.to_thread(self._reports, result)
        return result

    def _reports(self, result: RunResult) -> None:
        if self._write_reports is not None:
            self._write_reports(result)
            return
        from test_coordinator.reporting import write_run_reports

        write_run_reports(result)

    async def _renew(self, entry: _Entry) -> None:
        """Keep the run's leases while it runs. A lease lost interrupts the run, and so does
        a store of leases that cannot be reached until the leases may have expired: another
        coordinator could then take the run's targets."""
        holder = f"{self._holder}/{entry.run_id}"
        ttl_s = getattr(self._leases, "ttl_ms", 30_000) / 1000.0
        interval = max(ttl_s / 3.0, 0.05)
        held_until = time.monotonic() + ttl_s
        while True:
            await asyncio.sleep(interval)
            try:
                lost = await self._leases.renew(entry.keys, holder)
            except LeaseUnavailable as exc:
                log.warning("run %s: leases not renewed: %s", entry.run_id, exc)
                if time.monotonic() + interval < held_until:
                    continue  # still held through the next attempt
                reason = (
                    f"its leases could not be renewed for {ttl_s:g} s ({exc}): another "
                    "coordinator may take its targets"
                )
                entry.cancel_reason = entry.cancel_reason or reason
                entry.control.interrupt(reason)
                return
            held_until = time.monotonic() + ttl_s
            if lost:
                reason = f"lost its lease on {', '.join(lost)}"
                entry.cancel_reason = entry.cancel_reason or reason
                entry.control.interrupt(reason)
                return

    async def _finish(self, entry: _Entry, result: RunResult | None, problem: str) -> None:
        try:
            await self._store_outcome(entry, result, problem)
        except Exception as exc:
            log.warning("run %s: final state not stored: %s", entry.run_id, exc)
        finally:
            await self._release(entry)
            self._running.pop(entry.run_id, None)
            self.events.finish(entry.run_id)
            self._metrics.in_progress(len(self._running))
            self._wake.set()

    async def _store_outcome(self, entry: _Entry, result: RunResult | None, problem: str) -> None:
        stored = await self._store.get_run(entry.run_id)
        base = stored or RunRecord(
            run_id=entry.run_id,
            scenario=entry.scenario,
            status=RunStatus.ERROR,
            started_at_ms=entry.submitted_at_ms,
        )
        status = base.status
        summary: dict[str, Any] = {**base.summary, **entry.submission()}
        if result is None:
            status = RunStatus.ERROR if status not in FINISHED else status
            summary.setdefault("reason", problem)
        elif entry.cancel_reason is not None and result.outcome.value == "interrupted":
            # Cancelled by a user; stopped by the service or by a lost lease: aborted.
            if entry.cancel_reason == CANCELLED_BY_USER:
                status = RunStatus.CANCELLED
            if entry.cancel_reason not in str(summary.get("reason") or ""):
                summary["reason"] = entry.cancel_reason
        if status not in FINISHED:
            status = RunStatus.ERROR
        record = replace(
            base,
            status=status,
            ended_at_ms=base.ended_at_ms or self._now_ms(),
            summary=summary,
        )
        await self._store.save_run(record)
        self._metrics.finished(record.status.value, result)

    async def _drop_queued(
        self, entry: _Entry, reason: str, status: RunStatus = RunStatus.ABORTED
    ) -> None:
        self._queued.pop(entry.run_id, None)
        entry.cancel_reason = reason
        self._metrics.queue_length(len(self._queued))
        now = self._now_ms()
        record = RunRecord(
            run_id=entry.run_id,
            scenario=entry.scenario,
            status=status,
            started_at_ms=entry.submitted_at_ms,
            ended_at_ms=now,
            summary={**entry.submission(), "reason": reason},
        )
        try:
            await self._store.save_run(record)
        except Exception as exc:
            log.warning("run %s: not stored as %s: %s", entry.run_id, status.value, exc)
        finally:
            entry.started.set()  # its followers read the record stored just now
        self._metrics.finished(status.value, None)

    async def _release(self, entry: _Entry) -> None:
        if not entry.keys:
            return
        try:
            await self._leases.release(entry.keys, f"{self._holder}/{entry.run_id}")
        except LeaseUnavailable as exc:
            log.warning("run %s: leases not released (they expire): %s", entry.run_id, exc)

    # -- views -------------------------------------------------------------------------

    def _view(self, record: RunRecord) -> RunView:
        """The record as callers see it: an ended status only once the manager is done with
        the run (its reports written, its final record stored, its leases given back)."""
        queued = self._queued.get(record.run_id)
        if queued is not None:
            position = list(self._queued).index(record.run_id) + 1
            return RunView(
                _with_submission(record, queued),
                queue_position=position,
                waiting_for=queued.waiting_for,
                live=True,
            )
        running = self._running.get(record.run_id)
        if running is not None:
            if record.status in FINISHED:  # stored by the engine; reports not written yet
                record = replace(record, status=RunStatus.RUNNING)
            return RunView(
                _with_submission(record, running),
                cancel_requested=running.cancel_reason is not None,
                live=True,
            )
        return RunView(record)


def _with_submission(record: RunRecord, entry: _Entry) -> RunRecord:
    """The engine stores its own summary while the run goes; the submission is kept beside it."""
    return replace(record, summary={**record.summary, **entry.submission()})
