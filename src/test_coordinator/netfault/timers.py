"""Timers to the tens of microseconds for the delay queues, whatever the event loop.

asyncio's own timers wait in ``epoll_wait``, which takes whole milliseconds
(rounded up), and uvloop keeps its clock in milliseconds: either way a chunk
due in 20.3 ms would leave up to a millisecond late. Here one Linux timerfd is
armed at the absolute CLOCK_MONOTONIC time of the earliest deadline and
watched by the loop like a socket; it fires within tens of microseconds.
Without timerfd (not Linux), the loop's own timers serve.

Times are ``time.monotonic()`` seconds (CLOCK_MONOTONIC on Linux), not the
loop's clock, which uvloop rounds to the millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import os
import time
from collections.abc import Callable
from typing import Protocol

now = time.monotonic


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable: ...

    def close(self) -> None: ...


def make_timers(loop: asyncio.AbstractEventLoop) -> Timers:
    """Timerfd-based timers on Linux, the loop's own elsewhere."""
    try:
        return TimerfdTimers(loop, _Timerfd())
    except (OSError, AttributeError, NotImplementedError):  # pragma: no cover - not Linux
        return LoopTimers(loop)


class LoopTimers:
    """The loop's own timers, on the monotonic clock (to the millisecond)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        return self._loop.call_at(self._loop.time() + (when - now()), callback)

    def close(self) -> None:
        pass


class _Timer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TimerfdTimers:
    def __init__(self, loop: asyncio.AbstractEventLoop, timerfd: _Timerfd) -> None:
        self._loop = loop
        self._fd = timerfd
        self._heap: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._armed_at: float | None = None
        loop.add_reader(timerfd.fileno, self._expired)

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        timer = _Timer(callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        if self._armed_at is None or when < self._armed_at:
            self._armed_at = when
            self._fd.arm(when)
        return timer

    def close(self) -> None:
        self._loop.remove_reader(self._fd.fileno)
        self._fd.close()
        self._heap.clear()

    def _expired(self) -> None:
        self._fd.acknowledge()
        heap = self._heap
        due = now()
        while heap and heap[0][0] <= due:
            timer = heapq.heappop(heap)[2]
            if not timer.cancelled:
                try:
                    timer.callback()
                except Exception as exc:  # one connection's failure must not stop the others
                    self._loop.call_exception_handler(
                        {"message": "netfault timer callback failed", "exception": exc}
                    )
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        self._armed_at = heap[0][0] if heap else None
        if self._armed_at is not None:
            self._fd.arm(self._armed_at)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1


class _Timerfd:
    """A non-blocking CLOCK_MONOTONIC timerfd, through libc (Python < 3.13 has no binding)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        fd = int(libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self.fileno = fd
        self._spec = _Itimerspec()

    def arm(self, when: float) -> None:
        """Fire at monotonic time ``when`` (at once if it is past)."""
        seconds = int(when)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = max(1, int((when - seconds) * 1e9))  # 0 would disarm
        if self._settime(self.fileno, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    def acknowledge(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fileno, 8)

    def close(self) -> None:
        os.close(self.fileno)
