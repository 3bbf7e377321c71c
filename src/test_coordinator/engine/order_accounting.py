"""Order accounting at the run's cut-off: one moment, one set of numbers, and what must add up.

Every audit check of a run asks the correlator about the same window, from the
run's start to its **cut-off**: the moment the first audit check began. The
senders' own counters (``orders_sent_total``...) that an ``orders_reported``
criterion names are read at that moment too, so the trail and the counters
describe the same orders. The counters are read twice around the cut-off and
taken only if both reads agree: a sender stamps an order's event when it counts
it, so no order event falls between the two reads, and the counters equal the
trail up to the cut-off exactly (when the services and the coordinator share a
clock: one host, or synchronised clocks).

The identities (:func:`accounting_problems`), for the orders sent up to the
cut-off, counted at it:

* ``sent = acknowledged + failed + in flight + unanswered``;
* ``received = acknowledged + received but not acknowledged``: every order
  acknowledged was received by the exchange;
* no order is both acknowledged and given up;

and, per sender (:func:`counter_problems`), its counters equal its orders in the
trail since its latest start. Each broken identity names its orders (the first
ones, with their count) when the trail can: see
:class:`~test_coordinator.ports.audit.OrderDifference`. Orders the exchange
received that no sender reported sending are outside the orders sent (a killed
sender takes its last events along): they are told, and named as the likely
missing ones when a sender's counters are ahead of the trail.

Everything here is pure: typed values in, verdict text out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from test_coordinator.ports.audit import (
    ACKNOWLEDGED_AND_FAILED,
    ACKNOWLEDGED_NOT_RECEIVED,
    RECEIVED_NOT_SENT,
    OrderAccounting,
    SenderOrders,
)

CUT_OFF_ATTEMPTS = 25
"""Pairs of counter reads tried before the counters are taken as they are (not still)."""


@dataclass(frozen=True, slots=True)
class CounterReading:
    """One counter of a sender, as read: ``value`` None when it is not exposed or unreadable
    (``problem`` says which)."""

    metric: str
    value: float | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class SenderCounters:
    """One sender's own counters read at the cut-off; ``acknowledged`` / ``failed`` None when
    the check does not compare them. ``source``: the sender as it reports itself."""

    service: str
    source: str
    sent: CounterReading
    acknowledged: CounterReading | None = None
    failed: CounterReading | None = None

    def readings(self) -> tuple[tuple[str, CounterReading], ...]:
        """(what is counted, reading) for each counter read."""
        found = [("sent", self.sent), ("acknowledged", self.acknowledged), ("failed", self.failed)]
        return tuple((what, reading) for what, reading in found if reading is not None)

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "source": self.source,
            **{
                what: {
                    "metric": r.metric,
                    "value": r.value,
                    **({"problem": r.problem} if r.problem else {}),
                }
                for what, r in self.readings()
            },
        }


@dataclass(frozen=True, slots=True)
class OrderCutOff:
    """The run's order cut-off (epoch ms) and the senders' counters read at it.

    ``still``: the counters were the same in two reads around ``at_ms`` (always, when
    none is read); ``reads``: the pairs of reads it took.
    """

    at_ms: int
    counters: tuple[SenderCounters, ...] = ()
    still: bool = True
    reads: int = 0

    def counted_by(self, service: str) -> SenderCounters | None:
        return next((c for c in self.counters if c.service == service), None)

    def as_json(self, run_started_ms: int) -> dict[str, Any]:
        return {
            "at_ms_epoch": self.at_ms,
            "at_run_ms": self.at_ms - run_started_ms,
            "counters_still": self.still,
            "counter_reads": self.reads,
            "counters": [c.as_json() for c in self.counters],
        }


async def take_cut_off(
    read: Callable[[], Awaitable[tuple[SenderCounters, ...]]],
    clock_ms: Callable[[], int],
    next_ms: Callable[[int], Awaitable[None]],
    *,
    attempts: int = CUT_OFF_ATTEMPTS,
) -> OrderCutOff:
    """The cut-off: the moment after a read of the counters that a second read confirms.

    ``read`` reads every sender's counters; ``next_ms(t)`` returns once ``clock_ms()``
    is past ``t`` (or gives up). With the same values in both reads, no counted event
    happened between them: the ones counted were stamped at or before the cut-off,
    the others after it. When no pair agrees within ``attempts``, the last read is
    kept and the cut-off is marked not still.
    """
    first = await read()
    if not first:
        return OrderCutOff(clock_ms())
    for attempt in range(1, attempts + 1):
        at_ms = clock_ms()
        await next_ms(at_ms)
        second = await read()
        if second == first:
            return OrderCutOff(at_ms, first, still=True, reads=attempt)
        first = second
    return OrderCutOff(clock_ms(), first, still=False, reads=attempts)


def accounting_problems(orders: OrderAccounting) -> list[str]:
    """Each identity the accounting at the cut-off breaks, naming the orders that break it."""
    problems = []
    parts = orders.acknowledged + orders.failed + orders.in_flight + orders.unanswered
    if parts != orders.sent:
        problems.append(
            f"{orders.sent} sent, but {orders.acknowledged} acknowledged + {orders.failed} "
            f"failed + {orders.in_flight} in flight + {orders.unanswered} unanswered "
            f"make {parts}"
        )
    not_received = orders.difference(ACKNOWLEDGED_NOT_RECEIVED)
    received_and_acknowledged = orders.acknowledged - (not_received.count if not_received else 0)
    if orders.received != received_and_acknowledged + orders.received_unacknowledged:
        problems.append(
            f"{orders.received} received by the exchange, but {received_and_acknowledged} "
            f"acknowledged and received + {orders.received_unacknowledged} received and not "
            f"acknowledged make {received_and_acknowledged + orders.received_unacknowledged}"
        )
    for kind in (ACKNOWLEDGED_NOT_RECEIVED, ACKNOWLEDGED_AND_FAILED):
        difference = orders.difference(kind)
        if difference is not None:
            problems.append(difference.describe())
    return problems


def counter_problems(orders: OrderAccounting, counted: SenderCounters) -> list[str]:
    """Each of the sender's counters that differs from its orders in the trail at the cut-off;
    with a difference, the orders the exchange has that no sender reported (the likely ones)."""
    trail = orders.sender(counted.source) or SenderOrders(counted.source, None, 0, 0, 0)
    held = {"sent": trail.sent, "acknowledged": trail.acknowledged, "failed": trail.failed}
    problems = []
    for what, reading in counted.readings():
        if reading.value is None or reading.value == held[what]:
            continue
        gap = reading.value - held[what]
        why = (
            f"{gap:g} of its order events are missing from the trail"
            if gap > 0
            else f"the trail holds {-gap:g} more than it counted"
        )
        problems.append(
            f"{reading.metric} is {reading.value:g} at the cut-off, but the audit trail holds "
            f"{held[what]} orders {_past(what)} by {counted.source}: {why}"
        )
    unreported = orders.difference(RECEIVED_NOT_SENT)
    if problems and unreported is not None:
        problems.append(unreported.describe())
    return problems


def accounting_settled(orders: OrderAccounting, cut_off: OrderCutOff) -> bool:
    """Whether the trail's accounting at the cut-off is complete, as far as can be told: the
    identities hold, no order in flight at the cut-off is without word, and every sender's
    counters (when they stood still) equal its share. Events on their way change that."""
    if accounting_problems(orders) or orders.pending:
        return False
    return all(not counter_problems(orders, c) for c in cut_off.counters if cut_off.still)


def describe_accounting(orders: OrderAccounting, run_started_ms: int | None = None) -> str:
    """The numbers at the cut-off, as one line, every identity visible in it."""
    when = "at the cut-off"
    if orders.cut_off_ms is not None and run_started_ms is not None:
        when += f" (run +{(orders.cut_off_ms - run_started_ms) / 1000:.2f} s)"
    old = f" + {orders.unanswered} unanswered" if orders.unanswered else ""
    text = (
        f"{when}: {orders.sent} sent = {orders.acknowledged} acknowledged + {orders.failed} "
        f"failed + {orders.in_flight} in flight{old}; {orders.received} received by "
        f"the exchange ({orders.received - orders.received_unacknowledged} acknowledged, "
        f"{orders.received_unacknowledged} not)"
    )
    open_at_cut_off = orders.in_flight + orders.unanswered
    if open_at_cut_off:
        answered = orders.acknowledged_after + orders.failed_after
        still_unanswered = open_at_cut_off - answered - orders.pending
        text += (
            f"; since, of the {open_at_cut_off} without an outcome at it: "
            f"{orders.acknowledged_after} acknowledged, {orders.failed_after} given up"
        )
        if orders.pending:
            text += f", {orders.pending} still in flight"
        if still_unanswered:
            text += f", {still_unanswered} still unanswered"
    return text


def describe_counters(counted: SenderCounters) -> str:
    """The sender's counters as read at the cut-off."""
    readings = ", ".join(
        f"{r.metric} {'not exposed' if r.value is None else f'{r.value:g}'}"
        for _, r in counted.readings()
    )
    return f"{counted.service} counted at the cut-off: {readings}"


def ids_text(ids: Sequence[str], count: int) -> str:
    shown = ", ".join(ids)
    return f"{shown}, ... ({count} in all)" if count > len(ids) else shown


def _past(what: str) -> str:
    return {"sent": "sent", "acknowledged": "acknowledged", "failed": "given up"}[what]
