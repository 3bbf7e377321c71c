"""The process supervisor: services as child processes in their own process groups.

Each service runs in a new session (so a new process group whose id is the
child's pid) with the coordinator's environment plus its own, in its own working
directory, stdin from /dev/null. Its stdout and stderr are appended to two files
in the log directory, ``{name}.out.log`` and ``{name}.err.log``, so a restart
keeps the earlier lines and the two streams can be checked apart.

Every signal goes to the whole group, so a shell wrapper's children and any
grandchildren the service forked are stopped, paused and killed with it. A
process that calls ``setsid`` itself leaves the group and is out of reach.

Each process also holds ``.{name}.marker`` in the log directory open (an
inherited, read-only descriptor): :meth:`ProcessSupervisor.holders` finds what a
service started even after it left the group and overwrote its environment (the
run marker there), as daemons that set their process title do (redis-server,
nginx, postgres).

Whether a process is gone is decided by awaiting our own child (asyncio reaps
it) and, for the rest of its group, by reading ``/proc/PID/stat`` (zombies
count as gone); never with ``kill -0``. Every wait has a deadline; a process
that outlives SIGKILL past the deadline is reported as a :class:`BackendError`.

A spec with a ``user`` runs as that user, its primary group and its other
groups (``HOME``, ``USER`` and ``LOGNAME`` are set to the user's unless the spec
sets them); the log files and the marker are opened by the coordinator and
inherited, so they need no permission of the user. :meth:`ProcessSupervisor.prepare`
makes the spec's ``dirs`` (owned by the user, mode 0700) and runs its ``setup``
commands once, before the first start, the same way as the service itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pwd
import re
import signal
import stat as stat_mode
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from test_coordinator.targets.process import procfs

log = logging.getLogger(__name__)

EXIT_CHECK_S = 0.02
"""How long start() watches a new process for an immediate exit (a shell that cannot
find its command, a missing library). Kept short: start() returns after it, so a
longer watch would delay the first health probe of a fast service (tiny_server is
healthy about 50 ms after spawn) and inflate its measured recovery time. Later
exits show in state(), exit_code() and stderr_tail()."""

KILL_WAIT_S = 5.0
"""How long a process group may take to vanish after SIGKILL."""

PAUSE_WAIT_S = 1.0
"""How long pause() waits for every member of the group to show as stopped."""

_GROUP_POLL_S = 0.005
_STDERR_TAIL_BYTES = 400
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STOPPING_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
_JOB_CONTROL_SIGNALS = (
    signal.SIGSTOP,
    signal.SIGCONT,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


class BackendError(Exception):
    """A process could not be started, signalled or stopped; the message names the service."""


class ExitedEarly(BackendError):
    """start() saw the new process exit within ``exit_check_s``; the rest of its group
    (``swept``: their pids) was killed."""

    def __init__(self, message: str, swept: list[int]) -> None:
        super().__init__(message)
        self.swept = swept


class ProcessState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"
    NOT_STARTED = "not-started"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to run one service as a local process."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_grace_s: float = 5.0
    user: str | None = None
    dirs: tuple[Path, ...] = ()
    setup: tuple[tuple[str, ...], ...] = ()
    setup_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise ValueError(
                f"process name {self.name!r} is not allowed; allowed: letters, digits, "
                "'.', '_' and '-', starting with a letter or digit"
            )
        if isinstance(self.command, str):
            raise ValueError(
                f"process {self.name}: the command is a sequence of arguments, not a string"
            )
        object.__setattr__(self, "command", tuple(self.command))
        bad_env = [
            k for k, v in self.env.items() if not isinstance(k, str) or not isinstance(v, str)
        ]
        if bad_env:
            raise ValueError(f"process {self.name}: environment values must be strings: {bad_env}")
        if not self.command or not self.command[0]:
            raise ValueError(f"process {self.name}: the command is empty")
        if self.stop_grace_s < 0:
            raise ValueError(f"process {self.name}: stop_grace_s must be >= 0")
        object.__setattr__(self, "dirs", tuple(Path(path) for path in self.dirs))
        object.__setattr__(self, "setup", tuple(tuple(argv) for argv in self.setup))
        if any(not argv or not argv[0] for argv in self.setup):
            raise ValueError(f"process {self.name}: a setup command is empty")
        if self.setup_timeout_s <= 0:
            raise ValueError(f"process {self.name}: setup_timeout_s must be > 0")


class _Managed:
    """One started incarnation of a service."""

    __slots__ = (
        "err_offset",
        "exit_requested",
        "paused",
        "process",
        "spec",
        "watcher",
    )

    def __init__(
        self, spec: ProcessSpec, process: asyncio.subprocess.Process, err_offset: int
    ) -> None:
        self.spec = spec
        self.process = process
        self.err_offset = err_offset
        self.paused = False
        self.exit_requested = False
        self.watcher: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None


class ProcessSupervisor:
    """Starts, signals and stops local processes; close() leaves none behind.

    ``on_exit(name, returncode)`` is called once for every exit of a process it
    started, whoever caused it (returncode is ``-N`` for death by signal N); use
    :meth:`exit_requested` to tell a crash from a stop or kill asked of the backend.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        on_exit: Callable[[str, int], None] | None = None,
        exit_check_s: float = EXIT_CHECK_S,
    ) -> None:
        self._log_dir = Path(log_dir)
        self._on_exit = on_exit
        self._exit_check_s = exit_check_s
        self._procs: dict[str, _Managed] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    async def start(self, spec: ProcessSpec) -> int:
        """Start the service and return its pid (also its process group id).

        Raises BackendError if it is already running or if the command cannot be
        spawned; ExitedEarly if it exits within ``exit_check_s`` of starting.
        """
        async with self._lock(spec.name):
            return await self._start(spec)

    async def stop(
        self, name: str, grace_s: float | None = None, first: int = signal.SIGTERM
    ) -> None:
        """``first`` (SIGTERM by default; and SIGCONT) to the group, up to ``grace_s``
        (default the spec's ``stop_grace_s``) for it to go, then SIGKILL to whatever is
        left of the group.

        Idempotent: stopping a service that is not running still sweeps any
        leftover members of its group, and does nothing more.
        """
        async with self._lock(name):
            await self._stop(name, grace_s, first)

    async def restart(self, name: str) -> int:
        """Stop the service, then start it again with the same spec; the new pid."""
        async with self._lock(name):
            managed = self._procs.get(name)
            if managed is None:
                raise BackendError(f"{name}: cannot restart: it was never started")
            await self._stop(name, None)
            return await self._start(managed.spec)

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the service's process group.

        After SIGKILL it waits (bounded) until the process is reaped, so that
        state() is ``exited`` when it returns; for other signals it returns at once.
        """
        managed = self._require_running(name, f"send signal {_signal_name(sig)}")
        if sig not in _JOB_CONTROL_SIGNALS:
            managed.exit_requested = True
        self._signal_group(managed, sig)
        if sig in _STOPPING_SIGNALS:
            await self._wait_stopped(managed, _signal_name(sig))  # its undo resumes the rest
            managed.paused = True
        elif sig == signal.SIGCONT:
            managed.paused = False
        elif sig == signal.SIGKILL and not await self._wait_exit(managed, KILL_WAIT_S):
            raise BackendError(
                f"{name}: pid {managed.pid} still not gone {KILL_WAIT_S:g} s after SIGKILL"
            )

    async def pause(self, name: str) -> None:
        """SIGSTOP the group and wait (bounded) until every member shows as stopped."""
        managed = self._require_running(name, "pause")
        self._signal_group(managed, signal.SIGSTOP)
        managed.paused = True
        await self._wait_stopped(managed, "SIGSTOP")

    async def _wait_stopped(self, managed: _Managed, what: str) -> None:
        """Until every member of the group shows as stopped (bounded): a signal that should
        have stopped it and did not is an error, not a pause that never was."""
        deadline = time.monotonic() + PAUSE_WAIT_S
        while True:
            running = [m.pid for m in procfs.group_members(managed.pid) if not m.is_stopped]
            if not running or not managed.running:
                return
            if time.monotonic() >= deadline:
                hint = (
                    ""
                    if what == "SIGSTOP"
                    else ": a service runs in its own session, where the kernel discards "
                    f"{what} unless the program handles it; pause (SIGSTOP) freezes it"
                )
                raise BackendError(
                    f"{managed.spec.name}: pids {running} not stopped {PAUSE_WAIT_S:g} s "
                    f"after {what}{hint}"
                )
            await asyncio.sleep(_GROUP_POLL_S)

    async def resume(self, name: str) -> None:
        """SIGCONT the group; harmless on a service that is not paused."""
        managed = self._require_running(name, "resume")
        self._signal_group(managed, signal.SIGCONT)
        managed.paused = False

    async def prepare(self, spec: ProcessSpec) -> None:
        """Make the spec's ``dirs`` and run its ``setup`` commands, in order, each within
        ``setup_timeout_s``; BackendError (one line: the command, its status and the end
        of its stderr) on the first that fails. Their output is appended to the
        service's logs. Call it once, before the first :meth:`start`."""
        async with self._lock(spec.name):
            if self._closed:
                raise BackendError(f"{spec.name}: cannot set up: the process backend is closed")
            account = _account(spec)
            for path in spec.dirs:
                _make_dir(spec.name, path, account)
            if spec.setup and spec.cwd is not None and not _is_dir(spec.cwd):
                raise BackendError(
                    f"{spec.name}: cannot set up: working directory {spec.cwd} does not exist"
                ) from _missing(spec.cwd)
            for index, argv in enumerate(spec.setup, start=1):
                await self._run_setup(spec, account, index, argv)

    async def _spawn(
        self, spec: ProcessSpec, argv: tuple[str, ...], account: pwd.struct_passwd | None
    ) -> tuple[asyncio.subprocess.Process, int]:
        """``argv`` in a new session with the service's env, cwd, user, log files and marker
        descriptor; the process and where this start's stderr begins. Raises BackendError
        when the logs cannot be opened, OSError when the command cannot be spawned."""
        out_path, err_path = self.log_paths(spec.name)
        try:
            out_file, err_file, err_offset = _open_logs(out_path, err_path)
        except OSError as exc:
            raise BackendError(f"{spec.name}: cannot open its log files: {exc}") from exc
        with out_file, err_file:
            marker = os.open(self.marker_path(spec.name), os.O_RDONLY | os.O_CREAT, 0o600)
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out_file,
                    stderr=err_file,
                    env=_environment(spec, account),
                    cwd=spec.cwd,
                    start_new_session=True,
                    pass_fds=(marker,),
                    **_credentials(account),
                )
            finally:
                os.close(marker)
        return process, err_offset

    async def _run_setup(
        self,
        spec: ProcessSpec,
        account: pwd.struct_passwd | None,
        index: int,
        argv: tuple[str, ...],
    ) -> None:
        what = f"{spec.name}: setup command {index} of {len(spec.setup)} ({_shown(argv)})"
        err_path = self.log_paths(spec.name)[1]
        try:
            process, err_offset = await self._spawn(spec, argv, account)
        except OSError as exc:
            raise BackendError(f"{what}: cannot run: {exc}") from exc
        log.debug("%s: running as pid %d", what, process.pid)
        try:
            async with asyncio.timeout(spec.setup_timeout_s):
                code = await process.wait()
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            await self._wait_group_gone(process.pid, KILL_WAIT_S)
            tail = _read_tail(err_path, err_offset)
            raise BackendError(
                f"{what}: still running after {spec.setup_timeout_s:g} s (killed)"
                + (f"; stderr: {tail}" if tail else "")
            ) from None
        if procfs.group_members(process.pid):
            _kill_group(process.pid)
            await self._wait_group_gone(process.pid, KILL_WAIT_S)
        if code != 0:
            tail = _read_tail(err_path, err_offset)
            raise BackendError(
                f"{what}: {_status(code)}" + (f"; stderr: {tail}" if tail else f"; see {err_path}")
            )

    async def close(self, grace_s: float | None = None) -> None:
        """Stop every process this backend started, whatever its state; idempotent.

        Stops run concurrently, each bounded by its grace period plus
        ``KILL_WAIT_S`` twice. A cancellation during close() lets the stops
        finish first (within the same bound). Raises BackendError naming every
        service that could not be stopped, after trying them all.
        """
        if self._closed:
            return
        self._closed = True
        stopping = asyncio.ensure_future(self._stop_all(grace_s))
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await asyncio.wait([stopping], timeout=self._close_bound(grace_s))
            raise

    async def _stop_all(self, grace_s: float | None) -> None:
        names = list(self._procs)
        results = await asyncio.gather(
            *(self.stop(name, grace_s) for name in names), return_exceptions=True
        )
        watchers = [m.watcher for m in self._procs.values() if m.watcher is not None]
        if watchers:
            _, pending = await asyncio.wait(watchers, timeout=1.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        failures = [str(result) for result in results if isinstance(result, BaseException)]
        if failures:
            raise BackendError("; ".join(failures))

    def _close_bound(self, grace_s: float | None) -> float:
        graces = [
            grace_s if grace_s is not None else m.spec.stop_grace_s for m in self._procs.values()
        ]
        return max(graces, default=0.0) + 2 * KILL_WAIT_S + 2.0

    # -- queries -----------------------------------------------------------

    def state(self, name: str) -> ProcessState:
        managed = self._procs.get(name)
        if managed is None:
            return ProcessState.NOT_STARTED
        if not managed.running:
            return ProcessState.EXITED
        return ProcessState.PAUSED if managed.paused else ProcessState.RUNNING

    def pid(self, name: str) -> int | None:
        """The pid (and process group id) while running or paused, else None."""
        managed = self._procs.get(name)
        return managed.pid if managed is not None and managed.running else None

    def exit_code(self, name: str) -> int | None:
        """The last incarnation's exit status (``-N`` for signal N), None if not exited."""
        managed = self._procs.get(name)
        return managed.process.returncode if managed is not None else None

    def exit_requested(self, name: str) -> bool:
        """True if the last incarnation was stopped or signalled through this backend."""
        managed = self._procs.get(name)
        return managed is not None and managed.exit_requested

    def spec(self, name: str) -> ProcessSpec | None:
        managed = self._procs.get(name)
        return managed.spec if managed is not None else None

    def names(self) -> list[str]:
        """Every service this backend has started, in start order."""
        return list(self._procs)

    def stderr_tail(self, name: str) -> str:
        """The last lines (up to 400 bytes, joined by " | ") that the current or last
        incarnation wrote to stderr; for error messages after an unexpected exit."""
        managed = self._procs.get(name)
        if managed is None:
            return ""
        return _read_tail(self.log_paths(name)[1], managed.err_offset)

    def log_paths(self, name: str) -> list[Path]:
        """``[stdout log, stderr log]`` of the service (they exist once it has started)."""
        return [self._log_dir / f"{name}.out.log", self._log_dir / f"{name}.err.log"]

    def marker_path(self, name: str) -> Path:
        """The file every process of the service holds open (inherited from its start)."""
        return self._log_dir / f".{name}.marker"

    def holders(self, name: str) -> list[procfs.ProcStat]:
        """Every live process holding the service's marker file open: whatever it started
        and did not close it, inside its group or not, its environment intact or not.
        Works for a supervisor built again after a crash (the same log directory)."""
        return self.holders_of([name])[name]

    def holders_of(self, names: list[str]) -> dict[str, list[procfs.ProcStat]]:
        """:meth:`holders` of several services, in one pass over ``/proc``."""
        paths = {os.path.realpath(self.marker_path(name)): name for name in names}
        found: dict[str, list[procfs.ProcStat]] = {name: [] for name in names}
        for path, stat in _holders(set(paths)):
            found[paths[path]].append(stat)
        return found

    # -- internals ---------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    async def _start(self, spec: ProcessSpec) -> int:
        if self._closed:
            raise BackendError(f"{spec.name}: cannot start: the process backend is closed")
        previous = self._procs.get(spec.name)
        if previous is not None and previous.running:
            raise BackendError(f"{spec.name}: cannot start: already running as pid {previous.pid}")
        if previous is not None:
            await self._sweep_group(previous)
        if spec.cwd is not None and not _is_dir(spec.cwd):
            raise BackendError(
                f"{spec.name}: cannot start: working directory {spec.cwd} does not exist"
            ) from _missing(spec.cwd)
        account = _account(spec)

        err_path = self.log_paths(spec.name)[1]
        try:
            process, err_offset = await self._spawn(spec, spec.command, account)
        except OSError as exc:
            raise BackendError(f"{spec.name}: cannot start {spec.command[0]!r}: {exc}") from exc

        managed = _Managed(spec, process, err_offset)
        self._procs[spec.name] = managed
        managed.watcher = asyncio.create_task(self._watch(managed), name=f"exit-watch:{spec.name}")
        if self._exit_check_s > 0 and await self._wait_exit(managed, self._exit_check_s):
            swept = [member.pid for member in procfs.group_members(managed.pid)]
            await self._sweep_group(managed)
            tail = _read_tail(err_path, err_offset)
            raise ExitedEarly(
                f"{spec.name}: exited with status {process.returncode} right after start"
                + (f"; stderr: {tail}" if tail else f"; see {err_path}"),
                swept,
            )
        log.debug("started %s as pid %d", spec.name, process.pid)
        return process.pid

    async def _stop(self, name: str, grace_s: float | None, first: int = signal.SIGTERM) -> None:
        managed = self._procs.get(name)
        if managed is None:
            return
        grace = managed.spec.stop_grace_s if grace_s is None else grace_s
        deadline = time.monotonic() + grace
        if managed.running:
            managed.exit_requested = True
            # A stopped process keeps the signal pending: SIGCONT lets it be handled.
            self._signal_group(managed, first)
            self._signal_group(managed, signal.SIGCONT)
            if not await self._wait_exit(managed, grace):
                self._signal_group(managed, signal.SIGKILL)
                if not await self._wait_exit(managed, KILL_WAIT_S):
                    raise BackendError(
                        f"{name}: pid {managed.pid} still not gone {KILL_WAIT_S:g} s after SIGKILL"
                    )
            # The rest of the group had the same signal: let it use what is left of the grace.
            await self._wait_group_gone(managed.pid, deadline - time.monotonic())
        await self._sweep_group(managed)

    async def _sweep_group(self, managed: _Managed) -> None:
        """SIGKILL whatever is left of the group (orphaned grandchildren) and wait for it."""
        if not procfs.group_members(managed.pid):
            return
        self._signal_group(managed, signal.SIGKILL)
        if not await self._wait_group_gone(managed.pid, KILL_WAIT_S):
            left = [m.pid for m in procfs.group_members(managed.pid)]
            raise BackendError(
                f"{managed.spec.name}: group members {left} still not gone "
                f"{KILL_WAIT_S:g} s after SIGKILL"
            )

    @staticmethod
    async def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while procfs.group_members(pgid):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_GROUP_POLL_S)
        return True

    @staticmethod
    async def _wait_exit(managed: _Managed, timeout_s: float) -> bool:
        if not managed.running:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await managed.process.wait()
        except TimeoutError:
            return False
        return True

    async def _watch(self, managed: _Managed) -> None:
        returncode = await managed.process.wait()
        managed.paused = False
        log.debug("%s (pid %d) exited with %d", managed.spec.name, managed.pid, returncode)
        if self._on_exit is not None:
            try:
                self._on_exit(managed.spec.name, returncode)
            except Exception:
                log.exception("on_exit callback failed for %s", managed.spec.name)

    def _require_running(self, name: str, action: str) -> _Managed:
        managed = self._procs.get(name)
        if managed is None:
            raise BackendError(f"{name}: cannot {action}: it was never started")
        if not managed.running:
            raise BackendError(
                f"{name}: cannot {action}: not running "
                f"(exited with status {managed.process.returncode})"
            )
        return managed

    @staticmethod
    def _signal_group(managed: _Managed, sig: int) -> None:
        try:
            os.killpg(managed.pid, sig)
        except ProcessLookupError:
            pass  # the whole group is gone already
        except PermissionError as exc:
            name, what = managed.spec.name, _signal_name(sig)
            raise BackendError(f"{name}: cannot send {what} to group {managed.pid}: {exc}") from exc


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _account(spec: ProcessSpec) -> pwd.struct_passwd | None:
    """The spec's user from the password database; None when it has none."""
    if spec.user is None:
        return None
    try:
        return pwd.getpwnam(spec.user)
    except KeyError:
        raise BackendError(f"{spec.name}: user {spec.user!r} does not exist") from None


