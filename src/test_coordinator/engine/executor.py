"""Run one scenario: setup, steady state, steps, steady state, checks; undo always.

Phases, each inside the run's own ``timeout``:

1. setup: start every service the coordinator runs (``process`` or ``docker``, with
   ``autostart``), each once its undo (remove it) is recorded; wait until healthy;
2. steady state before the first step (failing: the run did not start its faults);
3. the steps in order, background steps beside them;
4. steady state after the last step (failing: the system deviated);
5. the checks.

Whatever happens (a failure, a timeout, Ctrl-C, SIGTERM, cancellation) the
``finally`` stops the background work and undoes everything still pending, newest
first: the faults, then the services the run created (see
:mod:`test_coordinator.engine.undo_actions`), so nothing the run started is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from test_coordinator.engine.audit_trail import RunAudit
from test_coordinator.engine.background import BackgroundTasks
from test_coordinator.engine.checks import describe_check, judge_checks
from test_coordinator.engine.conditions import ConditionChecker, as_result
from test_coordinator.engine.context import RunContext, target_specs
from test_coordinator.engine.control import (
    RunControl,
    RunOptions,
    new_run_id,
    new_seed,
)
from test_coordinator.engine.errors import InfrastructureError, StepFailed
from test_coordinator.engine.health_wait import ExitedBeforeHealthy, wait_healthy
from test_coordinator.engine.identity import coordinator_identity
from test_coordinator.engine.journal import Journal, Listener, RunClock
from test_coordinator.engine.log_marks import marks_wanted
from test_coordinator.engine.ports import EngineDeps, RunGuard
from test_coordinator.engine.recovery_watch import RecoveryTracker
from test_coordinator.engine.results import (
    RESTORED_BY_UNDO,
    CheckResult,
    Outcome,
    RunResult,
    Status,
    StepResult,
    UndoResult,
)
from test_coordinator.engine.steps import run_steps
from test_coordinator.engine.tasks import gather_first_error, run_to_completion
from test_coordinator.engine.undo import UndoLedger
from test_coordinator.engine.undo_actions import (
    UndoAction,
    UndoKind,
    heal_network_fault,
    perform,
)
from test_coordinator.engine.undo_verify import health_verifier
from test_coordinator.faults.acting import record_started, start_service
from test_coordinator.ports.storage import RunRecord, RunStatus
from test_coordinator.runtime.polling import DeadlineExceeded
from test_coordinator.runtime.probes import ProbeResult
from test_coordinator.scenario.checks import check_kind
from test_coordinator.scenario.durations import format_duration
from test_coordinator.scenario.loader import LoadedScenario
from test_coordinator.scenario.steps import targets_of
from test_coordinator.scenario.timeline import choose_targets, plan_steps, step_names
from test_coordinator.targets.port import RunScope, TargetError

log = logging.getLogger(__name__)

STEADY_STATE_TIMEOUT_S = 30.0
GUARD_MARGIN_S = 10.0
"""Added to the run's timeout and undo budget before its guard may end a stopped run."""
# After the last step, how long a fault whose service runs again may take to be seen healthy.
RECOVERY_SETTLE_S = 2.0


async def run_scenario(
    loaded: LoadedScenario,
    deps: EngineDeps,
    options: RunOptions,
    *,
    control: RunControl | None = None,
    listeners: Sequence[Listener] = (),
) -> RunResult:
    """Run ``loaded`` once and return what happened; faults are always undone.

    Raises CancelledError only when cancelled by its caller (not through
    ``control``), after undoing everything.
    """
    run = _Run(loaded, deps, options, control, tuple(listeners))
    return await run.execute()


