"""The audit correlator's reasoning: events in; outages, observed faults and orders out."""

from test_coordinator.ports.audit import (
    ACKNOWLEDGED_AND_FAILED,
    ACKNOWLEDGED_NOT_RECEIVED,
    RECEIVED_NOT_SENT,
    AuditEvent,
    SenderOrders,
    fault_injected,
    fault_undone,
)
from test_coordinator.sample.correlation import correlate, outages_from

T0 = 1_700_000_000_000
ENGINE = "trading-system-engine"


def ev(
    kind: str, at: int, source: str = ENGINE, cid: str | None = None, **data: object
) -> AuditEvent:
    return AuditEvent(kind, T0 + at, cid, source, data)


def lost(at: int, dependency: str = "exchange", source: str = ENGINE) -> AuditEvent:
    return ev("dependency.lost", at, source, dependency=dependency)


def regained(at: int, dependency: str = "exchange", source: str = ENGINE) -> AuditEvent:
    return ev("dependency.regained", at, source, dependency=dependency)


def injected(
    at: int, target: str = "exchange", fault_id: str = "f1", affects: list[str] | None = None
) -> AuditEvent:
    return fault_injected(
        run_id="run-1",
        fault_id=fault_id,
        target=target,
        fault="restart",
        at_ms=T0 + at,
        affects=affects,
    )


def undone(at: int, target: str = "exchange", fault_id: str = "f1") -> AuditEvent:
    return fault_undone(run_id="run-1", fault_id=fault_id, target=target, at_ms=T0 + at)


class TestOutages:
    def test_lost_then_regained_is_one_outage_with_its_duration(self) -> None:
        [outage] = outages_from([lost(100), regained(850)])

        assert (ENGINE, "exchange", T0 + 100, T0 + 850) == (
            outage.service,
            outage.dependency,
            outage.started_at_ms,
            outage.ended_at_ms,
        )
        assert 750 == outage.duration_ms

    def test_repeated_lost_events_do_not_move_the_start(self) -> None:
        [outage] = outages_from([lost(100), lost(300), regained(500)])

        assert T0 + 100 == outage.started_at_ms

    def test_an_outage_not_regained_is_ongoing(self) -> None:
        [outage] = outages_from([lost(100)])

        assert outage.ongoing
        assert outage.duration_ms is None

    def test_a_regain_without_a_loss_is_ignored(self) -> None:
        assert [] == outages_from([regained(100)])

    def test_a_restart_of_the_service_ends_its_open_outages(self) -> None:
        """The process that saw the outage is gone; the new one reports afresh."""
        [first, second] = outages_from(
            [lost(100), ev("service.started", 400), lost(450), regained(600)]
        )

        assert (T0 + 100, T0 + 400) == (first.started_at_ms, first.ended_at_ms)
        assert (T0 + 450, T0 + 600) == (second.started_at_ms, second.ended_at_ms)

    def test_dependencies_and_services_are_kept_apart(self) -> None:
        outages = outages_from(
            [lost(100), lost(150, "prices"), regained(200), lost(250, source="risk")]
        )

        assert [
            (ENGINE, "exchange", 100),
            (ENGINE, "prices", 150),
            ("risk", "exchange", 250),
        ] == [(o.service, o.dependency, o.started_at_ms - T0) for o in outages]
        assert [100, None, None] == [o.duration_ms for o in outages]

    def test_the_window_keeps_outages_that_overlap_it(self) -> None:
        events = [lost(0), regained(100), lost(200), regained(400), lost(900)]

        window = correlate(events, from_ms=T0 + 300, to_ms=T0 + 1000)

        assert [T0 + 200, T0 + 900] == [o.started_at_ms for o in window.outages]


