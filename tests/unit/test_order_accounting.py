"""Order accounting at the run's cut-off: the identities, the counters, and the cut-off itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from test_coordinator.engine.order_accounting import (
    CounterReading,
    OrderCutOff,
    SenderCounters,
    accounting_problems,
    accounting_settled,
    counter_problems,
    describe_accounting,
    take_cut_off,
)
from test_coordinator.ports.audit import (
    ACKNOWLEDGED_AND_FAILED,
    ACKNOWLEDGED_NOT_RECEIVED,
    RECEIVED_NOT_SENT,
    OrderAccounting,
    OrderDifference,
    SenderOrders,
)

T0 = 1_700_000_000_000
ENGINE = "trading-system-engine"

RECONCILED = OrderAccounting(
    cut_off_ms=T0 + 9_000,
    sent=148,
    acknowledged=146,
    failed=0,
    in_flight=2,
    received=147,
    received_unacknowledged=1,
    acknowledged_after=2,
    senders=(SenderOrders(ENGINE, T0 + 500, 148, 146, 0),),
)


def counters(
    sent: float | None, acknowledged: float | None, failed: float | None = 0.0
) -> SenderCounters:
    return SenderCounters(
        service=ENGINE,
        source=ENGINE,
        sent=CounterReading("orders_sent_total", sent),
        acknowledged=CounterReading("orders_acknowledged_total", acknowledged),
        failed=CounterReading("orders_failed_total", failed),
    )


class TestIdentities:
    def test_a_reconciled_accounting_has_no_problem(self) -> None:
        assert [] == accounting_problems(RECONCILED)

    def test_the_line_shows_every_number_of_the_identities(self) -> None:
        line = describe_accounting(RECONCILED, run_started_ms=T0)

        assert (
            "at the cut-off (run +9.00 s): 148 sent = 146 acknowledged + 0 failed + 2 in flight; "
            "147 received by the exchange (146 acknowledged, 1 not); since, of the 2 without an "
            "outcome at it: 2 acknowledged, 0 given up"
        ) == line

    def test_orders_acknowledged_that_the_exchange_never_received_are_named(self) -> None:
        difference = OrderDifference(ACKNOWLEDGED_NOT_RECEIVED, 7, ("e-1", "e-2", "e-3"))
        orders = OrderAccounting(sent=10, acknowledged=10, received=3, differences=(difference,))

        problems = accounting_problems(orders)

        assert [
            "7 orders acknowledged but never reported received by the exchange: "
            "e-1, e-2, e-3 (first 3)"
        ] == problems

    def test_an_order_both_acknowledged_and_given_up_is_named(self) -> None:
        both = OrderDifference(ACKNOWLEDGED_AND_FAILED, 1, ("e-9",))
        orders = OrderAccounting(sent=2, acknowledged=2, received=2, differences=(both,))

        assert ["1 order both acknowledged and given up by the sender: e-9"] == (
            accounting_problems(orders)
        )

    def test_counts_that_do_not_add_up_say_so(self) -> None:
        """A correlator whose states overlap or leave orders out: the arithmetic shows it."""
        orders = OrderAccounting(sent=10, acknowledged=8, failed=1, received=9)

        problems = accounting_problems(orders)

        assert 2 == len(problems)
        assert (
            "10 sent, but 8 acknowledged + 1 failed + 0 in flight + 0 unanswered make 9"
            == (problems[0])
        )
        assert "9 received by the exchange, but 8 acknowledged and received" in problems[1]

    def test_received_but_never_sent_is_not_an_identity_of_the_accounting(self) -> None:
        """Those orders are outside the orders sent: the counters' comparison reports them."""
        unreported = OrderDifference(RECEIVED_NOT_SENT, 2, ("x-1", "x-2"))
        orders = OrderAccounting(sent=1, acknowledged=1, received=1, differences=(unreported,))

        assert [] == accounting_problems(orders)


