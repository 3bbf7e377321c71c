"""The run's journal: every event, with its time in ms since the run started.

Events are kept in memory, handed to listeners as they happen (live progress),
and written to the RunStore in batches by :meth:`Journal.flush`; a listener
that fails is logged and the run carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from test_coordinator.ports.storage import JournalEvent, RunStore

log = logging.getLogger(__name__)

Listener = Callable[[JournalEvent], None]


class RunClock:
    """Milliseconds since the run's origin on the monotonic clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.origin_s = clock()

    def now_s(self) -> float:
        return self._clock()

    def ms(self, at_s: float | None = None) -> float:
        """``at_s`` (a reading of the clock, default now) as ms since the origin, to 0.001 ms."""
        moment = self._clock() if at_s is None else at_s
        return round((moment - self.origin_s) * 1000.0, 3)


class Journal:
    def __init__(self, run_id: str, clock: RunClock, listeners: tuple[Listener, ...] = ()) -> None:
        self.run_id = run_id
        self.clock = clock
        self._listeners = listeners
        self._events: list[JournalEvent] = []
        self._stored = 0
        self._flushing = asyncio.Lock()

    @property
    def events(self) -> tuple[JournalEvent, ...]:
        return tuple(self._events)

    def record(self, kind: str, /, at_ms: float | None = None, **data: Any) -> JournalEvent:
        moment = self.clock.ms() if at_ms is None else at_ms
        event = JournalEvent(
            run_id=self.run_id,
            seq=len(self._events) + 1,
            at_ms=int(moment),
            kind=kind,
            data={"at_ms": moment, **data},
        )
        self._events.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("journal listener failed on %s", kind)
        return event

    async def flush(self, store: RunStore) -> None:
        """Write the events not yet stored; a store failure is logged and retried next time."""
        async with self._flushing:
            pending = self._events[self._stored :]
            if not pending:
                return
            try:
                await store.append_events(pending)
            except Exception as exc:
                log.warning("journal: %d events not stored yet: %s", len(pending), exc)
                return
            self._stored += len(pending)