def _credentials(account: pwd.struct_passwd | None) -> dict[str, Any]:
    """``user``/``group``/``extra_groups`` for the subprocess call: nothing when the
    coordinator already runs as that user."""
    if account is None or (account.pw_uid, account.pw_gid) == (os.geteuid(), os.getegid()):
        return {}
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": os.getgrouplist(account.pw_name, account.pw_gid),
    }


def _environment(spec: ProcessSpec, account: pwd.struct_passwd | None) -> dict[str, str]:
    env = dict(os.environ)
    if account is not None:
        env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
    env.update(spec.env)
    return env


def _missing(path: Path) -> FileNotFoundError:
    """What the spawn would have failed with: a working directory that is not there is
    a process that cannot be spawned, as a command that is not there is."""
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))


def _make_dir(name: str, path: Path, account: pwd.struct_passwd | None) -> None:
    """Create ``path`` (and its parents); owned by ``account`` with mode 0700 when given,
    and reachable by it (every parent searchable), else a BackendError saying which is not."""
    if not path.is_absolute():
        raise BackendError(f"{name}: dirs: {path} is not an absolute path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)
            path.chmod(0o700)
    except OSError as exc:
        raise BackendError(f"{name}: cannot make directory {path}: {exc}") from exc
    if account is None or account.pw_uid == 0:
        return
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for parent in reversed(path.parents):
        info = parent.stat()
        if info.st_uid == account.pw_uid:
            bit = stat_mode.S_IXUSR
        elif info.st_gid in groups:
            bit = stat_mode.S_IXGRP
        else:
            bit = stat_mode.S_IXOTH
        if not info.st_mode & bit:
            raise BackendError(
                f"{name}: user {account.pw_name} cannot reach {path}: {parent} "
                f"(mode {stat_mode.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}) "
                "is not searchable by it; put the directory (or --reports-dir) elsewhere"
            )


def _shown(argv: tuple[str, ...], limit: int = 80) -> str:
    text = " ".join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _status(code: int) -> str:
    if code < 0:
        return f"killed by {_signal_name(-code)}"
    return f"exited with status {code}"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _is_dir(path: Path) -> bool:
    return Path(path).is_dir()


def _open_logs(out_path: Path, err_path: Path) -> tuple[BinaryIO, BinaryIO, int]:
    """Both log files opened for appending, and where this start's stderr begins."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_file = out_path.open("ab")
    try:
        err_file = err_path.open("ab")
    except OSError:
        out_file.close()
        raise
    return out_file, err_file, err_file.tell()


def _holders(paths: set[str]) -> list[tuple[str, procfs.ProcStat]]:
    """``(path, process)`` for every live process (but this one) with a descriptor open on
    one of ``paths`` (real paths, as ``/proc/PID/fd`` shows them)."""
    found: list[tuple[str, procfs.ProcStat]] = []
    try:
        entries = os.listdir(procfs.PROC)
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        fd_dir = procfs.PROC / entry / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        held = set()
        for fd in fds:
            try:
                target = os.readlink(fd_dir / fd)
            except OSError:
                continue
            if target in paths:
                held.add(target)
        stat = procfs.read_stat(int(entry)) if held else None
        if stat is not None and not stat.is_zombie:
            found.extend((path, stat) for path in sorted(held))
    return found


def _read_tail(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(offset, size - _STDERR_TAIL_BYTES))
            data = file.read()
    except OSError:
        return ""
    return " | ".join(line for line in data.decode("utf-8", "replace").splitlines() if line.strip())
