"""The load generator's own thread: a selector loop that sends on schedule, holds each
attempt to its deadline and hands every outcome to a recorder.

Why a thread of its own, with plain non-blocking sockets: a load generator that
shares the coordinator's event loop (and a general-purpose HTTP client's pool)
measures its own stalls as the server's latency, and its timeouts fire while
the answer sits unread in the socket. Here the thread does nothing but the
load: it sleeps in ``select`` until the next send or deadline, it reads every
ready socket *before* it judges deadlines, a deadline is judged only after one
last non-blocking look at the socket, and the latency of a plain HTTP answer
is taken from the kernel's receive timestamp where the system gives one.

The targets (HTTP, TCP connect, command) are :class:`LoadTarget` objects; each
attempt is an :class:`Attempt` that ends exactly once with an :class:`Outcome`.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import os
import platform
import selectors
import socket
import struct
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_LATE_S = 1.0
"""A send that the generator itself could not make within this long of its slot
(its thread was starved or stopped) is skipped and counted, not sent in a burst."""
STOP_GRACE_S = 1.0
"""After the last deadline, how long cleanups (reaping killed commands) may take."""

# Linux: SO_TIMESTAMPNS asks for each received segment's arrival time (CLOCK_REALTIME).
# Its number is 35 where the kernel uses the generic socket options.
_SO_TIMESTAMPNS = 35
_TIMESPEC = "@ll"
RX_TIMESTAMPS = sys.platform == "linux" and platform.machine() in (
    "x86_64",
    "aarch64",
    "arm64",
    "riscv64",
    "ppc64le",
    "s390x",
)

Handler = Callable[[int], None]
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended. ``reason`` is one of ``refused``, ``reset``, ``timeout``,
    ``status N``, ``exit N``, ``not sent``, ``other`` (empty when ok); ``error`` says
    it in words; ``done_at`` is when the answer arrived on the monotonic clock."""

    ok: bool
    done_at: float
    reason: str = ""
    error: str = ""
    status: int | None = None


def failed(done_at: float, reason: str, error: str, status: int | None = None) -> Outcome:
    return Outcome(False, done_at, reason, error, status)


def errno_reason(code: int) -> str:
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "reset"
    if code == errno.ETIMEDOUT:
        return "timeout"
    return "other"


def strerror(code: int) -> str:
    return os.strerror(code) if code > 0 else f"error {code}"


def os_error_code(exc: OSError) -> int:
    return exc.errno if exc.errno is not None else 0


IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY)
"""``connect_ex`` codes of a non-blocking connect that goes on in the background."""


class ResolvedAddresses:
    """A host and port, resolved at first use and again after a failure to connect."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._found: list[tuple[int, tuple[object, ...]]] | None = None

    def get(self) -> list[tuple[int, tuple[object, ...]]]:
        """``(family, address)`` pairs; raises OSError when the host cannot be resolved."""
        if self._found is None:
            found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._found = [(family, tuple(addr)) for family, _, _, _, addr in found]
        return self._found

    def forget(self) -> None:
        self._found = None


def connect_nonblocking(
    family: int, address: tuple[object, ...], *, nodelay: bool = False
) -> tuple[socket.socket, int]:
    """A new non-blocking socket and its ``connect_ex`` code (0, one of IN_PROGRESS, or
    the error); the caller closes the socket unless it keeps it."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(address)
    except OSError as exc:
        code = os_error_code(exc)
    return sock, code


def enable_rx_timestamps(sock: socket.socket) -> bool:
    if not RX_TIMESTAMPS:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


_TIMESPEC_SIZE = struct.calcsize(_TIMESPEC)
RX_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC_SIZE) if hasattr(socket, "CMSG_SPACE") else 0


def rx_moment(ancillary: list[tuple[int, int, bytes]], clock: Callable[[], float]) -> float | None:
    """The arrival of the segment just read, on ``clock`` (monotonic), from its kernel
    timestamp; None without one. The realtime clock only measures the (short) age."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC_SIZE:
            sec, nsec = _unpack_timespec(data)
            age = time.time() - (sec + nsec / 1e9)
            return clock() - max(age, 0.0)
    return None


def _unpack_timespec(data: bytes) -> tuple[int, int]:
    sec, nsec = struct.unpack(_TIMESPEC, data[:_TIMESPEC_SIZE])
    return int(sec), int(nsec)


class Reactor:
    """The thread's selector, its clock, and what must be polled (no fd to wait on)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.selector = selectors.DefaultSelector()
        self.clock = clock
        self.pollers: set[Callable[[], None]] = set()

    def watch(self, fileobj: Any, events: int, handler: Handler) -> None:
        try:
            key = self.selector.get_key(fileobj)
        except KeyError:
            self.selector.register(fileobj, events, handler)
            return
        if key.events != events or key.data != handler:
            self.selector.modify(fileobj, events, handler)

    def unwatch(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fileobj)

    def close(self) -> None:
        self.selector.close()


class Attempt(ABC):
    """One request, connect or command in flight; ends once, through ``finish``."""

    def __init__(self, started: float, deadline: float, finish: Callable[[Outcome], None]) -> None:
        self.started = started
        self.deadline = deadline
        self.done = False
        self._finish = finish

    def finish(self, outcome: Outcome) -> None:
        if not self.done:
            self.done = True
            self._finish(outcome)

    @abstractmethod
    def expire(self, now: float) -> None:
        """The deadline has passed: look once more (the answer may be in), then end as
        a timeout and release what the attempt holds."""

    @abstractmethod
    def abandon(self) -> None:
        """Release everything without an outcome (the generator is being torn down)."""