class TestFaults:
    def test_a_fault_is_observed_by_an_outage_that_began_while_it_was_in_force(self) -> None:
        events = [injected(1000), lost(1040), undone(1500), regained(1800)]

        [fault] = correlate(events, correlation_id="run-1", to_ms=T0 + 5000).faults

        assert ("f1", "exchange", "restart") == (fault.fault_id, fault.target, fault.fault)
        assert (T0 + 1000, T0 + 1500) == (fault.injected_at_ms, fault.undone_at_ms)
        [seen] = fault.observations
        assert (ENGINE, True, 40) == (seen.service, seen.observed, seen.delay_ms)
        assert seen.outage is not None and 760 == seen.outage.duration_ms
        assert fault.observed_by_all

    def test_an_outage_from_before_the_fault_does_not_count(self) -> None:
        events = [lost(500), regained(700), injected(1000), undone(1500)]

        [fault] = correlate(events, to_ms=T0 + 5000, slack_ms=1000).faults

        assert (ENGINE,) == fault.unobserved_by

    def test_an_outage_long_after_the_undo_does_not_count(self) -> None:
        events = [injected(1000), undone(1500), lost(4000), regained(4100)]

        [fault] = correlate(events, to_ms=T0 + 5000, slack_ms=1000).faults

        assert not fault.observed_by_all

    def test_the_slack_after_the_undo_counts(self) -> None:
        """A paused exchange is noticed a timeout after the pause: still observed."""
        events = [injected(1000), undone(1100), lost(1400), regained(1500)]

        [fault] = correlate(events, to_ms=T0 + 5000, slack_ms=500).faults

        assert fault.observed_by_all

    def test_affects_names_the_services_that_must_observe_it(self) -> None:
        """Listed services are checked whatever dependency they lost; silent ones fail."""
        events = [
            injected(1000, target="exchange-OKX", affects=[ENGINE, "risk-monitor"]),
            lost(1050, dependency="venue"),
            regained(1300, dependency="venue"),
        ]

        [fault] = correlate(events, to_ms=T0 + 5000).faults

        assert [(ENGINE, True), ("risk-monitor", False)] == [
            (o.service, o.observed) for o in fault.observations
        ]
        assert ("risk-monitor",) == fault.unobserved_by

    def test_without_affects_the_dependents_of_the_target_are_checked(self) -> None:
        """Services that ever reported a dependency named like the target must observe it."""
        events = [
            lost(10, source="risk"),
            regained(20, source="risk"),
            injected(1000),
            lost(1050),
            regained(1300),
        ]

        [fault] = correlate(events, to_ms=T0 + 5000).faults

        assert {ENGINE: True, "risk": False} == {o.service: o.observed for o in fault.observations}

    def test_faults_pair_with_their_own_undo(self) -> None:
        events = [
            injected(1000, fault_id="a"),
            injected(2000, fault_id="b", target="engine"),
            undone(2500, fault_id="b", target="engine"),
            undone(3000, fault_id="a"),
        ]

        faults = correlate(events, to_ms=T0 + 5000).faults

        assert [("a", T0 + 3000), ("b", T0 + 2500)] == [
            (f.fault_id, f.undone_at_ms) for f in faults
        ]

    def test_chaos_events_are_those_of_the_correlation_id(self) -> None:
        other_run = fault_injected(
            run_id="run-2", fault_id="x", target="exchange", fault="pause", at_ms=T0 + 1200
        )
        events = [injected(1000), other_run, undone(1500)]

        correlation = correlate(events, correlation_id="run-1", to_ms=T0 + 5000)

        assert ["fault.injected", "fault.undone"] == [e.kind for e in correlation.chaos_events]
        assert ["f1"] == [f.fault_id for f in correlation.faults]
        assert "exchange" == correlation.chaos_events[0].target

    def test_the_window_opens_at_the_first_event_of_the_correlation_id(self) -> None:
        events = [lost(10), regained(20), injected(1000), undone(1500)]

        correlation = correlate(events, correlation_id="run-1", to_ms=T0 + 5000)

        assert T0 + 1000 == correlation.from_ms
        assert () == correlation.outages
        assert 2 == correlation.event_count


