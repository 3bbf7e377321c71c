"""The netfault proxy: listen on a port, forward each connection to one upstream, apply faults.

    proxy = NetfaultProxy(("127.0.0.1", 0), ("127.0.0.1", 6379))
    await proxy.start()                       # proxy.port is the port it listens on
    proxy.set_fault("slow", Latency(ms=20))   # takes effect at once, on open connections too
    proxy.clear_fault("slow")                 # its stats, or None if no such fault
    await proxy.close()

Faults are kept in a table by id; whenever it changes (a set, a clear, a pulse
switching) the proxy rebuilds its plans (:mod:`plan`) and tells every open
connection. Setting an id again replaces the fault (and its stats).
"""

from __future__ import annotations

import asyncio
from typing import Any

from test_coordinator.netfault.active import ActiveFault, FaultStats
from test_coordinator.netfault.errors import FaultSpecError
from test_coordinator.netfault.link import ClientSide, Link
from test_coordinator.netfault.listener import Listener
from test_coordinator.netfault.model import Fault, LossAction, Pulse
from test_coordinator.netfault.plan import ConnectPlan, FlowPlan, Plans, build_plans
from test_coordinator.netfault.pulse import PulseDriver
from test_coordinator.netfault.timers import make_timers

MAX_FAULT_ID = 200
READ_SIZE = 256 * 1024
CLEARED_KEPT = 256
"""How many cleared faults' stats the proxy keeps, for a clear that is repeated."""
HELD_ENDED_MAX = 1024
"""Connections a partition holds that sent their end of stream, kept at most (the oldest
beyond are let go)."""