class LoadTarget(ABC):
    """What a load sends to: makes attempts, and owns what they share (a connection pool)."""

    description: str
    """A URL-like name for the journal and the report."""

    @abstractmethod
    def begin(
        self, reactor: Reactor, started: float, deadline: float, finish: Callable[[Outcome], None]
    ) -> Attempt | None:
        """Start one attempt at ``started`` (just read from the clock); None if it ended
        at once (``finish`` was called)."""

    def busy(self) -> bool:
        """Whether cleanups (a killed command not yet reaped) are still pending."""
        return False

    def close(self, reactor: Reactor) -> None:  # noqa: B027 - most targets share nothing
        """Release what is shared (idle connections, leftover processes)."""


Recorder = Callable[[float, Outcome], None]
"""``(started, outcome)``: keep one sample."""


class LoadRun:
    """Sends to ``target`` at ``rate_per_s`` in a thread of its own, from ``start()``
    until ``request_stop()`` or ``max_duration_s``, then waits for what is in flight."""

    def __init__(
        self,
        target: LoadTarget,
        rate_per_s: float,
        *,
        timeout_s: float,
        max_in_flight: int,
        max_duration_s: float,
        record: Recorder,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.rate_per_s = rate_per_s
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.max_duration_s = max_duration_s
        self._record = record
        self._clock = clock
        self._stop = threading.Event()
        self._abort = threading.Event()
        self.sending = True
        self.finished = threading.Event()
        self.skipped: list[float] = []
        """Slots the generator itself missed by more than MAX_LATE_S (their due moments)."""
        self.error: BaseException | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._main, name=f"load {target.description}")
        self._thread.daemon = True
        self._attempts: set[Attempt] = set()

    def start(self) -> None:
        self._thread.start()

    def request_stop(self, *, abort: bool = False) -> None:
        """Stop sending (from any thread); ``abort`` also drops what is in flight."""
        self._stop.set()
        if abort:
            self._abort.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _main(self) -> None:
        reactor = Reactor(self._clock)
        try:
            self._loop(reactor)
        except BaseException as exc:  # pragma: no cover - a bug; the owner's stop() raises it
            log.exception("the load on %s failed", self.target.description)
            self.error = exc
        finally:
            for attempt in list(self._attempts):
                attempt.abandon()
            self._attempts.clear()
            self.target.close(reactor)
            reactor.close()
            self._wake_r.close()
            self._wake_w.close()
            self.sending = False
            self.finished.set()

    def _loop(self, reactor: Reactor) -> None:
        reactor.watch(self._wake_r, READ, self._drain_wake)
        clock = self._clock
        period = 1.0 / self.rate_per_s
        first = clock()
        slot = 0
        deadlines: list[tuple[float, int, Attempt]] = []
        counter = itertools.count()
        cleanup_until: float | None = None
        while True:
            now = clock()
            if self._abort.is_set():
                return
            if self.sending and self._stop.is_set():
                self.sending = False
            # Deadlines before sends: an attempt past its deadline must not count as in
            # flight for the next send.
            self._expire(deadlines, now)
            while self.sending:
                due = first + slot * period
                if due - first >= self.max_duration_s:
                    self.sending = False
                    break
                if due > now:
                    break
                slot += 1
                if now - due > MAX_LATE_S:
                    self.skipped.append(due)
                    continue
                attempt = self._send(reactor, now)
                if attempt is not None:
                    heapq.heappush(deadlines, (attempt.deadline, next(counter), attempt))
                now = clock()
                if first + slot * period <= now:
                    # Catching up: take in what is ready first (an answer frees its
                    # connection for the next send), or a burst of sends would each
                    # open a connection and stall the loop for the next ones.
                    self._dispatch(reactor, 0.0)
                    now = clock()
                    self._expire(deadlines, now)
            now = clock()
            self._expire(deadlines, now)
            if not self.sending and not self._attempts:
                if not self.target.busy():
                    return
                if cleanup_until is None:
                    cleanup_until = now + STOP_GRACE_S
                elif now >= cleanup_until:
                    return
            wake = [deadlines[0][0]] if deadlines else []
            if self.sending:
                wake.append(first + slot * period)
            if reactor.pollers or cleanup_until is not None:
                wake.append(now + 0.005)
            self._dispatch(reactor, max(min(wake) - clock(), 0.0) if wake else None)
            for poll in list(reactor.pollers):
                poll()

    def _expire(self, deadlines: list[tuple[float, int, Attempt]], now: float) -> None:
        while deadlines and deadlines[0][0] <= now:
            _, _, attempt = heapq.heappop(deadlines)
            if not attempt.done:
                attempt.expire(now)
                self._attempts.discard(attempt)

    @staticmethod
    def _dispatch(reactor: Reactor, wait: float | None) -> None:
        for key, mask in reactor.selector.select(wait):
            key.data(mask)

    def _send(self, reactor: Reactor, now: float) -> Attempt | None:
        if len(self._attempts) >= self.max_in_flight:
            self._record(
                now, failed(now, "not sent", f"not sent: {len(self._attempts)} requests in flight")
            )
            return None
        started = self._clock()
        box: list[Attempt] = []

        def finish(outcome: Outcome) -> None:
            self._attempts.difference_update(box)
            self._record(started, outcome)

        attempt = self.target.begin(reactor, started, started + self.timeout_s, finish)
        if attempt is None or attempt.done:
            return None
        box.append(attempt)
        self._attempts.add(attempt)
        return attempt

    def _drain_wake(self, mask: int) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except OSError:
            pass
