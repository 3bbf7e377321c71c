"""Report audit events to the audit correlator over HTTP, without ever holding up the caller.

:meth:`HttpAuditReporter.emit` only appends to a bounded in-memory buffer; one
sender task, owned by the reporter, posts batches to ``{url}/api/v1/events``.
A batch that fails (no connection, a timeout, a 5xx) goes back to the front of
the buffer and is retried after an exponential backoff. After
``failure_threshold`` consecutive failures the circuit breaker opens and no
request is made for its cooldown; then one probe batch goes out, and when the
correlator answers again the backlog is sent at full speed. The correlator
stores each event id once, so a batch retried after a lost answer is harmless.

When the buffer is full, new events go to ``spill_path`` if one is given (and
come back in order once there is room), else the oldest buffered event is
dropped and counted. On :meth:`close`, what could not be delivered within the
grace period is written to ``spill_path`` too, for the next reporter.

With a ``source``, each batch says how far that source's events are delivered
(see :mod:`~test_coordinator.adapters.audit.wire`): a batch that leaves nothing
behind carries the moment it was cut, an idle reporter sends an empty batch every
``heartbeat_s`` to move that mark on, and :meth:`close` ends with a closing mark.
The correlator can then tell a check when every event up to a moment is stored.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import httpx

from test_coordinator.adapters.audit.circuit_breaker import (
    BreakerState,
    CircuitBreaker,
    ExponentialBackoff,
)
from test_coordinator.adapters.audit.spill import SpillFile
from test_coordinator.adapters.audit.wire import event_to_json, progress_headers
from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.ports.audit import AuditEvent

log = get_logger(__name__)

EVENTS_PATH = "/api/v1/events"
DEFAULT_CAPACITY = 10_000
DEFAULT_BATCH_SIZE = 200
CLOSE_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class ReporterStats:
    """Counts since the reporter was made; ``pending`` includes spilled events."""

    pending: int
    spilled: int
    delivered: int
    dropped: int
    rejected: int
    failed_attempts: int
    breaker: BreakerState


class _Outcome(Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    FAILED = "failed"


class HttpAuditReporter:
    """An AuditSink posting to the audit correlator at base URL ``url``."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        linger_s: float = 0.1,
        request_timeout_s: float = 2.0,
        breaker: CircuitBreaker | None = None,
        backoff: ExponentialBackoff | None = None,
        spill_path: Path | None = None,
        source: str | None = None,
        heartbeat_s: float | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        """``source``: the service whose events these are, to report its progress;
        ``heartbeat_s``: with a source, the pace of empty batches while idle."""
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be at least 1")
        self._events_url = url.rstrip("/") + EVENTS_PATH
        self._client = client
        self._owns_client = client is None
        self._capacity = capacity
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._timeout_s = request_timeout_s
        self._breaker = breaker or CircuitBreaker()
        self._backoff = backoff or ExponentialBackoff()
        self._spill = SpillFile(spill_path) if spill_path is not None else None
        self._source = source
        self._heartbeat_s = heartbeat_s if source is not None else None
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._queue: collections.deque[str] = collections.deque()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._flushing = 0
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._delivered = self._dropped = self._rejected = self._failed_attempts = 0
        self._spilled = 0
        if self._pending() == 0:
            self._drained.set()

    # --- the AuditSink port -------------------------------------------------------------

    def emit(self, event: AuditEvent) -> None:
        try:
            self._append(json.dumps(event_to_json(event), separators=(",", ":"), default=str))
            self._start_sender()
        except Exception as exc:  # emit() never raises, whatever the event holds
            self._dropped += 1
            log.warning("audit.event_dropped", kind=event.kind, problem=repr(exc))

    async def flush(self, timeout_s: float) -> bool:
        if self._pending() == 0:
            return True
        self._start_sender()
        self._flushing += 1
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()
        except TimeoutError:
            return False
        finally:
            self._flushing -= 1
        return True

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        if self._closed:
            return
        self._closed = True
        await self.flush(grace_s)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        if self._source is not None and self._pending() == 0:
            await self._send([], self._clock_ms(), closed=True)
        self._keep_undelivered()
        if self._owns_client and self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    # --- introspection ------------------------------------------------------------------

    @property
    def stats(self) -> ReporterStats:
        return ReporterStats(
            pending=self._pending(),
            spilled=self._spilled,
            delivered=self._delivered,
            dropped=self._dropped,
            rejected=self._rejected,
            failed_attempts=self._failed_attempts,
            breaker=self._breaker.state,
        )

    # --- buffering ----------------------------------------------------------------------

    def _pending(self) -> int:
        spilled = self._spill.pending if self._spill is not None else 0
        return len(self._queue) + self._in_flight + spilled

    def _append(self, line: str) -> None:
        if self._closed:
            raise RuntimeError("the reporter is closed")
        full = len(self._queue) + self._in_flight >= self._capacity
        if self._spill is not None and (full or self._spill.pending):
            self._spill.append(line)
            self._spilled += 1
        else:
            if full:
                self._queue.popleft()
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.warning("audit.buffer_full", capacity=self._capacity, dropped=self._dropped)
            self._queue.append(line)
        self._drained.clear()
        self._wake.set()

    def _refill(self) -> None:
        """Move spilled events back into memory while there is room, oldest first."""
        if self._spill is None or not self._spill.pending:
            return
        room = self._capacity - len(self._queue) - self._in_flight
        if room < self._batch_size and self._queue:
            return
        try:
            self._queue.extend(self._spill.take(max(room, self._batch_size)))
        except OSError as exc:
            log.warning("audit.spill_unreadable", path=str(self._spill.path), problem=str(exc))

    def _keep_undelivered(self) -> None:
        if not self._queue:
            return
        if self._spill is None:
            log.warning("audit.undelivered", events=len(self._queue), url=self._events_url)
            return
        try:
            self._spill.prepend(list(self._queue))  # older than anything spilled before
            self._queue.clear()
        except OSError as exc:
            log.warning("audit.spill_unwritable", path=str(self._spill.path), problem=str(exc))

    # --- sending ------------------------------------------------------------------------

    def _start_sender(self) -> None:
        if self._sender is not None and not self._sender.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the first emit or flush inside one starts the sender
        self._sender = loop.create_task(self._run(), name="audit-reporter")

    async def _run(self) -> None:
        attempt = 0
        while True:
            self._refill()
            if not self._queue:
                self._drained.set()
                self._wake.clear()
                await self._idle()
                continue
            if len(self._queue) < self._batch_size and not self._flushing and self._linger_s:
                await asyncio.sleep(self._linger_s)  # let a batch gather
            if not self._breaker.allow():
                await asyncio.sleep(max(self._breaker.retry_in(), 0.001))
                continue
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            self._in_flight = len(batch)
            complete_to = self._clock_ms() if self._nothing_left() else None
            try:
                outcome, problem = await self._send(batch, complete_to)
            except asyncio.CancelledError:
                self._queue.extendleft(reversed(batch))  # closing: keep it for the spill file
                raise
            finally:
                self._in_flight = 0
            if outcome is _Outcome.FAILED:
                self._queue.extendleft(reversed(batch))
                attempt += 1
                self._failed_attempts += 1
                was_open = self._breaker.state is not BreakerState.CLOSED
                self._breaker.record_failure()
                if not was_open and self._breaker.state is not BreakerState.CLOSED:
                    log.warning(
                        "audit.unreachable", url=self._events_url, problem=problem,
                        buffered=self._pending(),
                    )  # fmt: skip
                await asyncio.sleep(max(self._backoff.delay(attempt), self._breaker.retry_in()))
                continue
            if attempt:
                log.info("audit.reachable_again", url=self._events_url, backlog=self._pending())
            attempt = 0
            self._breaker.record_success()
            if outcome is _Outcome.DELIVERED:
                self._delivered += len(batch)
            else:
                self._rejected += len(batch)
                log.warning("audit.batch_rejected", events=len(batch), problem=problem)

    def _nothing_left(self) -> bool:
        """Whether every event emitted so far is in flight or delivered."""
        return not self._queue and (self._spill is None or not self._spill.pending)

    async def _idle(self) -> None:
        """Wait for an event; with a heartbeat, send the progress mark while none comes."""
        if self._heartbeat_s is None:
            await self._wake.wait()
            return
        try:
            async with asyncio.timeout(self._heartbeat_s):
                await self._wake.wait()
        except TimeoutError:
            if self._breaker.allow():
                await self._send([], self._clock_ms())

    async def _send(
        self, batch: list[str], complete_to: int | None = None, *, closed: bool = False
    ) -> tuple[_Outcome, str]:
        body = ("[" + ",".join(batch) + "]").encode()
        headers = {"content-type": "application/json"}
        if self._source is not None:
            headers.update(progress_headers(self._source, complete_to, closed=closed))
        try:
            response = await self._http().post(
                self._events_url, content=body, headers=headers, timeout=self._timeout_s
            )
        except Exception as exc:  # httpx's errors and any other: retried, never raised
            return _Outcome.FAILED, f"{type(exc).__name__}: {exc}"
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome.DELIVERED, ""
        problem = f"HTTP {status}: {response.text[:200]}"
        if status >= 500 or status in (408, 429):
            return _Outcome.FAILED, problem
        return _Outcome.REJECTED, problem

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, timeout=self._timeout_s)
        return self._client