class TestOrders:
    """Orders sent in the window, counted at its end (the cut-off), and their fate since."""

    def test_each_order_is_in_one_state_at_the_cut_off(self) -> None:
        events = [
            ev("order.sent", 100, order_id="a"),
            ev("order.received", 105, "exchange-OKX", order_id="a"),
            ev("order.acknowledged", 110, order_id="a"),
            ev("order.sent", 200, order_id="b"),
            ev("order.failed", 500, order_id="b"),
            ev("order.sent", 300, order_id="c"),  # never heard of again: unanswered
            ev("order.sent", 9500, order_id="d"),  # just sent: in flight, no word since
            ev("order.sent", 9000, order_id="e"),  # in flight at the cut-off...
            ev("order.acknowledged", 10_300, order_id="e"),  # ... acknowledged after it
            ev("order.sent", 10_200, order_id="f"),  # after the cut-off: not counted
        ]

        orders = correlate(events, from_ms=T0, to_ms=T0 + 10_000, in_flight_ms=2000).orders

        assert T0 + 10_000 == orders.cut_off_ms
        assert (5, 1, 1, 2, 1) == (
            orders.sent, orders.acknowledged, orders.failed, orders.in_flight, orders.unanswered
        )  # fmt: skip
        assert orders.sent == (
            orders.acknowledged + orders.failed + orders.in_flight + orders.unanswered
        )
        assert (1, 0, 1, ("d",)) == (
            orders.acknowledged_after, orders.failed_after, orders.pending, orders.pending_order_ids
        )  # fmt: skip
        assert (2, ("b", "c")) == (orders.lost, orders.lost_order_ids)
        assert (1, 0) == (orders.received, orders.received_unacknowledged)
        assert () == orders.differences

    def test_an_order_the_exchange_received_is_not_lost(self) -> None:
        """A killed engine takes its unsent acknowledgements along; the exchange's word counts."""
        events = [
            ev("order.sent", 100, order_id="a"),
            ev("order.received", 102, "exchange-OKX", order_id="a"),
            ev("order.sent", 200, order_id="b"),
            ev("order.failed", 500, order_id="b"),
            ev("order.received", 510, "exchange-OKX", order_id="b"),
        ]

        orders = correlate(events, from_ms=T0, to_ms=T0 + 10_000, in_flight_ms=0).orders

        assert (2, 0, 2, 2, 1, 1, 0) == (
            orders.sent, orders.acknowledged, orders.received, orders.received_unacknowledged,
            orders.failed, orders.unanswered, orders.lost,
        )  # fmt: skip

    def test_received_counts_what_the_exchange_reported_by_the_cut_off(self) -> None:
        events = [
            ev("order.sent", 100, order_id="a"),
            ev("order.received", 102, "exchange-OKX", order_id="a"),
            ev("order.acknowledged", 104, order_id="a"),
            ev("order.sent", 990, order_id="b"),
            ev("order.received", 999, "exchange-OKX", order_id="b"),
            ev("order.acknowledged", 1003, order_id="b"),
            ev("order.sent", 995, order_id="c"),
            ev("order.received", 1001, "exchange-OKX", order_id="c"),
        ]

        orders = correlate(events, from_ms=T0, to_ms=T0 + 1000, in_flight_ms=500).orders

        assert (3, 1, 2, 2, 1) == (
            orders.sent, orders.acknowledged, orders.in_flight, orders.received,
            orders.received_unacknowledged,
        )  # fmt: skip
        assert (1, 0, 0) == (orders.acknowledged_after, orders.pending, orders.lost)

    def test_an_acknowledgement_after_the_cut_off_tells_the_fate_not_the_count(self) -> None:
        """At the cut-off the order had no outcome; what became of it since is told apart."""
        events = [ev("order.sent", 100, order_id="a"), ev("order.acknowledged", 3000, order_id="a")]

        orders = correlate(events, from_ms=T0, to_ms=T0 + 1000, in_flight_ms=0).orders

        assert (1, 0, 1, 1, 0) == (
            orders.sent, orders.acknowledged, orders.unanswered, orders.acknowledged_after,
            orders.lost,
        )  # fmt: skip

    def test_orders_sent_outside_the_window_are_not_counted(self) -> None:
        events = [ev("order.sent", 100, order_id="a"), ev("order.sent", 2000, order_id="b")]

        orders = correlate(events, from_ms=T0 + 1000, to_ms=T0 + 3000, in_flight_ms=0).orders

        assert (1, 1, ("b",)) == (orders.sent, orders.lost, orders.lost_order_ids)

    def test_ids_may_come_in_batches_and_repeat(self) -> None:
        events = [
            ev("order.sent", 100, order_ids=["a", "b", "c"]),
            ev("order.sent", 150, order_id="a"),
            ev("order.acknowledged", 200, order_ids=["a", "b"]),
        ]

        orders = correlate(events, from_ms=T0, to_ms=T0 + 10_000, in_flight_ms=0).orders

        assert (3, 2, 1) == (orders.sent, orders.acknowledged, orders.lost)

    def test_orders_that_contradict_each_other_are_named(self) -> None:
        events = [
            ev("order.sent", 100, order_id="a"),
            ev("order.acknowledged", 110, order_id="a"),  # the exchange never said
            ev("order.sent", 200, order_id="b"),
            ev("order.received", 201, "exchange-OKX", order_id="b"),
            ev("order.acknowledged", 210, order_id="b"),
            ev("order.failed", 220, order_id="b"),  # both
            ev("order.received", 300, "exchange-OKX", order_id="x"),  # nobody sent it
            ev("order.received", 20_000, "exchange-OKX", order_id="y"),  # after the window
        ]

        orders = correlate(events, from_ms=T0, to_ms=T0 + 10_000, in_flight_ms=0).orders

        assert [
            (ACKNOWLEDGED_NOT_RECEIVED, 1, ("a",)),
            (ACKNOWLEDGED_AND_FAILED, 1, ("b",)),
            (RECEIVED_NOT_SENT, 1, ("x",)),
        ] == [(d.kind, d.count, d.order_ids) for d in orders.differences]
        assert (2, 2, 0, 1) == (orders.sent, orders.acknowledged, orders.failed, orders.received)

    def test_each_sender_counts_from_its_latest_start(self) -> None:
        """A restarted sender's counters start from zero: its share in the trail does too."""
        events = [
            ev("service.started", 0),
            ev("order.sent", 100, order_id="a"),
            ev("order.acknowledged", 110, order_id="a"),
            ev("order.sent", 200, order_id="b"),  # died with the first process
            ev("service.started", 1000),
            ev("order.sent", 1100, order_id="c"),
            ev("order.acknowledged", 1110, order_id="c"),
            ev("order.sent", 1200, order_id="d"),
            ev("order.failed", 1300, order_id="d"),
            ev("order.sent", 1400, "risk-engine", order_id="r"),
            ev("service.started", 5000),  # after the cut-off: not this window's process
        ]

        orders = correlate(events, from_ms=T0, to_ms=T0 + 2000, in_flight_ms=0).orders

        assert [
            SenderOrders("risk-engine", None, 1, 0, 0),
            SenderOrders(ENGINE, T0 + 1000, 2, 1, 1),
        ] == list(orders.senders)
        assert 5 == orders.sent
