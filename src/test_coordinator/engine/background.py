"""Background steps: tasks that run beside the later steps and stop after the last one.

A background ``always`` that breaks fails the run at that moment: the
foreground steps are cancelled and the violation is the run's reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from test_coordinator.engine.errors import InfrastructureError, StepFailed
from test_coordinator.engine.journal import Journal
from test_coordinator.engine.ports import LoadRunner

log = logging.getLogger(__name__)
T = TypeVar("T")
STOP_WAIT_S = 10.0


class BackgroundTasks:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._tasks: list[tuple[str, asyncio.Task[None]]] = []
        self._loads: list[tuple[str, LoadRunner]] = []
        self._stopped_loads: set[str] = set()
        self._failed = asyncio.Event()
        self.failure: BaseException | None = None

    def spawn(self, step_id: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=f"background:{step_id}")
        self._tasks.append((step_id, task))
        task.add_done_callback(self._finished)

    def add_load(self, step_id: str, runner: LoadRunner) -> None:
        self._loads.append((step_id, runner))

    async def stop_load(self, step_id: str, runner: LoadRunner) -> None:
        """Stop one load and record it, once (an interrupted stop is tried again)."""
        if step_id in self._stopped_loads:
            return
        await runner.stop()
        if step_id not in self._stopped_loads:
            self._stopped_loads.add(step_id)
            self._journal.record("load.stopped", step=step_id)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self.failure is None:
            self.failure = exc
            self._failed.set()

    async def run_beside(self, foreground: Coroutine[Any, Any, T]) -> T:
        """Run ``foreground``; a background failure cancels it and is raised instead."""
        main = asyncio.create_task(foreground, name="steps")
        watcher = asyncio.create_task(self._failed.wait(), name="background-failure")
        try:
            await asyncio.wait({main, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (main, watcher):
                task.cancel()
            await asyncio.wait({main, watcher})
        if self.failure is not None:
            if isinstance(self.failure, StepFailed | InfrastructureError):
                raise self.failure
            raise InfrastructureError(
                f"a background step failed: {self.failure!r}"
            ) from self.failure
        return main.result()

    async def stop(self) -> None:
        """Cancel the checks and stop the loads (requests in flight may finish); bounded."""
        tasks = [task for _, task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        for step_id, runner in self._loads:
            try:
                async with asyncio.timeout(STOP_WAIT_S):
                    await self.stop_load(step_id, runner)
            except Exception as exc:
                log.warning("load of step %s did not stop cleanly: %s", step_id, exc)
