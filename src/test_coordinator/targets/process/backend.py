"""The ``process`` backend: services as local processes, behind the target port.

Built from the services' ``process:`` sections. Each service runs through the
:class:`~test_coordinator.targets.process.supervisor.ProcessSupervisor` (its own
process group, logs appended to files) with the run marker in its environment,
so :meth:`remove` and a recovery after a crash find every process the run
started, including the ones that left the group.

A service that exits before it is seen healthy is explained by :meth:`exit_problem`
(its status and the end of its stderr); one whose first process exits 0 and
leaves processes behind daemonized: they are stopped, and the message says to
run it in the foreground. What a service left is found by the run marker in
the environment and by the marker file its processes hold open
(:meth:`ProcessSupervisor.holders`), which survives a daemon that overwrote its
environment.

After a crash, a backend built from the undo log :meth:`adopt`\\s the
incarnation a record names (pid and start time): it resumes exactly that
process, never another one that reused its pid.

A service's ``dirs`` and ``setup`` commands run once, at its first :meth:`start`
(:meth:`ProcessSupervisor.prepare`); a failing setup command fails that start
with one line naming the command, its status and the end of its stderr.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from test_coordinator.scenario.inventory import ProcessRun
from test_coordinator.targets.port import RunScope, TargetError, TargetSpec, TargetState
from test_coordinator.targets.process import procfs
from test_coordinator.targets.process.marker import (
    marked_processes,
    marker_env,
    terminate,
    terminate_marked,
)
from test_coordinator.targets.process.supervisor import (
    KILL_WAIT_S,
    BackendError,
    ExitedEarly,
    ProcessSpec,
    ProcessState,
    ProcessSupervisor,
)

KIND = "process"
T = TypeVar("T")
RESUME_CONFIRM_S = 2.0
_POLL_S = 0.005


def process_spec(name: str, config: Mapping[str, Any], run_id: str | None) -> ProcessSpec:
    """The supervisor's spec for a ``process:`` section (as dumped from the scenario)."""
    run = ProcessRun.model_validate(dict(config))
    env = dict(run.env)
    if run_id is not None:
        env.update(marker_env(run_id, name))
    return ProcessSpec(
        name=name,
        command=run.argv,
        env=env,
        cwd=Path(run.cwd) if run.cwd else None,
        stop_grace_s=run.stop_grace,
        user=run.user,
        dirs=tuple(Path(path) for path in run.dirs),
        setup=run.setup,
        setup_timeout_s=run.setup_timeout,
    )


