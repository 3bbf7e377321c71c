"""A built-in load generator: open-loop HTTP requests, TCP connects or commands at a set
rate, every outcome kept with its reason.

Open loop: attempt *i* is due at ``start + i / rate`` whatever happened to the
earlier ones, so a slow or stuck server does not slow the load down (and hide
its own latency). Attempts in flight are bounded by ``max_in_flight``; a send
that finds the bound reached is recorded as a failed sample ("not sent"), never
queued (the default bound is never reached: see ``LoadGenerator``). Each attempt is
bounded by ``timeout_s``, counted from when it was actually sent. The generator
stops by itself after ``max_duration_s`` in any case.

The sending runs in a thread of its own (:mod:`runtime.load_loop`), so that
neither the coordinator's event loop nor a busy machine is taken for the
server's latency: see that module for how a deadline is judged. A send that
thread makes late is made at once (catch-up); one it could not make within a
second of its slot is skipped and counted (``skipped``), never as an error.

Times are milliseconds on the monotonic clock, relative to ``origin_s`` (the
executor passes its run's origin, so that samples line up with its timeline).
A sample's ``at_ms`` is when its attempt was sent; its ``reason`` says in one
word why it failed: ``refused``, ``reset``, ``timeout``, ``status N``,
``exit N``, ``not sent`` or ``other`` (``error`` says it in words).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from test_coordinator.runtime.load_command import CommandTarget
from test_coordinator.runtime.load_http import HttpTarget
from test_coordinator.runtime.load_loop import (
    MAX_LATE_S,
    STOP_GRACE_S,
    LoadRun,
    LoadTarget,
    Outcome,
)
from test_coordinator.runtime.load_tcp import TcpTarget
from test_coordinator.runtime.os_limits import allow_open_files

__all__ = [
    "CommandTarget",
    "HttpTarget",
    "LoadGenerator",
    "LoadSample",
    "LoadSummary",
    "LoadTarget",
    "TcpTarget",
    "percentile",
    "summarize",
]

DEFAULT_MAX_DURATION_S = 900.0
MAX_RATE_PER_S = 5000.0


@dataclass(frozen=True, slots=True)
class LoadSample:
    at_ms: float
    latency_ms: float
    ok: bool
    status: int | None
    error: str
    reason: str = ""
    """Why it failed in one word (see the module); empty when ok."""


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """Counts and latency percentiles (nearest rank) over a set of samples.

    With no samples, the count is 0, the error rate 0.0 and the latencies None.
    Latencies cover every sample, failed ones included (a refused connection is
    fast, a timed-out one is ``timeout_s``). ``reasons`` counts the failed samples
    by reason; ``skipped`` the sends the generator itself missed (not samples).
    """

    count: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: int = 0


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``pct`` % of values
    at or below it. ``sorted_values`` must be sorted and not empty."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {pct}")
    rank = math.ceil(pct / 100.0 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def _within(at_ms: float, start_ms: float | None, end_ms: float | None) -> bool:
    return (start_ms is None or at_ms >= start_ms) and (end_ms is None or at_ms < end_ms)


def summarize(
    samples: Sequence[LoadSample],
    start_ms: float | None = None,
    end_ms: float | None = None,
    skipped_ms: Sequence[float] = (),
) -> LoadSummary:
    """Summary of the samples sent in ``[start_ms, end_ms)`` (either bound may be open);
    ``skipped_ms`` are the moments of missed sends."""
    window = [s for s in samples if _within(s.at_ms, start_ms, end_ms)]
    skipped = sum(1 for at in skipped_ms if _within(at, start_ms, end_ms))
    if not window:
        return LoadSummary(0, 0, 0.0, None, None, None, None, {}, skipped)
    latencies = sorted(s.latency_ms for s in window)
    reasons = Counter(s.reason or "other" for s in window if not s.ok)
    errors = sum(reasons.values())
    return LoadSummary(
        count=len(window),
        errors=errors,
        error_rate=errors / len(window),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1],
        reasons=dict(reasons.most_common()),
        skipped=skipped,
    )


class LoadGenerator:
    """Sends to ``target`` at ``rate_per_s`` from start() until stop().

    ``target`` is a URL (``method url``; ``expect_status`` says which statuses
    count as success, default below 400) or a :class:`LoadTarget`
    (:class:`TcpTarget`, :class:`CommandTarget`). ``max_in_flight`` defaults to
    what the rate can have in flight at all, ``rate x (timeout + 1 s)``; starting
    raises the process's soft limit on open files to match where it can.
    """

    def __init__(
        self,
        target: str | LoadTarget,
        rate_per_s: float,
        *,
        method: str = "GET",
        timeout_s: float = 1.0,
        origin_s: float | None = None,
        expect_status: Sequence[int] | None = None,
        max_in_flight: int | None = None,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
    ) -> None:
        if not 0 < rate_per_s <= MAX_RATE_PER_S:
            raise ValueError(f"rate_per_s must be in (0, {MAX_RATE_PER_S:g}], not {rate_per_s}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s}")
        self.target = (
            HttpTarget(target, method, expect_status) if isinstance(target, str) else target
        )
        self.description = self.target.description
        self.rate_per_s = rate_per_s
        self.timeout_s = timeout_s
        # By default the bound never refuses a send: sends are at most MAX_LATE_S late, so
        # no more than this many can be sent within any one timeout.
        self.max_in_flight = max_in_flight or math.ceil(rate_per_s * (timeout_s + MAX_LATE_S)) + 8
        self.max_duration_s = max_duration_s
        self._origin_s = origin_s
        self._samples: list[LoadSample] = []
        self._run: LoadRun | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return self.description

    @property
    def origin_s(self) -> float | None:
        return self._origin_s

    @property
    def running(self) -> bool:
        """Still sending (not yet stopped, nor past ``max_duration_s``)."""
        return self._run is not None and self._run.sending and not self._run.finished.is_set()

    def start(self) -> None:
        """Begin sending, in a thread of its own; a second call does nothing."""
        if self._stopped:
            raise RuntimeError("a stopped LoadGenerator cannot start again; make a new one")
        if self._run is not None:
            return
        if self._origin_s is None:
            self._origin_s = time.monotonic()
        # Each attempt in flight holds a descriptor: a generator that ran out would report
        # failures of its own.
        allow_open_files(self.max_in_flight + 64)
        self._run = LoadRun(
            self.target,
            self.rate_per_s,
            timeout_s=self.timeout_s,
            max_in_flight=self.max_in_flight,
            max_duration_s=self.max_duration_s,
            record=self._record,
        )
        self._run.start()

    async def stop(self) -> None:
        """Stop sending and let attempts in flight finish (each is bounded by
        ``timeout_s``). Idempotent."""
        self._stopped = True
        run = self._run
        if run is None:
            return
        run.request_stop()
        bound = self.timeout_s + STOP_GRACE_S + 1.0
        if not await asyncio.to_thread(run.finished.wait, bound):
            run.request_stop(abort=True)
            await asyncio.to_thread(run.finished.wait, 1.0)
        if run.error is not None:
            raise RuntimeError(f"the load on {self.description} failed: {run.error!r}")

    async def __aenter__(self) -> LoadGenerator:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def samples(self) -> list[LoadSample]:
        """Every recorded outcome so far, in the order the attempts were sent."""
        return sorted(list(self._samples), key=lambda s: s.at_ms)

    def skipped_ms(self) -> list[float]:
        """When the sends the generator itself missed were due (ms from the origin)."""
        origin = self._origin_s or 0.0
        skipped = list(self._run.skipped) if self._run is not None else []
        return [round((at - origin) * 1000.0, 3) for at in skipped]

    def summary(self, start_ms: float | None = None, end_ms: float | None = None) -> LoadSummary:
        return summarize(list(self._samples), start_ms, end_ms, self.skipped_ms())

    def _record(self, started: float, outcome: Outcome) -> None:
        origin = self._origin_s if self._origin_s is not None else 0.0
        self._samples.append(
            LoadSample(
                at_ms=round((started - origin) * 1000.0, 3),
                latency_ms=round(max(outcome.done_at - started, 0.0) * 1000.0, 3),
                ok=outcome.ok,
                status=outcome.status,
                error=outcome.error,
                reason=outcome.reason,
            )
        )
