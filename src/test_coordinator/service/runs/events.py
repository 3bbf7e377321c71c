"""Live journal events of the runs in progress, for anyone who follows one.

The engine hands every journal event to :meth:`RunEvents.publish` as it is
recorded. A run in progress keeps all its events here, so a follower that comes
late gets the whole journal first and then the live ones, with no gap and no
repeat (events are numbered by ``seq``). Once the run has ended and its journal
is stored, :meth:`finish` ends every follow and forgets the run: later followers
read the store. A follower that falls ``MAX_BEHIND`` events behind is cut off
rather than let the service's memory grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from test_coordinator.ports.storage import JournalEvent

MAX_BEHIND = 10_000


class FollowerTooSlow(Exception):
    """The follower did not keep up with the run's events."""


@dataclass(eq=False)
class _Follower:
    queue: asyncio.Queue[JournalEvent | None] = field(
        default_factory=lambda: asyncio.Queue(MAX_BEHIND)
    )
    cut_off: bool = False

    def end(self) -> None:
        """Tell the follower the stream ended, even when its queue is full."""
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


@dataclass
class _LiveRun:
    events: list[JournalEvent] = field(default_factory=list)
    followers: set[_Follower] = field(default_factory=set)


class RunEvents:
    def __init__(self) -> None:
        self._live: dict[str, _LiveRun] = {}

    def open(self, run_id: str) -> None:
        """The run starts: its events are kept from now until :meth:`finish`."""
        self._live.setdefault(run_id, _LiveRun())

    def live(self, run_id: str) -> bool:
        return run_id in self._live

    def publish(self, event: JournalEvent) -> None:
        live = self._live.get(event.run_id)
        if live is None:
            return
        live.events.append(event)
        for follower in list(live.followers):
            try:
                follower.queue.put_nowait(event)
            except asyncio.QueueFull:
                live.followers.discard(follower)
                follower.cut_off = True
                follower.end()

    def finish(self, run_id: str) -> None:
        live = self._live.pop(run_id, None)
        if live is None:
            return
        for follower in live.followers:
            follower.end()

    async def follow(self, run_id: str, after_seq: int = 0) -> AsyncIterator[JournalEvent]:
        """The run's events after ``after_seq`` until it ends; nothing when it is not live.

        Raises FollowerTooSlow when this follower fell too far behind."""
        live = self._live.get(run_id)
        if live is None:
            return
        follower = _Follower()
        backlog = list(live.events)
        live.followers.add(follower)
        try:
            last = after_seq
            for event in backlog:
                if event.seq > last:
                    last = event.seq
                    yield event
            while True:
                item = await follower.queue.get()
                if item is None:
                    if follower.cut_off:
                        raise FollowerTooSlow(f"fell more than {MAX_BEHIND} events behind")
                    return
                if item.seq > last:
                    last = item.seq
                    yield item
        finally:
            current = self._live.get(run_id)
            if current is not None:
                current.followers.discard(follower)
