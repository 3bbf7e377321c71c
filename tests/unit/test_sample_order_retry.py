"""The engine's orders: retried with backoff while the exchange is away, given up when retry
is off or the exchange refuses, and the engine's view of the exchange follows the attempts."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from support.polling import eventually
from test_coordinator.adapters.audit import ExponentialBackoff, RecordingAuditSink
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.sample.observations import Observations
from test_coordinator.sample.order_flow import ExchangeLink, Order, OrderFlow, OrderOutcome
from test_coordinator.sample.order_retry import AttemptFailure, OrderRetryPolicy

NO_JITTER = ExponentialBackoff(base_s=0.05, factor=2.0, max_s=1.0, jitter=0.0)
FAST = ExponentialBackoff(base_s=0.001, factor=2.0, max_s=0.002, jitter=0.0)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class TestPolicy:
    def test_an_unreachable_exchange_is_retried_with_growing_pauses(self) -> None:
        policy = OrderRetryPolicy(retry=True, backoff=NO_JITTER)

        delays = [policy.next_delay(AttemptFailure.UNREACHABLE, n) for n in range(1, 7)]

        assert [0.05, 0.1, 0.2, 0.4, 0.8, 1.0] == pytest.approx(delays)

    def test_with_retry_off_a_failed_order_is_given_up(self) -> None:
        policy = OrderRetryPolicy(retry=False, backoff=NO_JITTER)

        assert policy.next_delay(AttemptFailure.UNREACHABLE, 1) is None

    def test_a_refusal_is_never_retried(self) -> None:
        """A 4xx is an answer: sending the same order again changes nothing."""
        policy = OrderRetryPolicy(retry=True, backoff=NO_JITTER)

        assert policy.next_delay(AttemptFailure.REJECTED, 1) is None

    def test_max_attempts_bounds_the_retries(self) -> None:
        policy = OrderRetryPolicy(retry=True, backoff=NO_JITTER, max_attempts=3)

        assert policy.next_delay(AttemptFailure.UNREACHABLE, 2) is not None
        assert policy.next_delay(AttemptFailure.UNREACHABLE, 3) is None


class FakeExchange:
    """Answers per a script of outcomes, then 201 for ever."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.posts: list[str] = []
        self.hold = asyncio.Event()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(request.read().decode())
        step = self.script.pop(0) if self.script else "fill"
        if step == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        if step == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if step == "hang":
            await self.hold.wait()
        if step.isdigit():
            return httpx.Response(int(step), json={"detail": step})
        return httpx.Response(201, json={"status": "filled"})


class Engine:
    def __init__(self, exchange: FakeExchange, *, retry: bool, rate_per_s: float = 0.0) -> None:
        self.audit = RecordingAuditSink()
        observations = Observations(self.audit, "engine-1", clock=itertools.count(1).__next__)
        self.link = ExchangeLink("exchange", observations)
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(exchange.handle))
        ids = itertools.count(1)
        self.flow = OrderFlow(
            client=self.client,
            orders_url="http://exchange.test/api/v1/orders",
            link=self.link,
            observations=observations,
            metrics=PrometheusMetrics("", runtime_collectors=False),
            policy=OrderRetryPolicy(retry=retry, backoff=FAST),
            rate_per_s=rate_per_s,
            next_order_id=lambda: f"o-{next(ids)}",
        )

    def events(self) -> list[tuple[str, dict[str, object]]]:
        return [(e.kind, dict(e.data)) for e in self.audit.events]


@pytest.fixture
async def engines() -> AsyncIterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def make(exchange: FakeExchange, **options: object) -> Engine:
        engine = Engine(exchange, **options)  # type: ignore[arg-type]
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.flow.stop(0.01)
        await engine.client.aclose()


async def test_an_order_is_retried_until_the_exchange_answers(
    engines: Callable[..., Engine],
) -> None:
    """Two refused attempts, then a fill: acknowledged, and the outage is reported both ways."""
    exchange = FakeExchange("refused", "timeout")
    engine = engines(exchange, retry=True)

    outcome = await engine.flow.place(Order("o-1", "BTC-USD", "buy", 1.0))

    assert OrderOutcome.ACKNOWLEDGED == outcome
    assert 3 == len(exchange.posts)
    refused = "ConnectError: connection refused"
    assert [
        ("order.sent", {"order_id": "o-1"}),
        ("dependency.lost", {"dependency": "exchange", "problem": refused}),
        ("dependency.regained", {"dependency": "exchange"}),
        ("order.acknowledged", {"order_id": "o-1", "attempts": 3}),
    ] == engine.events()
    stats = engine.flow.stats
    assert (1, 1, 0, 2) == (stats.sent, stats.acknowledged, stats.failed, stats.retries)


