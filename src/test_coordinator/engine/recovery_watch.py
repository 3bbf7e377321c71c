"""Recovery time: from a fault's injection to the first healthy probe after it.

A fault opens a *watch* on its service at the moment of injection. The watch
counts a health probe only once the fault has taken hold:

* after a restart, stop or kill, the service must run as a new incarnation (its
  identity, a pid or a container's start, differs from the one at injection), so
  an answer from the old process never counts, and a restart is watched while
  the backend is still confirming the new process (no 50 ms blind spot);
* after a pause, only once the pause is confirmed, and the service runs again.

A watcher task polls the service every ``interval_s`` (no probe is sent while
the gate is closed). Every other health probe the engine makes of that service
(an ``expect``, a steady-state check) counts too, if it started after the fault
action completed, so a watcher that loses a race with an ``expect`` step does
not lose the measurement. The recovery moment is when the first healthy probe
*completed* (see :mod:`test_coordinator.runtime.polling`). A new fault on the
service before recovery supersedes the older one, left unrecovered with a note.

A fault that something else restores (a pause, a ``resume``; a stop or a kill,
a ``start``) also records when that restore was performed: a ``resume`` or
``start`` step, or the undo at the end of the run (after the checks, so only
for the reports). The recovery from the restore (to the same first healthy
probe) is the service's own recovery, without the time the fault was left in
place; the recovery from the injection is unchanged by it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from test_coordinator.engine.conditions import as_result
from test_coordinator.engine.journal import Journal
from test_coordinator.engine.ports import Probe
from test_coordinator.engine.results import Recovery
from test_coordinator.runtime.polling import DeadlineExceeded, wait_until
from test_coordinator.runtime.probes import ProbeResult
from test_coordinator.targets.router import RunTargets

WATCH_LIMIT_S = 24 * 3600.0


@dataclass(slots=True)
class Watch:
    recovery: Recovery
    old_identity: str | None
    new_process: bool
    action_done_s: float | None = None
    task: asyncio.Task[None] | None = None
    superseded: bool = False

    @property
    def open(self) -> bool:
        return self.recovery.recovered_at_ms is None and not self.recovery.detail


class RecoveryTracker:
    def __init__(
        self,
        targets: RunTargets,
        journal: Journal,
        interval_s: float,
    ) -> None:
        self._targets = targets
        self._journal = journal
        self._interval_s = interval_s
        self._watches: list[Watch] = []
        self._probes: dict[str, Probe] = {}
        self._intervals: dict[str, float] = {}
        self._ceilings: dict[str, float] = {}

    def use_probe(
        self,
        service: str,
        probe: Probe,
        interval_s: float | None = None,
        max_interval_s: float | None = None,
    ) -> None:
        """The probe that tells whether ``service`` is healthy (its inventory health), how
        often to poll it (default: the tracker's interval) and how far to back off while
        it refuses (default: not at all)."""
        self._probes[service] = probe
        if max_interval_s is not None:
            self._ceilings[service] = max_interval_s
        if interval_s is not None:
            self._intervals[service] = interval_s

    def begin(
        self,
        service: str,
        step_id: str,
        step_name: str,
        fault: str,
        injected_at_s: float,
        *,
        new_process: bool,
        restore: str = "",
    ) -> Watch:
        """Open a watch for a fault injected at ``injected_at_s`` (a monotonic reading).

        With ``new_process`` the watcher starts at once and waits for a new pid;
        otherwise it starts at :meth:`action_done`. ``restore`` is what restores the
        fault (``resume``, ``start``; ``""`` for one that restores itself), see
        :meth:`restored`.
        """
        for watch in self._watches:
            if watch.recovery.service == service and watch.open:
                watch.superseded = True
                self._close(watch, f"not recovered before the next fault (step {step_id})")
        injected_ms = self._journal.clock.ms(injected_at_s)
        watch = Watch(
            Recovery(service, step_id, step_name, fault, injected_ms, restore=restore),
            old_identity=self._targets.identity(service),
            new_process=new_process,
        )
        self._watches.append(watch)
        self._journal.record(
            "fault.injected",
            at_ms=injected_ms,
            service=service,
            step=step_id,
            fault=fault,
            **({"restore": restore} if restore else {}),
        )
        if new_process:
            self._start(watch)
        return watch

    def action_done(self, watch: Watch) -> None:
        """The fault has taken hold (the stop, kill or pause completed)."""
        watch.action_done_s = self._journal.clock.now_s()
        if watch.task is None and watch.open:
            self._start(watch)

    def restored(self, service: str, restore: str, by: str, at_s: float) -> None:
        """``service`` is being restored (``restore``: ``resume`` or ``start``) at ``at_s``, a
        monotonic reading taken just before the call, by ``by`` (a step, the undo).

        Noted on the fault of the service that this restores: not superseded by a later
        fault, not yet healthy again, and not restored before (the first restore counts).
        """
        for watch in self._watches:
            recovery = watch.recovery
            if (
                recovery.service != service
                or not recovery.restore
                or recovery.restore != restore
                or watch.superseded
                or recovery.recovered_at_ms is not None
                or recovery.restored_at_ms is not None
            ):
                continue
            restored_ms = self._journal.clock.ms(at_s)
            watch.recovery = replace(recovery, restored_at_ms=restored_ms, restored_by=by)
            self._journal.record(
                "fault.restored",
                at_ms=restored_ms,
                service=service,
                step=recovery.step_id,
                restore=restore,
                by=by,
            )

    def observed(self, service: str, started_s: float, completed_s: float) -> None:
        """A healthy answer from ``service``, from a probe started at ``started_s``."""
        for watch in self._watches:
            if (
                watch.recovery.service == service
                and watch.open
                and watch.action_done_s is not None
                and started_s >= watch.action_done_s
            ):
                self._recovered(watch, completed_s)

    def _start(self, watch: Watch) -> None:
        watch.task = asyncio.create_task(
            self._watch(watch), name=f"recovery:{watch.recovery.service}:{watch.recovery.step_id}"
        )

    def _gate(self, watch: Watch) -> str | None:
        """Why a probe would not count yet, or None when it would."""
        service = watch.recovery.service
        state = self._targets.state(service)
        if state != "running":
            return f"{service} is {state}"
        if watch.new_process and self._targets.identity(service) == watch.old_identity:
            return f"{service} still runs its old process"
        return None

    async def _watch(self, watch: Watch) -> None:
        service = watch.recovery.service
        probe = self._probes[service]

        async def healthy() -> ProbeResult:
            closed = self._gate(watch)
            if closed is not None:
                return ProbeResult(False, None, closed, 0.0)
            return as_result(await probe.check())

        try:
            _, observed = await wait_until(
                healthy,
                deadline_s=WATCH_LIMIT_S,
                interval_s=self._intervals.get(service, self._interval_s),
                max_interval_s=self._ceilings.get(service),
            )
        except DeadlineExceeded:
            return
        self._recovered(watch, observed)

    def _recovered(self, watch: Watch, observed_s: float) -> None:
        if not watch.open:
            return
        recovered_ms = self._journal.clock.ms(observed_s)
        watch.recovery = replace(watch.recovery, recovered_at_ms=recovered_ms)
        if watch.task is not None and watch.task is not asyncio.current_task():
            watch.task.cancel()
        from_restore = watch.recovery.recovery_from_restore_ms
        self._journal.record(
            "fault.recovered",
            at_ms=recovered_ms,
            service=watch.recovery.service,
            step=watch.recovery.step_id,
            recovery_ms=watch.recovery.recovery_ms,
            **(
                {"recovery_from_restore_ms": from_restore, "restore": watch.recovery.restore}
                if from_restore is not None
                else {}
            ),
        )

    def _close(self, watch: Watch, detail: str) -> None:
        if watch.task is not None:
            watch.task.cancel()
        watch.recovery = replace(watch.recovery, detail=detail)

    async def settle(self, timeout_s: float) -> None:
        """Give watches whose service already runs again up to ``timeout_s`` to see it healthy.

        A fault undone by the last step (a resume, a start) is otherwise judged
        before its watcher's next probe: the run would end before recovery
        could be observed. Watches of a service still stopped or paused are not
        waited for.
        """
        pending = [
            w.task
            for w in self._watches
            if w.open and w.task is not None and not w.task.done() and self._gate(w) is None
        ]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def close(self) -> None:
        """Stop the watchers still waiting; their faults stay unrecovered."""
        tasks = [w.task for w in self._watches if w.task is not None and not w.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        for watch in self._watches:
            if watch.open:
                watch.recovery = replace(
                    watch.recovery, detail="not healthy again by the end of the steps"
                )

    def results(self) -> tuple[Recovery, ...]:
        return tuple(watch.recovery for watch in self._watches)
