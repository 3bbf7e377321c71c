"""The load generator's scheduling and bookkeeping, against in-memory transports."""

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from test_coordinator.runtime.load import LoadGenerator, LoadSample
from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.probes import ProbeResult


def delayed_client(delay_s: float, status: int = 200) -> httpx.AsyncClient:
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(delay_s)
        return httpx.Response(status, text="ok")

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def at_least(generator: LoadGenerator, count: int) -> Callable[[], Awaitable[ProbeResult]]:
    async def check() -> ProbeResult:
        n = len(generator.samples())
        return ProbeResult(n >= count, n, f"{n} samples", 0.0)

    return check


async def test_a_slow_server_does_not_slow_the_sending() -> None:
    """Open loop: with 40 ms answers at 200/s, sends stay 5 ms apart."""
    async with delayed_client(0.040) as client:
        generator = LoadGenerator("http://svc/", 200, client=client, timeout_s=1.0)
        generator.start()
        try:
            await wait_until(at_least(generator, 30), deadline_s=3.0, interval_s=0.005)
        finally:
            await generator.stop()

    samples = generator.samples()
    gaps = [b.at_ms - a.at_ms for a, b in itertools.pairwise(samples)]
    assert 4.0 <= statistics.median(gaps) <= 7.0
    assert all(s.ok and s.status == 200 and s.latency_ms >= 40.0 for s in samples)


async def test_bounded_in_flight_records_what_it_could_not_send() -> None:
    """A hung server fills max_in_flight; further sends are failures, not a queue."""
    async with delayed_client(10.0) as client:
        generator = LoadGenerator("http://svc/", 500, client=client, timeout_s=0.1, max_in_flight=3)
        generator.start()
        try:
            await wait_until(at_least(generator, 10), deadline_s=3.0, interval_s=0.005)
        finally:
            started = time.monotonic()
            await generator.stop()
            stop_took = time.monotonic() - started

    errors = {s.error for s in generator.samples()}
    assert "not sent: 3 requests in flight" in errors
    assert "no answer within 0.1 s" in errors
    assert not any(s.ok for s in generator.samples())
    assert stop_took < 0.5


async def test_error_statuses_count_as_errors() -> None:
    async with delayed_client(0.0, status=503) as client:
        generator = LoadGenerator("http://svc/", 500, client=client)
        async with generator:
            await wait_until(at_least(generator, 5), deadline_s=3.0, interval_s=0.005)

    summary = generator.summary()
    assert summary.count == summary.errors > 0
    assert summary.error_rate == 1.0
    assert {s.error for s in generator.samples()} == {"status 503"}


async def test_times_are_relative_to_the_origin() -> None:
    """at_ms counts from the given origin, so samples line up with the run's timeline."""
    origin = time.monotonic() - 10.0
    async with delayed_client(0.0) as client:
        generator = LoadGenerator("http://svc/", 500, client=client, origin_s=origin)
        async with generator:
            await wait_until(at_least(generator, 3), deadline_s=3.0, interval_s=0.005)

    first: LoadSample = generator.samples()[0]
    assert 10_000.0 <= first.at_ms < 11_000.0
    assert generator.origin_s == origin


async def test_stops_by_itself_after_max_duration() -> None:
    async with delayed_client(0.0) as client:
        generator = LoadGenerator("http://svc/", 1000, client=client, max_duration_s=0.02)
        generator.start()
        await wait_until(lambda: _done(not generator.running), deadline_s=2.0, interval_s=0.005)
        await generator.stop()

    assert 10 <= len(generator.samples()) <= 21


async def _done(flag: bool) -> ProbeResult:
    return ProbeResult(flag, flag, "", 0.0)


async def test_a_stopped_generator_cannot_restart() -> None:
    generator = LoadGenerator("http://svc/", 10)
    await generator.stop()

    with pytest.raises(RuntimeError, match="cannot start again"):
        generator.start()


@pytest.mark.parametrize("rate", [0, -5, 1e6])
def test_rate_out_of_range_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        LoadGenerator("http://svc/", rate)
