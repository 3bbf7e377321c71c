"""``python -m test_coordinator.guard RUN_ID [LIFETIME_S COORDINATOR_PID]``: wait for the
coordinator; undo the run if it died.

The coordinator holds the write end of the guard's stdin: end of file without
``done`` means it died. Past ``LIFETIME_S`` (the run's timeout and its undo budget),
a coordinator that is stopped (SIGSTOP, a debugger) can neither end the run nor
undo it: the guard kills it, and undoes the run as after any death. A coordinator
that runs past its lifetime is left to finish (a slow undo is still an undo).

Imports only the standard library until it has to act, so that it starts in
milliseconds and costs no memory while the run goes well.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

OVERDUE_POLL_S = 1.0
"""Past the lifetime, how often the guard looks at the coordinator's state."""


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 4):
        print(
            "usage: python -m test_coordinator.guard RUN_ID [LIFETIME_S COORDINATOR_PID]",
            file=sys.stderr,
        )
        return 2
    run_id = argv[1]
    watch = _Coordinator(float(argv[2]), int(argv[3])) if len(argv) == 4 else None
    received = b""
    while True:  # until EOF: the coordinator closed its end, or died
        wait_s = watch.wait_s() if watch is not None else None
        readable, _, _ = select.select([0], [], [], wait_s)
        if not readable:
            assert watch is not None
            watch.overdue(run_id)
            continue
        chunk = os.read(0, 64)
        if not chunk:
            break
        received += chunk
    if received.startswith(b"done"):
        return 0
    started = time.monotonic()
    print(f"guard: the coordinator of run {run_id} died; undoing the run", flush=True)
    import asyncio

    from test_coordinator.entrypoints.recovery_session import recover_in_guard

    code = asyncio.run(recover_in_guard(run_id))
    print(f"guard: done in {time.monotonic() - started:.2f} s (exit {code})", flush=True)
    return code


class _Coordinator:
    """The coordinator process, as /proc shows it (its pid and start time, read now)."""

    def __init__(self, lifetime_s: float, pid: int) -> None:
        self.deadline = time.monotonic() + lifetime_s
        self.pid = pid
        self.start_ticks = _stat(pid)[1]
        self.said_running = False

    def wait_s(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0) or OVERDUE_POLL_S

    def overdue(self, run_id: str) -> None:
        """Past the run's lifetime: kill the coordinator if it is stopped."""
        state, ticks = _stat(self.pid)
        if ticks is None or ticks != self.start_ticks or state in ("Z", "X", "x"):
            return  # gone (or another process now): its end of file is on its way
        if state in ("T", "t"):
            print(
                f"guard: run {run_id} is past its timeout and undo budget, and its "
                f"coordinator (pid {self.pid}) is stopped: killing it to undo the run",
                flush=True,
            )
            os.kill(self.pid, signal.SIGKILL)
        elif not self.said_running:
            self.said_running = True
            print(
                f"guard: run {run_id} is past its timeout and undo budget; its coordinator "
                f"(pid {self.pid}) still runs, so it is left to finish",
                flush=True,
            )


def _stat(pid: int) -> tuple[str | None, int | None]:
    """The state and start time (clock ticks after boot) of ``pid``; Nones if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            raw = file.read()
    except OSError:
        return None, None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode("ascii"), int(fields[19])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
