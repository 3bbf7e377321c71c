"""Waiting for a service to be healthy that stops at once when it exits instead.

Used by setup and by the verification of an undone ``start``: a service that
exits (a crash, a busy port, a command that daemonizes) is reported with the
backend's explanation as soon as it is gone, not after its whole start timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.probe_result import ProbeResult
from test_coordinator.targets.port import TargetState

EXIT_WATCH_MARGIN_S = 60.0


class Watched(Protocol):
    def state(self, name: str) -> TargetState: ...
    async def exit_problem(self, name: str) -> str | None: ...


class ExitedBeforeHealthy(Exception):
    """The service is gone; the message is the backend's explanation."""


async def wait_healthy(
    targets: Watched,
    service: str,
    check: Callable[[], Awaitable[ProbeResult]],
    *,
    timeout_s: float,
    interval_s: float,
    max_interval_s: float | None = None,
) -> tuple[ProbeResult, float]:
    """The healthy answer and when it completed. Raises DeadlineExceeded (never healthy
    within ``timeout_s``) or ExitedBeforeHealthy (it exited first, or had exited by
    the time it answered: the answer came from something else, such as a daemon it
    forked)."""

    async def exited() -> ProbeResult:
        state = targets.state(service)
        return ProbeResult(state is TargetState.EXITED, state, f"{service} is {state}", 0.0)

    waiting = asyncio.ensure_future(
        wait_until(
            check, deadline_s=timeout_s, interval_s=interval_s, max_interval_s=max_interval_s
        )
    )
    # Outlives the health wait, which ends first unless the service exits.
    watching = asyncio.ensure_future(
        wait_until(
            exited,
            deadline_s=timeout_s + EXIT_WATCH_MARGIN_S,
            interval_s=max(interval_s, 0.001),
        )
    )
    try:
        await asyncio.wait([waiting, watching], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiting, watching):
            task.cancel()
        await asyncio.wait([waiting, watching])
    if targets.state(service) is TargetState.EXITED:
        problem = await targets.exit_problem(service)
        raise ExitedBeforeHealthy(problem or f"{service} exited before it was healthy")
    return waiting.result()