class ProcessBackend:
    kind = KIND

    def __init__(self, specs: Mapping[str, TargetSpec], scope: RunScope) -> None:
        self._scope = scope
        self._specs = {
            name: process_spec(name, spec.config, scope.run_id) for name, spec in specs.items()
        }
        self._supervisor = ProcessSupervisor(scope.log_dir)
        self._adopted: dict[str, procfs.ProcStat] = {}
        self._exit_problems: dict[str, str] = {}
        self._prepared: set[str] = set()

    @property
    def supervisor(self) -> ProcessSupervisor:
        return self._supervisor

    # -- lifecycle ---------------------------------------------------------

    async def start(self, name: str) -> str:
        self._adopted.pop(name, None)
        spec = self._spec(name)
        if name not in self._prepared:
            # dirs and setup commands: once, before the first start (not again on a restart).
            await _translated(self._supervisor.prepare(spec))
            self._prepared.add(name)
        return await self._started(name, self._supervisor.start(spec))

    async def stop(
        self, name: str, grace_s: float | None = None, signum: int | None = None
    ) -> None:
        first = signal.SIGTERM if signum is None else signum
        if name in self._adopted:
            await self._stop_adopted(name, grace_s, first)
            return
        await _translated(self._supervisor.stop(name, grace_s, first))

    async def restart(self, name: str) -> str:
        return await self._started(name, self._supervisor.restart(name))

    async def _started(self, name: str, starting: Awaitable[int]) -> str:
        self._exit_problems.pop(name, None)
        try:
            pid = await _translated(starting)
        except TargetError as exc:
            early = exc.__cause__
            if isinstance(early, ExitedEarly):
                raise TargetError(await self._explain_exit(name, early.swept)) from early
            raise
        return f"pid {pid}"

    async def signal(self, name: str, signum: int) -> None:
        await _translated(self._supervisor.kill(name, signum))

    async def pause(self, name: str) -> None:
        await _translated(self._supervisor.pause(name))

    async def resume(self, name: str) -> None:
        pid = self._pid(name)
        if pid is None:
            raise TargetError(f"{name}: not running; nothing to resume")
        if name in self._adopted:
            _send_group(pid, signal.SIGCONT)
        else:
            await _translated(self._supervisor.resume(name))
        await self._confirm_resumed(name, pid)

    async def _confirm_resumed(self, name: str, pid: int) -> None:
        deadline = time.monotonic() + RESUME_CONFIRM_S
        while True:
            stopped = [m.pid for m in procfs.group_members(pid) if m.is_stopped]
            if not stopped:
                return
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"{name}: pids {stopped} still stopped {RESUME_CONFIRM_S:g} s after SIGCONT"
                )
            await asyncio.sleep(_POLL_S)

    async def _stop_adopted(self, name: str, grace_s: float | None, first: int) -> None:
        stat = self._adopted[name]
        grace = self._spec(name).stop_grace_s if grace_s is None else grace_s
        if _same_process(stat) is None:
            return
        _send_group(stat.pid, first)
        _send_group(stat.pid, signal.SIGCONT)
        if await _gone_within(stat, grace):
            return
        _send_group(stat.pid, signal.SIGKILL)
        if not await _gone_within(stat, KILL_WAIT_S):
            raise TargetError(f"{name}: pid {stat.pid} still not gone after SIGKILL")

    async def remove(self, name: str) -> str:
        """Stop the service, then every process that carries its marker; verified gone."""
        pid = self._pid(name)
        await self.stop(name)
        grace = self._spec(name).stop_grace_s
        try:
            escaped = await terminate_marked(self._scope.run_id, name, grace)
        except TimeoutError as exc:
            raise TargetError(f"{name}: {exc}") from exc
        held = self._supervisor.holders(name)
        await _terminate(name, held, grace)
        escaped = sorted({*escaped, *(stat.pid for stat in held)})
        if pid is None:
            # After a crash the supervisor knows no process: the marker finds them all.
            return f"{name} stopped (pids {escaped})" if escaped else f"{name} was not running"
        done = f"{name} stopped (pid {pid})"
        if escaped:
            done += f"; also stopped {len(escaped)} process(es) it left behind: {escaped}"
        return done

    async def close(self) -> None:
        try:
            await self._supervisor.close()
        except BackendError as exc:
            raise TargetError(str(exc)) from exc
        try:
            await terminate_marked(self._scope.run_id, None, 1.0)
        except TimeoutError as exc:
            raise TargetError(str(exc)) from exc
        for name, held in self._supervisor.holders_of(list(self._specs)).items():
            await _terminate(name, held, 1.0)

    # -- queries -----------------------------------------------------------

    def state(self, name: str) -> TargetState:
        adopted = self._adopted.get(name)
        if adopted is not None:
            now = _same_process(adopted)
            if now is None:
                return TargetState.EXITED
            return TargetState.PAUSED if now.is_stopped else TargetState.RUNNING
        return TargetState(self._supervisor.state(name).value)

    def identity(self, name: str) -> str | None:
        pid = self._pid(name)
        return f"pid {pid}" if pid is not None else None

    def handle(self, name: str) -> dict[str, Any]:
        pid = self._pid(name)
        stat = procfs.read_stat(pid) if pid is not None else None
        return {"pid": pid, "start_ticks": stat.start_ticks if stat is not None else None}

    def adopt(self, name: str, handle: Mapping[str, Any]) -> None:
        pid, ticks = handle.get("pid"), handle.get("start_ticks")
        if not isinstance(pid, int):
            return
        stat = procfs.read_stat(pid)
        if stat is None or stat.is_zombie or (ticks is not None and stat.start_ticks != ticks):
            # Gone, or the pid now belongs to another process: nothing of ours to act on.
            stat = procfs.ProcStat(pid, "X", 0, pid, 0, int(ticks) if ticks is not None else -1)
        self._adopted[name] = stat

    def log_paths(self, name: str) -> list[Path]:
        return self._supervisor.log_paths(name)

    async def sync_logs(self, name: str) -> None:
        return None

    def owns(self, name: str) -> bool:
        return True

    def exit_code(self, name: str) -> int | None:
        return self._supervisor.exit_code(name)

    async def exit_problem(self, name: str) -> str | None:
        """Why the service is gone before it was seen healthy, as a sentence that names it;
        None while it runs (or when this backend did not start it).

        What its processes left behind is stopped first (and named): a first process that
        exited 0 and left some means the command daemonized. Asked again for the same
        incarnation, the same answer."""
        if name in self._adopted or self._supervisor.state(name) is not ProcessState.EXITED:
            return None
        return await self._explain_exit(name)

    async def _explain_exit(self, name: str, swept: list[int] | None = None) -> str:
        """``swept``: what the supervisor already killed of the service's group."""
        known = self._exit_problems.get(name)
        if known is not None:
            return known
        code = self._supervisor.exit_code(name)
        tail = self._supervisor.stderr_tail(name)
        found = {stat.pid: stat for stat in marked_processes(self._scope.run_id, name)}
        found.update((stat.pid, stat) for stat in self._supervisor.holders(name))
        left = sorted({*found, *(swept or ())})
        await _terminate(name, list(found.values()), self._spec(name).stop_grace_s)
        if left and code == 0:
            problem = (
                f"{name} daemonized (its first process exited 0 and left pids {left}); "
                "run it in the foreground (e.g. redis-server --daemonize no)"
            )
        else:
            problem = f"{name} {_ended(code)} before it was healthy"
            if tail:
                problem += f"; stderr: {tail}"
            if left:
                problem += f"; stopped the processes it left: pids {left}"
            elif code == 0:
                problem += "; if it daemonizes, run it in the foreground"
        self._exit_problems[name] = problem
        return problem

    def _pid(self, name: str) -> int | None:
        adopted = self._adopted.get(name)
        if adopted is not None:
            return adopted.pid if _same_process(adopted) is not None else None
        return self._supervisor.pid(name)

    def _spec(self, name: str) -> ProcessSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise TargetError(f"{name}: not a process service") from None


def _same_process(stat: procfs.ProcStat) -> procfs.ProcStat | None:
    """The process now at ``stat.pid`` if it is still the same one and alive, else None."""
    now = procfs.read_stat(stat.pid)
    if now is None or now.is_zombie or now.start_ticks != stat.start_ticks:
        return None
    return now


async def _gone_within(stat: procfs.ProcStat, timeout_s: float) -> bool:
    deadline = time.monotonic() + max(timeout_s, 0.0)
    while _same_process(stat) is not None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


def _ended(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


async def _terminate(name: str, found: list[procfs.ProcStat], grace_s: float) -> None:
    """SIGTERM each process that is still the one found, SIGKILL what is left after
    ``grace_s``; raises TargetError if any outlives that."""
    try:
        await terminate(found, grace_s, KILL_WAIT_S)
    except TimeoutError as exc:
        raise TargetError(f"{name}: {exc}") from None


def _send_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise TargetError(f"cannot signal process group {pgid}: {exc}") from exc


async def _translated(call: Awaitable[T]) -> T:
    try:
        return await call
    except BackendError as exc:
        raise TargetError(str(exc), infrastructure=isinstance(exc.__cause__, OSError)) from exc
