"""Commands run at a rate for the load generator: success is exit status 0.

Each run is a process (no shell) in a session and process group of its own,
stdin and stdout on /dev/null; the end of its stderr says why it failed. Its
answer is in once the command itself has exited (on Linux the loop waits on a
pidfd, elsewhere it polls), and then what is left of its group is killed. At
the deadline the whole group is killed and the run counts as a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from test_coordinator.runtime.load_loop import (
    READ,
    Attempt,
    LoadTarget,
    Outcome,
    Reactor,
    failed,
)

STDERR_TAIL_BYTES = 300


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class CommandTarget(LoadTarget):
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
    ) -> None:
        if not argv:
            raise ValueError("a command load needs a command")
        self.argv = tuple(argv)
        self.env = {**os.environ, **env} if env else None
        self.cwd = cwd
        self.description = "command: " + " ".join(self.argv)
        self.reaping: set[_Run] = set()

    def begin(
        self, reactor: Reactor, started: float, deadline: float, finish: Callable[[Outcome], None]
    ) -> Attempt | None:
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            finish(failed(reactor.clock(), "other", f"{self.argv[0]}: cannot run: {exc}"))
            return None
        return _Run(self, reactor, process, started, deadline, finish)

    def busy(self) -> bool:
        return bool(self.reaping)

    def close(self, reactor: Reactor) -> None:
        for run in list(self.reaping):
            run.abandon()


class _Run(Attempt):
    def __init__(
        self,
        target: CommandTarget,
        reactor: Reactor,
        process: subprocess.Popen[bytes],
        started: float,
        deadline: float,
        finish: Callable[[Outcome], None],
    ) -> None:
        super().__init__(started, deadline, finish)
        self._target = target
        self._reactor = reactor
        self._process = process
        self._stderr = bytearray()
        self._pidfd: int | None = None
        assert process.stderr is not None
        os.set_blocking(process.stderr.fileno(), False)
        reactor.watch(process.stderr, READ, self._read_stderr)
        try:
            self._pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            reactor.pollers.add(self._poll)
        else:
            reactor.watch(self._pidfd, READ, self._exited)

    def _read_stderr(self, mask: int) -> None:
        pipe = self._process.stderr
        if pipe is None or pipe.closed:
            return
        try:
            chunk = os.read(pipe.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close_stderr()
            return
        self._stderr += chunk
        del self._stderr[:-STDERR_TAIL_BYTES]

    def _poll(self) -> None:
        if self._process.poll() is not None:
            self._exited(0)

    def _exited(self, mask: int) -> None:
        now = self._reactor.clock()
        _kill_group(self._process.pid)  # what the command left behind; it is not reaped yet
        code = self._process.wait()
        self._read_stderr(0)
        self._release()
        self._target.reaping.discard(self)
        if self.done:
            return
        if code == 0:
            self.finish(Outcome(True, now))
            return
        tail = self._stderr.decode("utf-8", "replace").strip().splitlines()
        why = f"; stderr: {tail[-1][:200]}" if tail else ""
        self.finish(failed(now, f"exit {code}", f"{self._target.argv[0]}: exit status {code}{why}"))

    def expire(self, now: float) -> None:
        if self._process.poll() is not None:
            self._exited(0)
            return
        _kill_group(self._process.pid)
        self._target.reaping.add(self)
        timeout = round(self.deadline - self.started, 6)
        self.finish(
            failed(
                max(now, self.deadline),
                "timeout",
                f"{self._target.argv[0]}: still running after {timeout:g} s; killed",
            )
        )

    def abandon(self) -> None:
        self.done = True
        if self._process.returncode is None:
            _kill_group(self._process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1.0)
        self._release()
        self._target.reaping.discard(self)

    def _release(self) -> None:
        self._reactor.pollers.discard(self._poll)
        if self._pidfd is not None:
            self._reactor.unwatch(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._close_stderr()

    def _close_stderr(self) -> None:
        pipe = self._process.stderr
        if pipe is not None and not pipe.closed:
            self._reactor.unwatch(pipe)
            pipe.close()
