"""The engine's order flow: new orders at a steady rate, each sent until the exchange answers.

Every ``1 / rate`` seconds a new order (a unique id) is placed in its own task.
A failed attempt is retried as :class:`OrderRetryPolicy` says; when it says
give up, the order is counted failed and dropped. :class:`ExchangeLink` turns
the attempts into the engine's view of the exchange: lost at the first attempt
that got no answer, regained at the first that did; attempts that began before
the latest change are too old to change it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx

from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.ports.audit import (
    DEPENDENCY_LOST,
    DEPENDENCY_REGAINED,
    ORDER_ACKNOWLEDGED,
    ORDER_FAILED,
    ORDER_SENT,
)
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.ports.metrics import Metrics
from test_coordinator.sample.observations import Observations
from test_coordinator.sample.order_retry import AttemptFailure, OrderRetryPolicy

log = get_logger("test_coordinator.sample.orders")

SIDES = ("buy", "sell")


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    symbol: str
    side: str
    qty: float

    def json(self) -> dict[str, object]:
        return {
            "order_id": self.order_id,
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
        }


class OrderOutcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"


def order_ids(prefix: str) -> Callable[[], str]:
    """Unique ids ``{prefix}-{boot}-{n}``: a random boot tag keeps a restarted engine's apart."""
    boot = secrets.token_hex(3)
    numbers = itertools.count(1)
    return lambda: f"{prefix}-{boot}-{next(numbers)}"


