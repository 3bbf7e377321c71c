"""A built-in HTTP load generator: open-loop requests at a set rate, every outcome kept.

Open loop: request *i* is sent at ``start + i / rate`` whatever happened to the
earlier ones, so a slow or stuck server does not slow the load down (and hide
its own latency). Requests in flight are bounded by ``max_in_flight``; a send
that finds the bound reached is recorded as a failed sample ("not sent"), never
queued. Each request is bounded by ``timeout_s``. The generator stops by itself
after ``max_duration_s`` in any case.

Times are milliseconds on the monotonic ``clock``, relative to ``origin_s`` (the
executor passes its run's origin, so that samples line up with its timeline).
A sample's ``at_ms`` is when its request was sent.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from test_coordinator.runtime.http_client import describe_http_error, new_http_client

DEFAULT_MAX_DURATION_S = 900.0
MAX_RATE_PER_S = 5000.0


@dataclass(frozen=True, slots=True)
class LoadSample:
    at_ms: float
    latency_ms: float
    ok: bool
    status: int | None
    error: str


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """Counts and latency percentiles (nearest rank) over a set of samples.

    With no samples, the count is 0, the error rate 0.0 and the latencies None.
    Latencies cover every sample, failed ones included (a refused connection is
    fast, a timed-out one is ``timeout_s``).
    """

    count: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``pct`` % of values
    at or below it. ``sorted_values`` must be sorted and not empty."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {pct}")
    rank = math.ceil(pct / 100.0 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def summarize(
    samples: Sequence[LoadSample], start_ms: float | None = None, end_ms: float | None = None
) -> LoadSummary:
    """Summary of the samples sent in ``[start_ms, end_ms)`` (either bound may be open)."""
    window = [
        s
        for s in samples
        if (start_ms is None or s.at_ms >= start_ms) and (end_ms is None or s.at_ms < end_ms)
    ]
    if not window:
        return LoadSummary(0, 0, 0.0, None, None, None, None)
    latencies = sorted(s.latency_ms for s in window)
    errors = sum(1 for s in window if not s.ok)
    return LoadSummary(
        count=len(window),
        errors=errors,
        error_rate=errors / len(window),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1],
    )


class LoadGenerator:
    """Sends ``method url`` at ``rate_per_s`` from start() until stop().

    ``expect_status`` says which statuses count as success (default: below 400).
    Pass a shared ``client`` or let the generator make (and close) its own.
    """

    def __init__(
        self,
        url: str,
        rate_per_s: float,
        *,
        method: str = "GET",
        timeout_s: float = 1.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        origin_s: float | None = None,
        expect_status: Sequence[int] | None = None,
        max_in_flight: int | None = None,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
    ) -> None:
        if not 0 < rate_per_s <= MAX_RATE_PER_S:
            raise ValueError(f"rate_per_s must be in (0, {MAX_RATE_PER_S:g}], not {rate_per_s}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s}")
        self.url = url
        self.rate_per_s = rate_per_s
        self.method = method.upper()
        self.timeout_s = timeout_s
        self.expect_status = tuple(expect_status) if expect_status is not None else None
        self.max_in_flight = max_in_flight or math.ceil(rate_per_s * timeout_s) + 8
        self.max_duration_s = max_duration_s
        self._clock = clock
        self._origin_s = origin_s
        self._client = client
        self._owns_client = client is None
        self._request: httpx.Request | None = None
        self._samples: list[LoadSample] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def origin_s(self) -> float | None:
        return self._origin_s

    @property
    def running(self) -> bool:
        return self._scheduler is not None and not self._scheduler.done()

    def start(self) -> None:
        """Begin sending (needs a running event loop); a second call does nothing."""
        if self._stopped:
            raise RuntimeError("a stopped LoadGenerator cannot start again; make a new one")
        if self._scheduler is not None:
            return
        if self._origin_s is None:
            self._origin_s = self._clock()
        if self._client is None:
            self._client = new_http_client(max_connections=self.max_in_flight)
        self._request = self._client.build_request(self.method, self.url, timeout=self.timeout_s)
        self._scheduler = asyncio.create_task(self._schedule(), name=f"load:{self.url}")

    async def stop(self) -> None:
        """Stop sending, let requests in flight finish (each is bounded by
        ``timeout_s``), and close the client if the generator made it. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.wait([self._scheduler])
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=self.timeout_s + 1.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    async def __aenter__(self) -> LoadGenerator:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def samples(self) -> list[LoadSample]:
        """Every recorded outcome so far, in the order the requests were sent."""
        return sorted(self._samples, key=lambda s: s.at_ms)

    def summary(self, start_ms: float | None = None, end_ms: float | None = None) -> LoadSummary:
        return summarize(self._samples, start_ms, end_ms)

    async def _schedule(self) -> None:
        period = 1.0 / self.rate_per_s
        first = self._clock()
        sent = 0
        while True:
            target = first + sent * period
            if target - first >= self.max_duration_s:
                return
            delay = target - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._send()
            sent += 1

    def _send(self) -> None:
        at = self._clock()
        if len(self._in_flight) >= self.max_in_flight:
            self._record(at, at, None, f"not sent: {len(self._in_flight)} requests in flight")
            return
        task = asyncio.create_task(self._request_once(at))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _request_once(self, at: float) -> None:
        assert self._client is not None and self._request is not None
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._client.send(self._request)
        except TimeoutError:
            self._record(at, self._clock(), None, f"no answer within {self.timeout_s:g} s")
            return
        except (httpx.HTTPError, OSError) as exc:
            self._record(at, self._clock(), None, describe_http_error(exc))
            return
        status = response.status_code
        expected = self.expect_status
        ok = status in expected if expected is not None else status < 400
        self._record(at, self._clock(), status, "" if ok else f"status {status}")

    def _record(self, sent: float, done: float, status: int | None, error: str) -> None:
        origin = self._origin_s if self._origin_s is not None else 0.0
        self._samples.append(
            LoadSample(
                at_ms=(sent - origin) * 1000.0,
                latency_ms=(done - sent) * 1000.0,
                ok=not error,
                status=status,
                error=error,
            )
        )