_LENT_LIMIT = 8
"""Read buffers lent to transports that the proxy keeps track of, to read into again."""


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NetfaultProxy:
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.loop = asyncio.get_running_loop()
        self.upstream = upstream
        # Read by the data path on every chunk: 0 upstream, 1 downstream.
        self.flow_plans: tuple[FlowPlan | None, FlowPlan | None] = (None, None)
        self.bytes_in = [0, 0]
        self.read_buffer = memoryview(bytearray(READ_SIZE))  # shared by every connection
        self._lent: list[tuple[memoryview, asyncio.Transport]] = []
        self.timers = make_timers(self.loop)  # the delay queues'
        self.connect_plan = ConnectPlan()
        self.accepted = 0
        self.upstream_failures = 0
        self.last_upstream_error: str | None = None
        self.links: set[Link] = set()
        self._held: set[Link] = set()  # accepted during a partition, not yet connected upstream
        self._held_ended: dict[Link, None] = {}  # ... that sent their end of stream, oldest first
        self._cleared: dict[str, FaultStats] = {}  # what the faults cleared last did, by id
        self._faults: dict[str, ActiveFault] = {}
        self._refusing: tuple[ActiveFault, ...] = ()  # the refuse faults acting now ...
        self._refusing_since = 0.0  # ... since then (loop time)
        self._pulses: dict[str, PulseDriver] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener = Listener(self.loop, listen[0], listen[1], lambda: ClientSide(self))

    def lend_read_buffer(self, holder: asyncio.Transport) -> None:
        """``holder`` kept (part of) the read buffer to write later: read into another.

        A lent buffer is read into again once its transport has written all it
        held; a new one is made only when no lent buffer is free.
        """
        lent = self._lent
        lent.append((self.read_buffer, holder))
        for index, (buffer, sink) in enumerate(lent):
            if not sink.get_write_buffer_size():
                del lent[index]
                self.read_buffer = buffer
                return
        if len(lent) > _LENT_LIMIT:
            del lent[0]  # left to the garbage collector, once its transport lets go of it
        self.read_buffer = memoryview(bytearray(READ_SIZE))

    @property
    def port(self) -> int:
        return self._listener.port

    async def start(self) -> int:
        """Listen; the port. OSError if the address cannot be listened on."""
        return await self._listener.open()

    async def close(self) -> None:
        """Stop listening, stop every pulse, close every connection."""
        await self._listener.close()
        for driver in self._pulses.values():
            driver.stop()
        self._pulses.clear()
        for link in [*self.links, *self._held]:
            link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.timers.close()

    # --- the fault table ----------------------------------------------------------

    def set_fault(self, fault_id: str, fault: Fault, pulse: Pulse | None = None) -> bool:
        """Apply ``fault`` under ``fault_id`` (pulsed if ``pulse``); whether it replaced one."""
        if not fault_id or len(fault_id) > MAX_FAULT_ID:
            raise FaultSpecError(f"a fault id is 1 to {MAX_FAULT_ID} characters")
        replaced = self._remove(fault_id) is not None
        entry = ActiveFault(fault_id, fault, pulse)
        self._faults[fault_id] = entry
        if pulse is not None:
            driver = PulseDriver(self.loop, entry, self._refresh)
            self._pulses[fault_id] = driver
            driver.start()
        self._refresh()
        return replaced

    def fault_ids_not_of(self, owner: str) -> list[str]:
        """The ids of the faults set whose id does not start with ``owner``."""
        return [fault_id for fault_id in self._faults if not fault_id.startswith(owner)]

    def clear_fault(self, fault_id: str) -> FaultStats | None:
        """Undo the fault set under ``fault_id``; what it did, or None if there was none."""
        entry = self._remove(fault_id)
        if entry is None:
            return None
        self._refresh()
        self._remember_cleared(entry)
        return entry.stats

    def cleared_stats(self, fault_id: str) -> FaultStats | None:
        """What the fault last cleared under ``fault_id`` did (among the latest cleared):
        an undo tried again after a failure (the port taken after a refuse) still reports
        it."""
        return self._cleared.get(fault_id)

    def _remember_cleared(self, entry: ActiveFault) -> None:
        self._cleared.pop(entry.fault_id, None)
        self._cleared[entry.fault_id] = entry.stats
        while len(self._cleared) > CLEARED_KEPT:
            del self._cleared[next(iter(self._cleared))]

    def clear_all(self) -> list[str]:
        """Undo every fault; their ids."""
        removed = [entry for fault_id in list(self._faults) if (entry := self._remove(fault_id))]
        self._refresh()
        for entry in removed:
            self._remember_cleared(entry)
        return [entry.fault_id for entry in removed]

    @property
    def faults(self) -> list[ActiveFault]:
        return list(self._faults.values())

    def _remove(self, fault_id: str) -> ActiveFault | None:
        driver = self._pulses.pop(fault_id, None)
        if driver is not None:
            driver.stop()
        return self._faults.pop(fault_id, None)

    def _refresh(self) -> None:
        plans = build_plans(self._faults.values())
        flows_changed = plans.flows() != self.flow_plans
        self.flow_plans = plans.flows()
        self.connect_plan = plans.connect
        self._apply(plans, flows_changed)

    def _apply(self, plans: Plans, flows_changed: bool) -> None:
        connect = plans.connect
        self._count_refusing(connect.refuse)
        for link in list(self.links):
            if connect.reset:
                self._reset(link, connect.reset)
            elif flows_changed:  # a pulsed reset or refuse switching leaves the flows alone
                link.replan(plans)
        if connect.reset:
            for link in list(self._held):
                self._reset(link, connect.reset)
        elif not connect.hold_new:
            self._held_ended.clear()
            for link in list(self._held):
                self._held.discard(link)
                self.links.add(link)
                link.connect()
        else:
            for link in self._held:
                for entry in connect.hold_new:
                    entry.touch(link.touched)
        self._listener.want(not connect.refuse)

    def _count_refusing(self, refusing: tuple[ActiveFault, ...]) -> None:
        """Add the time since the last change to each refuse fault that acted in it."""
        now = self.loop.time()
        elapsed_ms = round((now - self._refusing_since) * 1000)
        for entry in self._refusing:
            entry.stats.refusing_ms += max(elapsed_ms, 1)
        self._refusing, self._refusing_since = refusing, now

    async def listening_settled(self, timeout_s: float) -> None:
        """Wait, up to ``timeout_s``, for the listening socket a cleared refuse reopens."""
        await self._listener.reopened(timeout_s)

    # --- connections ----------------------------------------------------------------

    def accept(self, transport: asyncio.Transport) -> Link:
        """A client connected: apply the connection faults, else connect it upstream."""
        self.accepted += 1
        link = Link(self, transport)
        plan = self.connect_plan
        if plan.reset:
            self._reset(link, plan.reset)
            return link
        for entry, loss in plan.loss:
            if entry.rng.random() < loss.probability:
                entry.touch(link.touched)
                if loss.how is LossAction.CLOSE:
                    entry.stats.closes += 1
                    link.close()
                else:
                    entry.stats.resets += 1
                    link.reset()
                return link
        if plan.hold_new:
            for entry in plan.hold_new:
                entry.touch(link.touched)
            self._held.add(link)
            return link
        self.links.add(link)
        link.replan(Plans(*self.flow_plans, plan))
        link.connect()
        return link

    def holds(self, link: Link) -> bool:
        """Whether a partition keeps ``link`` from connecting upstream."""
        return link in self._held

    def held_ended(self, link: Link) -> None:
        """A connection a partition holds sent its end of stream.

        It is kept, silent, as the partition keeps every connection: a client that
        half-closed (sent its request, then shut down its writing) waits for an answer,
        and its request and end of stream go upstream when the partition heals. A client
        that closed and went looks the same from here, so past HELD_ENDED_MAX such
        connections the oldest is let go: clients retrying through a long partition
        cannot exhaust the proxy's descriptors.
        """
        ended = self._held_ended
        ended[link] = None
        while len(ended) > HELD_ENDED_MAX:
            next(iter(ended)).close()  # forget() takes it out

    def forget(self, link: Link) -> None:
        self.links.discard(link)
        self._held.discard(link)
        self._held_ended.pop(link, None)

    def upstream_failed(self, link: Link, exc: BaseException) -> None:
        """The upstream could not be reached: the client gets an RST (the nearest to a refusal)."""
        self.upstream_failures += 1
        self.last_upstream_error = str(exc) or type(exc).__name__
        link.reset()

    def track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reset(self, link: Link, faults: tuple[ActiveFault, ...]) -> None:
        for entry in faults:
            entry.touch(link.touched)
            entry.stats.resets += 1
        link.reset()

    # --- reports ----------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        return {
            "listen": _address(self._listener.host, self.port),
            "upstream": _address(*self.upstream),
            "listening": self._listener.listening,
            "listen_error": self._listener.error,
            "connections": len(self.links) + len(self._held),
            "faults": [entry.to_json() for entry in self._faults.values()],
        }

    def stats(self) -> dict[str, object]:
        every = [*self.links, *self._held]
        return {
            "connections_accepted": self.accepted,
            "connections_open": len(every),
            "connections_held": len(self._held),
            "connections_held_ended": len(self._held_ended),
            "bytes_upstream": self.bytes_in[0],
            "bytes_downstream": self.bytes_in[1],
            "buffered_bytes": sum(link.buffered_bytes for link in every),
            "upstream_failures": self.upstream_failures,
            "last_upstream_error": self.last_upstream_error,
            "faults": {entry.fault_id: entry.stats.to_json() for entry in self._faults.values()},
        }