class ExchangeLink:
    """Whether the engine can reach the exchange, as its latest attempts say."""

    def __init__(
        self,
        name: str,
        observations: Observations,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._observations = observations
        self._clock = clock
        self.reachable = True
        self.problem = ""
        self._changed_at = float("-inf")
        self._lost_at = 0.0

    def dependency_health(self) -> list[DependencyHealth]:
        return [DependencyHealth(self.name, self.reachable, self.problem)]

    def record(self, reachable: bool, attempt_started: float, problem: str = "") -> None:
        """The outcome of an attempt that began at ``attempt_started`` (the link's clock)."""
        if reachable == self.reachable or attempt_started < self._changed_at:
            return
        now = self._clock()
        self.reachable, self._changed_at = reachable, now
        if reachable:
            self.problem = ""
            outage_ms = round((now - self._lost_at) * 1000)
            log.info("exchange reachable again", dependency=self.name, outage_ms=outage_ms)
            self._observations.report(DEPENDENCY_REGAINED, dependency=self.name)
        else:
            self.problem, self._lost_at = problem, now
            log.warning("exchange unreachable", dependency=self.name, problem=problem)
            self._observations.report(DEPENDENCY_LOST, dependency=self.name, problem=problem)


@dataclass(frozen=True, slots=True)
class FlowStats:
    """The flow's counts, as its counters and audit events have them. ``pending``: orders
    placed and neither answered nor given up yet. ``halted``: no new order is made."""

    sent: int
    acknowledged: int
    failed: int
    retries: int
    pending: int
    halted: bool = False


class OrderFlow:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        orders_url: str,
        link: ExchangeLink,
        observations: Observations,
        metrics: Metrics,
        policy: OrderRetryPolicy,
        rate_per_s: float,
        next_order_id: Callable[[], str],
        symbol: str = "BTC-USD",
        max_pending: int = 1000,
    ) -> None:
        self._client = client
        self._orders_url = orders_url
        self._link = link
        self._observations = observations
        self._policy = policy
        self._rate_per_s = rate_per_s
        self._next_order_id = next_order_id
        self._symbol = symbol
        self._max_pending = max_pending
        self._sides = itertools.cycle(SIDES)
        self._ticker: asyncio.Task[None] | None = None
        self._orders: set[asyncio.Task[OrderOutcome]] = set()
        self._sent = self._acknowledged = self._failed = self._retries = 0
        self._halted = False
        self._sent_total = metrics.counter("orders_sent", "Orders sent to the exchange")
        self._ack_total = metrics.counter("orders_acknowledged", "Orders the exchange acknowledged")
        self._failed_total = metrics.counter("orders_failed", "Orders given up")
        self._retry_total = metrics.counter("order_retries", "Order attempts after the first")

    @property
    def stats(self) -> FlowStats:
        return FlowStats(
            self._sent,
            self._acknowledged,
            self._failed,
            self._retries,
            len(self._orders),
            self._halted,
        )

    async def start(self) -> None:
        if self._rate_per_s > 0 and self._ticker is None and not self._halted:
            self._ticker = asyncio.create_task(self._generate(), name="order-ticker")

    async def halt(self) -> FlowStats:
        """Make no new order from now on (a cut-off); the pending ones go on until answered
        or given up, so the counts settle. Idempotent; the stats as the halt left them."""
        self._halted = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        return self.stats

    async def stop(self, grace_s: float) -> None:
        """Stop making orders; give pending ones ``grace_s`` to finish, then give them up."""
        await self.halt()
        pending = set(self._orders)
        if pending:
            _, still_pending = await asyncio.wait(pending, timeout=grace_s)
            for task in still_pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def new_order(self) -> Order:
        return Order(self._next_order_id(), self._symbol, next(self._sides), 1.0)

    async def place(self, order: Order) -> OrderOutcome:
        """Send ``order`` until the exchange acknowledges it or the policy gives it up."""
        self._sent += 1
        self._sent_total.inc()
        self._observations.report(ORDER_SENT, order_id=order.order_id)
        attempts = 0
        try:
            while True:
                attempts += 1
                failure, problem = await self.attempt(order)
                if failure is None:
                    self._acknowledged += 1
                    self._ack_total.inc()
                    self._observations.report(
                        ORDER_ACKNOWLEDGED, order_id=order.order_id, attempts=attempts
                    )
                    return OrderOutcome.ACKNOWLEDGED
                delay = self._policy.next_delay(failure, attempts)
                if delay is None:
                    self._give_up(order, attempts, f"{failure.value}: {problem}")
                    return OrderOutcome.FAILED
                self._retries += 1
                self._retry_total.inc()
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self._give_up(order, attempts, "engine stopping")
            raise

    async def attempt(self, order: Order) -> tuple[AttemptFailure | None, str]:
        """One POST of ``order``: None if acknowledged, else why not (and a description)."""
        started = time.monotonic()
        try:
            response = await self._client.post(self._orders_url, json=order.json())
        except httpx.TimeoutException as exc:
            failure, problem = AttemptFailure.UNREACHABLE, f"timed out ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            failure, problem = AttemptFailure.UNREACHABLE, f"{type(exc).__name__}: {exc}"
        else:
            status = response.status_code
            if 200 <= status < 300:
                self._link.record(True, started)
                return None, ""
            problem = f"HTTP {status}"
            failure = (
                AttemptFailure.UNREACHABLE
                if status >= 500 or status in (408, 429)
                else AttemptFailure.REJECTED
            )
        self._link.record(failure is not AttemptFailure.UNREACHABLE, started, problem)
        return failure, problem

    def _give_up(self, order: Order, attempts: int, reason: str) -> None:
        self._failed += 1
        self._failed_total.inc()
        self._observations.report(
            ORDER_FAILED, order_id=order.order_id, attempts=attempts, reason=reason
        )

    def _order_done(self, task: asyncio.Task[OrderOutcome]) -> None:
        self._orders.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("order task failed", problem=repr(task.exception()))

    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self._rate_per_s
        next_at = loop.time()
        while True:
            if len(self._orders) < self._max_pending:
                task = asyncio.create_task(self.place(self.new_order()))
                self._orders.add(task)
                task.add_done_callback(self._order_done)
            next_at += interval
            delay = next_at - loop.time()
            if delay < -1.0:  # far behind (the process was paused): no burst to catch up
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(max(0.0, delay))
