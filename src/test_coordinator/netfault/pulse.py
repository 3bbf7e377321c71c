"""Switch a fault on and off on a fixed schedule, in the proxy, until it is cleared.

The phases are timed from the moment the pulse began (on at 0, off at on_ms,
on at on_ms + off_ms...), not from each switch, so they do not drift. Because
the proxy keeps the schedule, the fault keeps pulsing if the coordinator dies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from test_coordinator.netfault.active import ActiveFault


class PulseDriver:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, entry: ActiveFault, on_switch: Callable[[], None]
    ) -> None:
        assert entry.pulse is not None
        self._loop = loop
        self._entry = entry
        self._on_s = entry.pulse.on_ms / 1000
        self._off_s = entry.pulse.off_ms / 1000
        self._on_switch = on_switch
        self._next = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """The fault acts from now for on_ms (the caller applies it)."""
        self._entry.active = True
        self._next = self._loop.time() + self._on_s
        self._handle = self._loop.call_at(self._next, self._switch)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _switch(self) -> None:
        entry = self._entry
        entry.active = not entry.active
        if entry.active:
            entry.cycles += 1
        phase_s = self._on_s if entry.active else self._off_s
        self._next += phase_s
        now = self._loop.time()
        if self._next <= now:  # the loop was held up for a whole phase: start afresh, no burst
            self._next = now + phase_s
        self._handle = self._loop.call_at(self._next, self._switch)
        self._on_switch()