class _Run:
    def __init__(
        self,
        loaded: LoadedScenario,
        deps: EngineDeps,
        options: RunOptions,
        control: RunControl | None,
        listeners: tuple[Listener, ...],
    ) -> None:
        self.loaded = loaded
        self.deps = deps
        self.options = options
        self.control = control
        self.model = loaded.model
        self.clock = RunClock(deps.clock)
        self.journal = Journal(options.run_id, self.clock, listeners)
        self.planned = plan_steps(self.model.steps)
        self.chosen = choose_targets(self.planned, options.seed)
        self.started_epoch_ms = deps.wall_clock_ms()
        self.setup: StepResult | None = None
        self.steady: list[StepResult] = []
        self.checks: list[CheckResult] = []
        self.undos: list[UndoResult] = []
        self.outcome = Outcome.PASSED
        self.reason = ""
        self.ctx: RunContext | None = None

    # -- the run -----------------------------------------------------------------

    async def execute(self) -> RunResult:
        task = asyncio.current_task()
        record = RunRecord(
            run_id=self.options.run_id,
            scenario=self.loaded.name,
            status=RunStatus.RUNNING,
            started_at_ms=self.started_epoch_ms,
            summary={
                "file": str(self.loaded.path),
                "seed": self.options.seed,
                "run_dir": str(self.options.run_dir),
                "coordinator": coordinator_identity(),
            },
        )
        try:
            await self.deps.store.save_run(record)
            guard = await self._arm_guard(record)
        except Exception as exc:
            self._end(Outcome.ERROR, f"cannot store the run: {exc}")
            return self._result()
        ctx = self.ctx = self._context()
        self.journal.record(
            "run.started",
            run_id=self.options.run_id,
            scenario=self.loaded.name,
            file=str(self.loaded.path),
            seed=self.options.seed,
            variables=_jsonable(self.loaded.values),
            timeout_s=self.model.timeout,
        )
        for item in self.planned:
            chosen = self.chosen.get(item.step_id)
            spec = targets_of(item.step)
            if chosen is not None and spec is not None and spec.random:
                self.journal.record(
                    "targets.chosen",
                    step=item.step_id,
                    among=list(spec.services),
                    chosen=list(chosen),
                    seed=self.options.seed,
                )
        await self.journal.flush(self.deps.store)
        flusher = asyncio.create_task(self._flush_periodically(), name="journal-flush")
        cancelled_by_caller = False
        try:
            if self.control is not None:
                self.control.attach(task)  # from here an interruption ends in the finally below
            try:
                async with asyncio.timeout(self.model.timeout) as scope:
                    await self._phases(ctx)
            except TimeoutError:
                if not scope.expired():
                    raise
                self._end(
                    Outcome.TIMED_OUT,
                    f"the run's timeout ({format_duration(self.model.timeout)}) ran out "
                    f"during {ctx.current_step}",
                )
            except asyncio.CancelledError:
                if self.control is not None and self.control.interrupted:
                    if task is not None:
                        task.uncancel()
                    self._end(Outcome.INTERRUPTED, f"interrupted ({self.control.reason})")
                else:
                    cancelled_by_caller = True
                    self._end(Outcome.INTERRUPTED, "cancelled")
            except Exception as exc:
                log.exception("run %s: internal error", self.options.run_id)
                self._end(Outcome.ERROR, f"internal error: {exc!r}")
        finally:
            if self.control is not None:
                self.control.end()
            cancelled_again = await run_to_completion(
                self._cleanup(ctx), self.options.undo_timeout_s
            )
            flusher.cancel()
            await asyncio.wait([flusher])
            await self._store_final()
            abandoned = self.control is not None and self.control.abandoned
            if guard is not None and not abandoned:
                await asyncio.shield(asyncio.to_thread(guard.disarm))
        if cancelled_by_caller or cancelled_again:
            raise asyncio.CancelledError()
        return self._result()

    async def _arm_guard(self, record: RunRecord) -> RunGuard | None:
        """Start the run's watchdog and note it in the run record (so recovery leaves the
        run to it); a run without a guard goes on, with a journal note."""
        if self.deps.guard is None:
            return None
        guard = self.deps.guard(self.options.run_id, self.options.run_dir)
        lifetime_s = self.model.timeout + self.options.undo_timeout_s + GUARD_MARGIN_S
        try:
            identity = guard.arm(lifetime_s)
        except Exception as exc:
            log.warning("run %s: no guard: %s", self.options.run_id, exc)
            self.journal.record("guard.unavailable", detail=str(exc))
            return None
        self.journal.record("guard.armed", pid=identity.get("pid"))
        await self.deps.store.save_run(
            replace(record, summary={**record.summary, "guard": dict(identity)})
        )
        return guard

    def _end(self, outcome: Outcome, reason: str) -> None:
        if self.outcome is Outcome.PASSED:
            self.outcome, self.reason = outcome, reason

    def _escalate(self, problem: str) -> None:
        """The system may not be as it was found: an infrastructure error, whatever came before."""
        if self.outcome is Outcome.PASSED:
            self.outcome, self.reason = Outcome.ERROR, problem
        elif self.outcome is not Outcome.INTERRUPTED:
            self.outcome, self.reason = Outcome.ERROR, f"{self.reason}; then {problem}"
        else:
            self.reason = f"{self.reason}; then {problem}"

    def _context(self) -> RunContext:
        log_dir = self.options.run_dir / "logs"
        targets = self.deps.targets_factory(
            target_specs(self.model),
            RunScope(self.options.run_id, log_dir, started_at_ms=self.started_epoch_ms),
        )
        checker = ConditionChecker(self.model.services, self.deps.probes, self.deps.clock)
        recoveries = RecoveryTracker(targets, self.journal, self.deps.poll_interval_s)
        for name in self.model.services:
            health = self.model.services[name].health
            recoveries.use_probe(
                name,
                checker.health_probe(name),
                health.interval(self.deps.poll_interval_s),
                health.max_interval(self.deps.poll_interval_s),
            )
        checker.observer = recoveries.observed
        audit = self._audit()
        return RunContext(
            run_id=self.options.run_id,
            loaded=self.loaded,
            deps=self.deps,
            targets=targets,
            clock=self.clock,
            journal=self.journal,
            ledger=UndoLedger(
                self.deps.store,
                self.options.run_id,
                self.journal,
                self.deps.wall_clock_ms,
                on_done=audit.undone,
            ),
            checker=checker,
            recoveries=recoveries,
            background=BackgroundTasks(self.journal),
            log_dir=log_dir,
            chosen=self.chosen,
            step_names=step_names(self.planned, self.chosen),
            audit=audit,
            started_epoch_ms=self.started_epoch_ms,
            log_marks_wanted=marks_wanted(self.model.checks),
        )

    def _audit(self) -> RunAudit:
        settings = self.model.audit
        link = None
        url = ""
        if settings is not None and self.deps.audit_link is not None:
            url = self.options.audit_url or settings.url
            try:
                link = self.deps.audit_link(url, self.options.run_dir)
            except Exception as exc:
                log.warning("run %s: no audit reporting: %s", self.options.run_id, exc)
                self.journal.record("audit.unavailable", url=url, detail=str(exc))
        return RunAudit(
            link,
            run_id=self.options.run_id,
            journal=self.journal,
            wall_clock_ms=self.deps.wall_clock_ms,
            affects=settings.affects if settings is not None else None,
            url=url,
        )

    async def _phases(self, ctx: RunContext) -> None:
        if not await self._setup(ctx):
            return
        if not await self._steady_state(ctx, "before"):
            self._end(
                Outcome.NOT_STARTED,
                "the steady state did not hold before the first step: "
                + _first_failure(self.steady),
            )
            return
        try:
            await ctx.background.run_beside(run_steps(ctx, self.model.steps))
            ctx.current_step = "the end of the steps"
            await ctx.recoveries.settle(RECOVERY_SETTLE_S)
        except StepFailed as exc:
            self._end(Outcome.FAILED, str(exc))
        except InfrastructureError as exc:
            self._end(Outcome.ERROR, str(exc))
        finally:
            await ctx.background.stop()
            await ctx.recoveries.close()
        if self.outcome is not Outcome.PASSED:
            return
        if not await self._steady_state(ctx, "after"):
            self._end(
                Outcome.DEVIATED,
                "the steady state did not hold after the last step: " + _first_failure(self.steady),
            )
            return
        ctx.current_step = "the checks"
        self.checks = await judge_checks(ctx, self.model.checks)
        failed = [c for c in self.checks if c.status is not Status.PASSED]
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            self._end(
                Outcome.FAILED, f"check {first.index} ({first.name}) failed: {first.detail}{more}"
            )

    async def _setup(self, ctx: RunContext) -> bool:
        names = [
            name
            for name, service in self.model.services.items()
            if service.managed and service.autostart
        ]
        started = self.clock.ms()
        self.journal.record("setup.started", services=names)
        status, detail = Status.PASSED, f"{', '.join(names) or 'nothing'} started and healthy"
        healthy = {name: asyncio.Event() for name in names}

        async def start_in_order(name: str) -> None:
            for dependency in self.model.services[name].depends_on or ():
                await healthy[dependency].wait()  # bounded: a dependency fails or turns healthy
            await self._start_service(ctx, name)
            healthy[name].set()

        try:
            await gather_first_error([start_in_order(name) for name in names])
            detail = _setup_detail(names, ctx.targets.owns)
        except TargetError as exc:
            infrastructure = exc.infrastructure
            status, detail = (Status.ERROR if infrastructure else Status.FAILED), str(exc)
            self._end(Outcome.ERROR if infrastructure else Outcome.NOT_STARTED, f"setup: {detail}")
        except StepFailed as exc:
            status, detail = Status.FAILED, str(exc)
            self._end(Outcome.NOT_STARTED, f"setup: {detail}")
        ended = self.clock.ms()
        self.setup = StepResult(
            "setup", "start services", "setup", status, started, ended, detail, tuple(names)
        )
        self.journal.record("setup.finished", status=status.value, detail=detail)
        return status is Status.PASSED

    async def _start_service(self, ctx: RunContext, name: str) -> None:
        """Start ``name`` and wait until its health probe answers, or until it exits: an exit
        ends the wait at once, explained by the backend (``exit_problem``)."""
        service = self.model.services[name]
        identity = await start_service(ctx, name)
        record_started(ctx, name, identity, "setup")
        probe = ctx.checker.health_probe(name)

        async def healthy() -> ProbeResult:
            return as_result(await probe.check())

        try:
            _, observed = await wait_healthy(
                ctx.targets,
                name,
                healthy,
                timeout_s=service.start_timeout,
                interval_s=service.health.interval(self.deps.poll_interval_s),
                max_interval_s=service.health.max_interval(self.deps.poll_interval_s),
            )
        except ExitedBeforeHealthy as exc:
            raise StepFailed(str(exc)) from None
        except DeadlineExceeded as exc:
            last = exc.last.detail if exc.last is not None else "no answer"
            raise StepFailed(
                f"{name} not healthy within {format_duration(service.start_timeout)}; last: {last}"
            ) from None
        self.journal.record("service.healthy", at_ms=self.clock.ms(observed), service=name)

    async def _steady_state(self, ctx: RunContext, when: str) -> bool:
        ok = True
        for index, condition in enumerate(self.model.steady_state, start=1):
            step_id = f"{when}.{index}"
            name = f"steady state {when}: {condition.describe()}"
            started = self.clock.ms()
            self.journal.record("steady_state.started", check=step_id, name=name)
            try:
                async with asyncio.timeout(STEADY_STATE_TIMEOUT_S):
                    result = await ctx.checker.check(condition)
                status, detail = (Status.PASSED if result.ok else Status.FAILED), result.detail
            except TimeoutError:
                status, detail = Status.FAILED, f"no answer within {STEADY_STATE_TIMEOUT_S:g} s"
            ended = self.clock.ms()
            self.steady.append(
                StepResult(step_id, name, "steady_state", status, started, ended, detail)
            )
            self.journal.record(
                "steady_state.finished", check=step_id, status=status.value, detail=detail
            )
            ok = ok and status is Status.PASSED
        return ok

    # -- the end -----------------------------------------------------------------

    async def _cleanup(self, ctx: RunContext) -> None:
        self.journal.record("cleanup.started", pending_undos=len(ctx.ledger.pending))
        try:
            await ctx.background.stop()
            await ctx.recoveries.close()
        except Exception:
            log.exception("run %s: stopping background work failed", self.options.run_id)
        self.undos = await ctx.ledger.unwind(lambda action: self._undo(ctx, action))
        failed = [u for u in self.undos if u.status != "done"]
        if failed:
            self._escalate(
                "undo failed: " + "; ".join(f"{u.action} {u.service}: {u.detail}" for u in failed)
            )
        if ctx.untouched_faults:
            self._end(Outcome.FAILED, "; ".join(ctx.untouched_faults))
        await ctx.audit.close()  # before the services stop: the correlator may be one of them
        try:
            await ctx.targets.close()
        except Exception as exc:
            self.journal.record("backend.close_failed", detail=str(exc))
            self._escalate(f"could not stop every process: {exc}")
        await ctx.checker.close()
        self.journal.record("cleanup.finished")

    async def _undo(self, ctx: RunContext, action: UndoAction) -> str:
        if action.kind is UndoKind.HEAL:
            from test_coordinator.faults.network_acting import note_healed

            healed = await heal_network_fault(action, ctx.targets)
            note_healed(ctx, action, healed)
            return healed.detail

        def restoring(action: UndoAction) -> None:
            ctx.recoveries.restored(
                action.service, action.kind.value, RESTORED_BY_UNDO, self.clock.now_s()
            )

        return await perform(
            action,
            ctx.targets,
            health_verifier(self.deps.probes, self.deps.poll_interval_s),
            on_restore=restoring,
        )

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_interval_s)
            await self.journal.flush(self.deps.store)

    async def _store_final(self) -> None:
        result = self._result()
        self.journal.record(
            "run.finished",
            outcome=self.outcome.value,
            status=result.run_status.value,
            reason=self.reason,
            duration_ms=result.duration_ms,
        )
        record = RunRecord(
            run_id=self.options.run_id,
            scenario=self.loaded.name,
            status=result.run_status,
            started_at_ms=self.started_epoch_ms,
            ended_at_ms=self.deps.wall_clock_ms(),
            summary={
                "file": str(self.loaded.path),
                "seed": self.options.seed,
                "run_dir": str(self.options.run_dir),
                "outcome": self.outcome.value,
                "reason": self.reason,
                "exit_code": self.outcome.exit_code,
                "coordinator": coordinator_identity(),
            },
        )
        try:
            async with asyncio.timeout(30.0):
                await self.deps.store.save_run(record)
                await self.journal.flush(self.deps.store)
        except Exception as exc:
            log.warning("run %s: final state not stored: %s", self.options.run_id, exc)

    def _result(self) -> RunResult:
        ctx = self.ctx
        ran = {r.step_id: r for r in ctx.step_results} if ctx is not None else {}
        names = ctx.step_names if ctx is not None else step_names(self.planned, self.chosen)
        steps = []
        for item in self.planned:
            result = ran.get(item.step_id)
            if result is None:
                result = StepResult(
                    item.step_id,
                    names[item.step_id],
                    item.kind,
                    Status.SKIPPED,
                    detail=f"not run: {self.reason or 'the run ended first'}",
                    targets=self.chosen.get(item.step_id, ()),
                )
            steps.append(result)
        checks = list(self.checks)
        judged = {c.index for c in checks}
        for index, check in enumerate(self.model.checks, start=1):
            if index not in judged:
                checks.append(
                    CheckResult(
                        index,
                        describe_check(check),
                        check_kind(check),
                        Status.SKIPPED,
                        f"not judged: {self.reason or 'the run ended first'}",
                    )
                )
        return RunResult(
            run_id=self.options.run_id,
            scenario=self.loaded.name,
            file=self.loaded.path,
            outcome=self.outcome,
            reason=self.reason,
            seed=self.options.seed,
            started_at_epoch_ms=self.started_epoch_ms,
            duration_ms=self.clock.ms(),
            run_dir=self.options.run_dir,
            clock_origin_s=self.clock.origin_s,
            setup=self.setup,
            steps=tuple(steps),
            steady_state=tuple(self.steady),
            checks=tuple(sorted(checks, key=lambda c: c.index)),
            recoveries=ctx.recoveries.results() if ctx is not None else (),
            undos=tuple(self.undos),
            events=self.journal.events,
            variables=_jsonable(self.loaded.values),
            status=self._chosen_status(),
        )

    def _chosen_status(self) -> RunStatus | None:
        """The status the caller chose when it interrupted the run (a cancel: cancelled)."""
        if self.outcome is Outcome.INTERRUPTED and self.control is not None:
            return self.control.status
        return None


def _first_failure(results: list[StepResult]) -> str:
    return next((f"{r.name}: {r.detail}" for r in results if r.status is not Status.PASSED), "")


def _jsonable(values: Any) -> dict[str, Any]:
    return {
        str(k): v if isinstance(v, str | int | float | bool) or v is None else str(v)
        for k, v in dict(values).items()
    }


__all__ = [
    "RunControl",
    "RunOptions",
    "new_run_id",
    "new_seed",
    "run_scenario",
]


def _setup_detail(names: list[str], owns: Callable[[str], bool]) -> str:
    """``a, b started and healthy; c found running and healthy`` (c: a container or proxy
    that exists outside the run, which it does not start)."""
    if not names:
        return "nothing started"
    started = [name for name in names if owns(name)]
    found = [name for name in names if not owns(name)]
    parts = [f"{', '.join(started)} started and healthy"] if started else []
    parts += [f"{', '.join(found)} found running and healthy"] if found else []
    return "; ".join(parts)