async def test_with_retry_off_an_unanswered_order_fails_and_is_dropped(
    engines: Callable[..., Engine],
) -> None:
    exchange = FakeExchange("refused")
    engine = engines(exchange, retry=False)

    outcome = await engine.flow.place(Order("o-1", "BTC-USD", "buy", 1.0))

    assert OrderOutcome.FAILED == outcome
    assert 1 == len(exchange.posts)
    assert ("order.failed", "o-1", 1) == (
        engine.events()[-1][0],
        engine.events()[-1][1]["order_id"],
        engine.events()[-1][1]["attempts"],
    )
    assert (0, 1) == (engine.flow.stats.acknowledged, engine.flow.stats.failed)


async def test_the_engine_is_degraded_while_the_exchange_cannot_be_reached(
    engines: Callable[..., Engine],
) -> None:
    """Health follows the attempts: unhealthy after one unanswered, healthy after an answer."""
    exchange = FakeExchange("refused")
    engine = engines(exchange, retry=False)
    await engine.flow.place(Order("o-1", "BTC-USD", "buy", 1.0))

    [down] = engine.link.dependency_health()
    assert ("exchange", False) == (down.name, down.healthy)
    assert "ConnectError" in down.detail

    await engine.flow.place(Order("o-2", "BTC-USD", "buy", 1.0))
    [up] = engine.link.dependency_health()
    assert (True, "") == (up.healthy, up.detail)


async def test_a_refusal_fails_the_order_but_the_exchange_is_reachable(
    engines: Callable[..., Engine],
) -> None:
    exchange = FakeExchange("422")
    engine = engines(exchange, retry=True)

    outcome = await engine.flow.place(Order("o-1", "BTC-USD", "buy", 1.0))

    assert OrderOutcome.FAILED == outcome
    assert 1 == len(exchange.posts)
    assert engine.link.reachable
    assert "dependency.lost" not in [kind for kind, _ in engine.events()]


async def test_a_server_error_counts_as_the_exchange_being_away(
    engines: Callable[..., Engine],
) -> None:
    exchange = FakeExchange("503")
    engine = engines(exchange, retry=True)

    outcome = await engine.flow.place(Order("o-1", "BTC-USD", "buy", 1.0))

    assert OrderOutcome.ACKNOWLEDGED == outcome
    assert ["order.sent", "dependency.lost", "dependency.regained", "order.acknowledged"] == [
        kind for kind, _ in engine.events()
    ]


def test_an_attempt_older_than_the_last_change_does_not_flip_the_link_back() -> None:
    """An answer to an attempt that began before the outage was noticed is stale news."""
    sink = RecordingAuditSink()
    now = [10.0]
    link = ExchangeLink("exchange", Observations(sink, "engine-1"), clock=lambda: now[0])

    link.record(False, attempt_started=9.0, problem="refused")
    link.record(True, attempt_started=8.0)

    assert not link.reachable
    link.record(True, attempt_started=10.5)
    assert link.reachable
    assert ["dependency.lost", "dependency.regained"] == sink.kinds()


async def test_stopping_gives_up_the_orders_still_waiting(
    engines: Callable[..., Engine],
) -> None:
    """Orders the exchange never answers are reported failed when the engine stops."""
    exchange = FakeExchange(*["hang"] * 1000)
    engine = engines(exchange, retry=True, rate_per_s=500.0)
    await engine.flow.start()
    await eventually(lambda: engine.flow.stats.pending >= 2, timeout_s=2.0)

    await engine.flow.stop(grace_s=0.01)

    stats = engine.flow.stats
    assert 0 == stats.pending
    assert stats.sent == stats.failed >= 2
    failed = [data for kind, data in engine.events() if kind == "order.failed"]
    assert {"engine stopping"} == {d["reason"] for d in failed}


async def test_a_halt_makes_no_new_order_and_lets_the_pending_ones_finish(
    engines: Callable[..., Engine],
) -> None:
    """The cut-off of the books: after the halt and its last answers, every count stands still."""
    exchange = FakeExchange(*["hang"] * 1000)
    engine = engines(exchange, retry=True, rate_per_s=500.0)
    await engine.flow.start()
    await eventually(lambda: engine.flow.stats.pending >= 2, timeout_s=2.0)

    halted = await engine.flow.halt()
    exchange.hold.set()
    await eventually(lambda: engine.flow.stats.pending == 0, timeout_s=2.0)
    await engine.flow.start()  # a halted flow stays halted

    stats = engine.flow.stats
    assert halted.halted and stats.halted
    assert halted.sent <= stats.sent <= halted.sent + halted.pending
    assert (stats.sent, 0) == (stats.acknowledged, stats.failed)
    kinds = [kind for kind, _ in engine.events()]
    assert stats.sent == kinds.count("order.sent") == kinds.count("order.acknowledged")
    assert 0 == engine.flow.stats.pending
