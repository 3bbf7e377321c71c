"""Poll a probe until it succeeds, with a deadline: how recovery is observed and timed.

Which moment counts as "observed": the moment the successful probe COMPLETED.
A probe's answer reflects the target's state at some instant between the
probe's start and its completion. Taking the start is early by up to the whole
probe latency, and without bound when the request was parked: a probe sent to a
paused (SIGSTOPped) service sits in the kernel's accept queue and succeeds the
moment the service resumes, so its start time can precede the resume (even the
fault) by up to the probe's timeout. Taking the completion is late by at most
the response's way back, well under a millisecond locally. The benchmark below
shows both.

Polling is fixed-rate: attempts start every ``interval_s`` from the first one
(or at once, when an attempt took longer than the interval), so a slow failing
probe does not stretch the gap between attempts.

Back-off: while the target *refuses* (it saw the probe and said no: a 503, a
NOT_SERVING, a command that ran and failed; see ``ProbeResult.refused``), the gap
doubles after each refusal, up to ``max_interval_s``, and returns to
``interval_s`` at the first answer that is not a refusal. A refused connection or
a timeout does not back off: the target never saw the probe, and that is the
moment its return must be caught to the millisecond.

``DEFAULT_POLL_INTERVAL_S`` was chosen with ``benchmarks/poll_interval.py``:
the error of the observed moment against a tiny_server that turns healthy at a
known moment T of the monotonic clock, 200 trials per interval, on the 2-core
machine (ms, observed - T):

    interval   moment      p50     p95     min     max
     2 ms      completed   1.45    2.77    0.27    3.25
               started     0.86    2.17   -0.51    2.45
     5 ms      completed   2.94    5.43    0.47    6.14
               started     2.11    4.56   -0.36    5.16
    10 ms      completed   5.79   10.49    0.57   12.81
               started     4.65    8.86   -0.71   11.35
    20 ms      completed  10.62   19.80    0.53   21.42
               started     9.53   18.35   -0.83   19.89
    paused, resumed at T (30 trials, 5 ms):
               completed   1.15    1.35    1.01    1.37
               started   -99.65  -56.67 -149.62  -54.69

10 ms misses the 10 ms p95 target; 5 ms meets it with room to spare for a busy
machine, at 200 probes a second while a condition is being waited for. 2 ms
buys 2.7 ms more accuracy for 2.5 times the load. Completion is under 1 ms later
than start on a fast target, and never earlier than the truth.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

from test_coordinator.runtime.probe_result import ProbeResult

# 3 ms: the recovery moment's error stays under 5 ms at p95 (5 ms gave p95 5.4 ms,
# see the table above and benchmarks/engine.py). With kept-alive connections an HTTP
# poll costs the target one request and the coordinator about 0.1 ms of CPU.
DEFAULT_POLL_INTERVAL_S = 0.003


class DeadlineExceeded(Exception):
    """The condition did not hold before the deadline; ``last`` is the last result seen."""

    def __init__(self, message: str, *, last: ProbeResult | None, attempts: int, waited_s: float):
        super().__init__(message)
        self.last = last
        self.attempts = attempts
        self.waited_s = waited_s


async def wait_until(
    check: Callable[[], Awaitable[ProbeResult]],
    *,
    deadline_s: float,
    interval_s: float = DEFAULT_POLL_INTERVAL_S,
    max_interval_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[ProbeResult, float]:
    """Call ``check`` every ``interval_s`` until it returns an ok result.

    ``deadline_s`` is a duration in seconds from the call. Returns the first ok
    result and the ``clock()`` reading when that check completed (see the module
    docstring for why completion). An attempt still running at the deadline is
    cancelled. Raises :class:`DeadlineExceeded`, carrying the last result, when
    no attempt succeeded in time. ``max_interval_s`` (default: ``interval_s``) caps
    the back-off while the target refuses.
    """
    if deadline_s <= 0:
        raise ValueError(f"deadline_s must be > 0, not {deadline_s}")
    if interval_s < 0:
        raise ValueError(f"interval_s must be >= 0, not {interval_s}")
    ceiling = max(interval_s, max_interval_s or 0.0)
    gap = interval_s
    started = clock()
    deadline = started + deadline_s
    next_start = started
    last: ProbeResult | None = None
    attempts = 0
    while True:
        attempts += 1
        attempt_started = clock()
        try:
            async with asyncio.timeout(deadline - attempt_started) as scope:
                result = await check()
        except TimeoutError:
            if not scope.expired():
                raise
            waited = clock() - attempt_started
            running = f"still running at the deadline ({deadline_s:g} s)"
            if last is None:
                last = ProbeResult(False, None, running, waited * 1000.0)
            else:  # the answer before it says more than the attempt cut short
                last = dataclasses.replace(
                    last, detail=f"{last.detail} (the next attempt {running})"
                )
            raise _exceeded(deadline_s, last, attempts, clock() - started) from None
        observed = clock()
        if result.ok:
            return result, observed
        last = result
        gap = min(gap * 2, ceiling) if result.refused else interval_s
        next_start = max(next_start + gap, observed)
        if next_start >= deadline:
            raise _exceeded(deadline_s, last, attempts, observed - started)
        if next_start > observed:
            await asyncio.sleep(next_start - observed)


def _exceeded(
    deadline_s: float, last: ProbeResult, attempts: int, waited_s: float
) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"not true within {deadline_s:g} s ({attempts} attempts); last: {last.detail}",
        last=last,
        attempts=attempts,
        waited_s=waited_s,
    )
