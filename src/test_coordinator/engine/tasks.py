"""Task helpers: a group's first error alone, and work that must finish despite cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def first_error(work: Awaitable[None]) -> None:
    """Run ``work``; from a task group's errors raise the first one alone."""
    try:
        await work
    except BaseExceptionGroup as group:
        raise first_leaf(group) from None


def first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def gather_first_error(coros: list[Coroutine[Any, Any, None]]) -> None:
    if not coros:
        return
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as errors:
        first = errors.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def run_to_completion(work: Awaitable[None], timeout_s: float) -> bool:
    """Run ``work`` to the end even if this task is cancelled meanwhile (bounded by
    ``timeout_s``); True if a cancellation arrived and must be passed on."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    cancelled = False
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.error("cleanup did not finish within %.0f s; giving up on it", timeout_s)
            task.cancel()
            break
        try:
            await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError:
            cancelled = True
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("cleanup failed", exc_info=task.exception())
    return cancelled
