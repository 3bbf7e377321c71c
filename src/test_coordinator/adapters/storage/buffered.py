"""Writes that outlive an outage: a remote server, a local outbox, and a monitor.

:class:`BufferedWriter` sends each write straight to the server while it answers
and nothing is waiting; otherwise the write goes to the durable outbox, which the
background monitor replays, oldest first, as soon as the server answers again.
So the server sees writes in the order they were made, and a caller is never
told "failed" for a write that was only delayed. Health is a cached field the
monitor keeps current; reading it costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from test_coordinator.adapters.redact import redact_text
from test_coordinator.adapters.storage.outbox import Outbox, OutboxEntry
from test_coordinator.adapters.storage.remote import ReconnectPolicy, Remote
from test_coordinator.adapters.storage.writes import PendingWrite
from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.ports.availability import StorageRejected, StorageUnavailable
from test_coordinator.ports.health import DependencyHealth

log = get_logger(__name__)
T = TypeVar("T")


class BufferedWriter:
    """Ordered, durable writes to ``remote``; owns the monitor task between start and close."""

    def __init__(self, name: str, remote: Remote, outbox_path: Path, policy: ReconnectPolicy):
        self.name = name
        self._remote = remote
        self._outbox_path = outbox_path
        self._policy = policy
        self._outbox: Outbox | None = None
        self._lock = asyncio.Lock()
        self._monitor: asyncio.Task[None] | None = None
        self._healthy = False
        self._problem = "not checked yet"
        self._backlog = 0

    @property
    def backlog(self) -> int:
        """Writes kept locally, waiting for the server."""
        return self._backlog

    def health(self) -> DependencyHealth:
        if self._healthy:
            return DependencyHealth(self.name, True)
        detail = f"{self._problem}; {self._backlog} writes buffered locally"
        return DependencyHealth(self.name, False, detail)

    async def start(self) -> None:
        """Open the outbox, check the server once, then keep checking in the background.

        The first check (and any replay it starts) is bounded by the operation timeout;
        whatever is left is the monitor's job, so a long backlog never holds up startup.
        """
        if self._outbox is not None:
            return
        self._outbox = await Outbox.open(self._outbox_path)
        self._backlog = await self._outbox.count()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._policy.operation_timeout_s):
                await self._check()
        self._monitor = asyncio.create_task(self._monitor_loop(), name=f"{self.name}-monitor")

    async def close(self) -> None:
        """Stop the monitor and close the outbox; what is still buffered stays on disk."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self._outbox is not None:
            async with self._lock:
                await self._outbox.close()
            self._outbox = None

    async def write(self, write: PendingWrite) -> None:
        """Store ``write`` on the server now, or durably queue it; raise only if rejected."""
        outbox = self._require_outbox()
        async with self._lock:
            if self._healthy and self._backlog == 0:
                try:
                    await self._call(self._remote.apply([write]))
                    return
                except StorageUnavailable as exc:
                    self._mark_down(exc)
            await outbox.append(write)
            self._backlog += 1

    async def read(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a read on the server; StorageUnavailable while it is down or replaying."""
        if not self._healthy:
            raise StorageUnavailable(f"{self.name} is unavailable: {self.health().detail}")
        try:
            return await self._call(operation())
        except StorageUnavailable as exc:
            self._mark_down(exc)
            raise

    async def _monitor_loop(self) -> None:
        backoff = self._policy.first_backoff_s
        while True:
            if self._healthy:
                backoff = self._policy.first_backoff_s
                await asyncio.sleep(self._policy.check_interval_s)
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._policy.max_backoff_s)
            try:
                await self._check()
            except Exception as exc:  # the monitor must outlive any one failed check
                log.exception("dependency.check_failed", dependency=self.name)
                self._mark_down(exc)

    async def _check(self) -> None:
        """Ping; if the server answers, replay the outbox, then report healthy.

        A refused ping (a migration the server will not run, say) counts as down too:
        the service keeps serving and health says why, until an operator fixes it.
        """
        try:
            await self._call(self._remote.ping())
            if not self._healthy:
                self._problem = "answering again, replaying buffered writes"
            await self._replay()
        except (StorageUnavailable, StorageRejected) as exc:
            self._mark_down(exc)

    async def _replay(self) -> None:
        outbox = self._require_outbox()
        while True:
            async with self._lock:
                entries = await outbox.peek(self._policy.replay_batch_size)
                if not entries:
                    self._backlog = 0
                    self._mark_up()
                    return
                try:
                    await self._call(self._remote.apply([e.write for e in entries]))
                    await outbox.remove_through(entries[-1].entry_id)
                except StorageRejected:
                    await self._replay_one_by_one(outbox, entries)
                self._backlog = await outbox.count()

    async def _replay_one_by_one(self, outbox: Outbox, entries: list[OutboxEntry]) -> None:
        for entry in entries:
            try:
                await self._call(self._remote.apply([entry.write]))
            except StorageRejected as exc:
                await outbox.dead_letter(entry.entry_id, redact_text(str(exc)))
            else:
                await outbox.remove_through(entry.entry_id)

    async def _call(self, operation: Awaitable[T]) -> T:
        timeout = self._policy.operation_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await operation
        except TimeoutError:
            raise StorageUnavailable(f"{self.name}: no answer within {timeout:g} s") from None

    def _mark_down(self, exc: Exception) -> None:
        problem = redact_text(str(exc)) or type(exc).__name__
        if self._healthy or problem != self._problem:
            log.warning("dependency.down", dependency=self.name, problem=problem)
        self._healthy = False
        self._problem = problem

    def _mark_up(self) -> None:
        if not self._healthy:
            log.info("dependency.up", dependency=self.name)
        self._healthy = True
        self._problem = ""

    def _require_outbox(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError(f"{self.name} writer is not started")
        return self._outbox
