"""The HTTP audit reporter buffers while the correlator is away, stops hammering it behind a
circuit breaker, and delivers everything, in order and once, when it answers again."""

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from support.polling import eventually
from test_coordinator.adapters.audit import (
    BreakerState,
    CircuitBreaker,
    ExponentialBackoff,
    HttpAuditReporter,
)
from test_coordinator.ports.audit import AuditEvent

URL = "http://audit.test"


class FakeCorrelator:
    """A stand-in audit correlator behind httpx.MockTransport."""

    def __init__(self) -> None:
        self.up = True
        self.hang = False
        self.status = 202
        self.requests = 0
        self.received: list[dict[str, object]] = []
        self.progress: list[tuple[int, str | None, str | None, str | None]] = []
        """(events in the batch, source, complete-to, closed) of each batch delivered."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert "/api/v1/events" == request.url.path
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        if self.hang:
            await asyncio.Event().wait()  # a frozen correlator: the request never ends
        if 200 <= self.status < 300:
            batch = json.loads(request.content)
            self.received.extend(batch)
            headers = request.headers
            self.progress.append(
                (
                    len(batch),
                    headers.get("x-audit-source"),
                    headers.get("x-audit-complete-to"),
                    headers.get("x-audit-closed"),
                )
            )
        return httpx.Response(self.status, json={"accepted": 0})

    def kinds(self) -> list[str]:
        return [str(e["kind"]) for e in self.received]


def event(n: int, **data: object) -> AuditEvent:
    return AuditEvent(f"e{n}", 1_700_000_000_000 + n, "run-1", "test-coordinator", data)


@pytest.fixture
def correlator() -> FakeCorrelator:
    return FakeCorrelator()


@pytest.fixture
async def make_reporter(
    correlator: FakeCorrelator,
) -> AsyncIterator[Callable[..., HttpAuditReporter]]:
    made: list[HttpAuditReporter] = []
    client = httpx.AsyncClient(transport=httpx.MockTransport(correlator.handle))

    def make(**options: object) -> HttpAuditReporter:
        settings: dict[str, object] = {
            "client": client,
            "linger_s": 0.0,
            "backoff": ExponentialBackoff(base_s=0.001, max_s=0.002, jitter=0.0),
            "breaker": CircuitBreaker(failure_threshold=3, cooldown_s=0.02),
            **options,
        }
        reporter = HttpAuditReporter(URL, **settings)  # type: ignore[arg-type]
        made.append(reporter)
        return reporter

    yield make
    for reporter in made:
        await reporter.close(grace_s=0.01)
    await client.aclose()


async def test_delivers_every_event_in_order_in_batches(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """Seven events with batches of three: all arrive, in order, in at least three posts."""
    reporter = make_reporter(batch_size=3)
    for n in range(7):
        reporter.emit(event(n))

    assert await reporter.flush(2.0)
    assert [f"e{n}" for n in range(7)] == correlator.kinds()
    assert correlator.requests >= 3
    assert 7 == reporter.stats.delivered


async def test_the_wire_format_is_what_the_correlator_parses(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    reporter = make_reporter()
    sent = AuditEvent("fault.injected", 1_700_000_000_123, "run-7", "test-coordinator", {"a": 1})
    reporter.emit(sent)

    assert await reporter.flush(2.0)
    assert [
        {
            "id": sent.event_id,
            "source": "test-coordinator",
            "kind": "fault.injected",
            "at": 1_700_000_000_123,
            "correlation_id": "run-7",
            "data": {"a": 1},
        }
    ] == correlator.received


async def test_emit_neither_blocks_nor_raises_while_the_correlator_is_down(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """A thousand emits against a dead correlator return at once; the events wait."""
    correlator.up = False
    reporter = make_reporter()
    started = time.perf_counter()
    for n in range(1000):
        reporter.emit(event(n))
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert not await reporter.flush(0.05)
    assert 1000 == reporter.stats.pending
    assert 0 == reporter.stats.delivered


async def test_the_breaker_opens_and_stops_the_requests(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """After three consecutive failures no request goes out for the whole cooldown."""
    correlator.up = False
    reporter = make_reporter(breaker=CircuitBreaker(failure_threshold=3, cooldown_s=30.0))
    reporter.emit(event(1))
    await eventually(lambda: reporter.stats.breaker is BreakerState.OPEN, timeout_s=2.0)

    assert not await reporter.flush(0.1)
    assert 3 == correlator.requests
    assert 3 == reporter.stats.failed_attempts


async def test_what_was_buffered_is_flushed_when_the_correlator_answers_again(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """Events emitted during the outage arrive once, in order, after it; the breaker closes."""
    correlator.up = False
    reporter = make_reporter(batch_size=4)
    for n in range(10):
        reporter.emit(event(n))
    await eventually(lambda: reporter.stats.breaker is not BreakerState.CLOSED, timeout_s=2.0)
    correlator.up = True
    reporter.emit(event(10))

    assert await reporter.flush(2.0)
    assert [f"e{n}" for n in range(11)] == correlator.kinds()
    assert BreakerState.CLOSED == reporter.stats.breaker
    assert 0 == reporter.stats.pending


async def test_a_full_buffer_drops_the_oldest_and_counts_them(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    correlator.up = False
    reporter = make_reporter(capacity=5)
    for n in range(8):
        reporter.emit(event(n))

    assert 5 == reporter.stats.pending
    assert 3 == reporter.stats.dropped
    correlator.up = True
    assert await reporter.flush(2.0)
    assert ["e3", "e4", "e5", "e6", "e7"] == correlator.kinds()


async def test_overflow_spills_to_a_file_and_comes_back_in_order(
    tmp_path: Path,
    correlator: FakeCorrelator,
    make_reporter: Callable[..., HttpAuditReporter],
) -> None:
    """With a spill file nothing is dropped: what did not fit is sent after the rest."""
    spill = tmp_path / "spill.jsonl"
    correlator.up = False
    reporter = make_reporter(capacity=3, batch_size=2, spill_path=spill)
    for n in range(10):
        reporter.emit(event(n))

    assert 10 == reporter.stats.pending
    assert 7 == reporter.stats.spilled
    assert 0 == reporter.stats.dropped
    correlator.up = True
    assert await reporter.flush(3.0)
    assert [f"e{n}" for n in range(10)] == correlator.kinds()
    assert not spill.exists()


async def test_close_keeps_what_it_could_not_send_for_the_next_reporter(
    tmp_path: Path,
    correlator: FakeCorrelator,
    make_reporter: Callable[..., HttpAuditReporter],
) -> None:
    """A reporter closed while the correlator is down leaves its events in the spill file,
    the buffered ones in front of those that had overflowed already."""
    spill = tmp_path / "spill.jsonl"
    correlator.up = False
    first = make_reporter(spill_path=spill, capacity=2)
    for n in range(4):
        first.emit(event(n))
    await first.close(grace_s=0.05)

    assert ["e0", "e1", "e2", "e3"] == [
        json.loads(line)["kind"] for line in spill.read_text().splitlines()
    ]
    correlator.up = True
    second = make_reporter(spill_path=spill)
    second.emit(event(4))
    assert await second.flush(2.0)
    assert [f"e{n}" for n in range(5)] == correlator.kinds()


async def test_a_batch_cut_off_by_close_is_kept(
    tmp_path: Path,
    correlator: FakeCorrelator,
    make_reporter: Callable[..., HttpAuditReporter],
) -> None:
    """Closing while a post hangs on a frozen correlator spills that batch too."""
    spill = tmp_path / "spill.jsonl"
    correlator.hang = True
    reporter = make_reporter(spill_path=spill)
    reporter.emit(event(1))
    await eventually(lambda: correlator.requests == 1, timeout_s=2.0)

    await reporter.close(grace_s=0.01)

    assert ["e1"] == [json.loads(line)["kind"] for line in spill.read_text().splitlines()]


async def test_a_refused_batch_is_dropped_not_retried(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """A 4xx says the batch itself is wrong: retrying would block every later event."""
    correlator.status = 422
    reporter = make_reporter()
    reporter.emit(event(1))
    reporter.emit(event(2))

    assert await reporter.flush(2.0)
    assert 1 == correlator.requests
    assert 2 == reporter.stats.rejected
    assert BreakerState.CLOSED == reporter.stats.breaker


async def test_server_errors_are_retried(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """A 503 is the correlator being away: the batch is kept and sent again."""
    correlator.status = 503
    reporter = make_reporter(breaker=CircuitBreaker(failure_threshold=100, cooldown_s=1.0))
    reporter.emit(event(1))
    await eventually(lambda: correlator.requests >= 2, timeout_s=2.0)
    correlator.status = 202

    assert await reporter.flush(2.0)
    assert ["e1"] == correlator.kinds()


async def test_an_event_that_cannot_be_encoded_is_counted_not_raised(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """emit() never raises; odd values become text, a circular one is dropped."""
    reporter = make_reporter()
    circular: dict[str, object] = {}
    circular["self"] = circular
    reporter.emit(event(1, odd=object.__new__(object)))
    reporter.emit(event(2, loop=circular))

    assert await reporter.flush(2.0)
    assert ["e1"] == correlator.kinds()
    assert 1 == reporter.stats.dropped


async def test_emit_after_close_is_dropped_quietly(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    reporter = make_reporter()
    await reporter.close()
    await reporter.close()
    reporter.emit(event(1))

    assert 1 == reporter.stats.dropped
    assert 0 == correlator.requests


def test_events_emitted_before_the_loop_runs_are_sent_by_the_first_flush(
    correlator: FakeCorrelator,
) -> None:
    """emit() outside a running loop only buffers; the sender starts inside one."""

    async def deliver() -> bool:
        try:
            return await reporter.flush(2.0)
        finally:
            await reporter.close(grace_s=0.1)
            await client.aclose()

    client = httpx.AsyncClient(transport=httpx.MockTransport(correlator.handle))
    reporter = HttpAuditReporter(URL, client=client, linger_s=0.0)
    reporter.emit(event(1))

    assert 1 == reporter.stats.pending
    assert asyncio.run(deliver())
    assert ["e1"] == correlator.kinds()


async def test_a_batch_that_leaves_nothing_behind_marks_its_source_complete_to_its_cut(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    """Five events in batches of two: only the last batch says how far the source is."""
    clock = itertools.count(1000)
    reporter = make_reporter(batch_size=2, source="exchange-OKX", clock_ms=lambda: next(clock))
    for n in range(5):
        reporter.emit(event(n))

    assert await reporter.flush(2.0)
    assert [
        (2, "exchange-OKX", None, None),
        (2, "exchange-OKX", None, None),
        (1, "exchange-OKX", "1000", None),
    ] == correlator.progress


async def test_an_idle_reporter_sends_its_mark_as_a_heartbeat_and_closes_with_it(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    clock = itertools.count(1000)
    reporter = make_reporter(source="exchange-OKX", heartbeat_s=0.001, clock_ms=lambda: next(clock))
    reporter.emit(event(1))
    assert await reporter.flush(2.0)

    await eventually(lambda: len(correlator.progress) >= 3, timeout_s=2.0)
    heartbeats = correlator.progress[1:]
    assert all(n == 0 and source == "exchange-OKX" for n, source, _, _ in heartbeats)
    marks = [int(mark or 0) for _, _, mark, _ in correlator.progress]
    assert marks == sorted(marks) and len(set(marks)) == len(marks)
    await reporter.close()
    count, source, mark, closed = correlator.progress[-1]
    assert (0, "exchange-OKX", "1") == (count, source, closed)
    assert int(mark or 0) > marks[-1]


async def test_without_a_source_no_batch_claims_progress(
    correlator: FakeCorrelator, make_reporter: Callable[..., HttpAuditReporter]
) -> None:
    reporter = make_reporter(heartbeat_s=0.001)
    reporter.emit(event(1))
    assert await reporter.flush(2.0)
    await reporter.close()

    assert [(1, None, None, None)] == correlator.progress
