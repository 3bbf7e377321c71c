"""The delay queues' timers (a timerfd the loop watches)."""

from __future__ import annotations

import asyncio
import statistics

from test_coordinator.netfault.timers import LoopTimers, TimerfdTimers, make_timers, now


async def test_timers_fire_in_deadline_order_and_cancelled_ones_do_not() -> None:
    timers = make_timers(asyncio.get_running_loop())
    assert isinstance(timers, TimerfdTimers)
    fired: list[str] = []
    done = asyncio.Event()
    start = now()
    try:
        timers.call_at(start + 0.030, lambda: (fired.append("last"), done.set()))
        timers.call_at(start + 0.010, lambda: fired.append("first"))
        timers.call_at(start + 0.020, lambda: fired.append("cancelled")).cancel()
        timers.call_at(start - 1.0, lambda: fired.append("overdue"))  # fires at once
        await asyncio.wait_for(done.wait(), 5.0)
    finally:
        timers.close()

    assert fired == ["overdue", "first", "last"]


async def test_without_timerfd_the_loop_timers_serve_on_the_same_clock() -> None:
    timers = LoopTimers(asyncio.get_running_loop())
    fired: list[float] = []
    done = asyncio.Event()
    due = now() + 0.010
    timers.call_at(due, lambda: (fired.append(now()), done.set()))
    timers.call_at(due - 0.005, lambda: fired.append(-1.0)).cancel()

    await asyncio.wait_for(done.wait(), 5.0)

    assert len(fired) == 1
    assert due <= fired[0] < due + 0.1


async def test_timers_fire_within_a_fraction_of_a_millisecond() -> None:
    timers = make_timers(asyncio.get_running_loop())
    lateness: list[float] = []
    try:
        for _ in range(20):
            fired = asyncio.Event()
            due = now() + 0.0053  # not a whole millisecond: epoll would round it up

            def fire(due: float = due, fired: asyncio.Event = fired) -> None:
                lateness.append(now() - due)
                fired.set()

            timers.call_at(due, fire)
            await asyncio.wait_for(fired.wait(), 5.0)
    finally:
        timers.close()

    assert min(lateness) >= 0
    assert statistics.median(lateness) < 0.0005