class TestCounters:
    def test_counters_equal_to_the_senders_share_of_the_trail(self) -> None:
        assert [] == counter_problems(RECONCILED, counters(148, 146))

    def test_a_counter_ahead_of_the_trail_means_lost_order_events(self) -> None:
        unreported = OrderDifference(RECEIVED_NOT_SENT, 2, ("e-149", "e-150"))
        orders = OrderAccounting(
            sent=148,
            acknowledged=148,
            received=148,
            senders=(SenderOrders(ENGINE, None, 148, 148, 0),),
            differences=(unreported,),
        )

        problems = counter_problems(orders, counters(150, 148))

        assert [
            "orders_sent_total is 150 at the cut-off, but the audit trail holds 148 orders sent "
            "by trading-system-engine: 2 of its order events are missing from the trail",
            "2 orders received by the exchange but never reported sent: e-149, e-150",
        ] == problems

    def test_a_counter_behind_the_trail_is_a_difference_too(self) -> None:
        """The report's "96 acknowledged" against the trail's 95 is what this catches."""
        problems = counter_problems(RECONCILED, counters(148, 145))

        assert [
            "orders_acknowledged_total is 145 at the cut-off, but the audit trail holds 146 "
            "orders acknowledged by trading-system-engine: the trail holds 1 more than it counted"
        ] == problems

    def test_orders_no_sender_reported_alone_do_not_make_the_counters_differ(self) -> None:
        """A killed sender's last events are gone; the counters of the new process still agree."""
        unreported = OrderDifference(RECEIVED_NOT_SENT, 3, ("old-1", "old-2", "old-3"))
        orders = OrderAccounting(
            sent=148, acknowledged=146, in_flight=2, received=146,
            senders=RECONCILED.senders, differences=(unreported,),
        )  # fmt: skip

        assert [] == counter_problems(orders, counters(148, 146))

    def test_counters_not_exposed_or_not_asked_are_not_compared(self) -> None:
        only_sent = SenderCounters(ENGINE, ENGINE, CounterReading("orders_sent_total", 148.0))

        assert [] == counter_problems(RECONCILED, only_sent)
        assert [] == counter_problems(RECONCILED, counters(148, None, None))

    def test_a_sender_the_trail_never_heard_of_holds_nothing(self) -> None:
        [problem] = counter_problems(OrderAccounting(), counters(3, 0))

        assert "holds 0 orders sent by trading-system-engine: 3 of its order events" in problem


class TestSettled:
    def test_reconciled_and_agreeing_with_the_counters_is_settled(self) -> None:
        cut_off = OrderCutOff(T0, (counters(148, 146),))

        assert accounting_settled(RECONCILED, cut_off)

    @pytest.mark.parametrize(
        "orders",
        [
            OrderAccounting(sent=148, acknowledged=146, in_flight=2, received=146, pending=2),
            OrderAccounting(sent=148, acknowledged=148, received=147),
        ],
        ids=["orders in flight without word", "the exchange's events lag"],
    )
    def test_events_still_to_come_leave_it_unsettled(self, orders: OrderAccounting) -> None:
        assert not accounting_settled(orders, OrderCutOff(T0))

    def test_a_trail_behind_the_counters_is_unsettled_unless_they_moved(self) -> None:
        behind = OrderCutOff(T0, (counters(150, 148),))

        assert not accounting_settled(RECONCILED, behind)
        assert accounting_settled(RECONCILED, OrderCutOff(T0, behind.counters, still=False))


class ScriptedCounters:
    """Counter reads that return the next of ``values`` (sent, acknowledged) each time."""

    def __init__(self, values: list[tuple[float, float]]) -> None:
        self._values: Iterator[tuple[float, float]] = iter(values)
        self.reads = 0

    async def read(self) -> tuple[SenderCounters, ...]:
        self.reads += 1
        sent, acknowledged = next(self._values)
        return (counters(sent, acknowledged),)


class TickingClock:
    """Wall-clock ms that move only when the cut-off waits for the next one."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    async def next_ms(self, after_ms: int) -> None:
        self.now = max(self.now, after_ms + 1)


class TestCutOff:
    async def test_the_cut_off_is_where_two_reads_agree(self) -> None:
        """Counters that moved between reads are read again, until a pair agrees."""
        reads = ScriptedCounters([(10, 9), (11, 10), (12, 11), (12, 11)])
        clock = TickingClock()

        cut_off = await take_cut_off(reads.read, clock, clock.next_ms)

        assert (T0 + 2, True, 3) == (cut_off.at_ms, cut_off.still, cut_off.reads)
        assert (12.0, 11.0) == (
            cut_off.counters[0].sent.value,
            cut_off.counters[0].acknowledged.value if cut_off.counters[0].acknowledged else None,
        )
        assert 4 == reads.reads

    async def test_counters_that_never_stand_still_are_taken_but_marked(self) -> None:
        reads = ScriptedCounters([(n, n) for n in range(10)])
        clock = TickingClock()

        cut_off = await take_cut_off(reads.read, clock, clock.next_ms, attempts=3)

        assert (False, 3, 3.0) == (cut_off.still, cut_off.reads, cut_off.counters[0].sent.value)

    async def test_without_counters_to_read_the_cut_off_is_now(self) -> None:
        async def nothing() -> tuple[SenderCounters, ...]:
            return ()

        clock = TickingClock()

        assert OrderCutOff(T0) == await take_cut_off(nothing, clock, clock.next_ms)

    @pytest.mark.parametrize("attempts", [1, 5])
    async def test_a_sender_at_rest_is_read_twice_only(self, attempts: int) -> None:
        reads = ScriptedCounters([(148, 148)] * 2)
        clock = TickingClock()

        cut_off = await take_cut_off(reads.read, clock, clock.next_ms, attempts=attempts)

        assert (True, 1, 2) == (cut_off.still, cut_off.reads, reads.reads)
