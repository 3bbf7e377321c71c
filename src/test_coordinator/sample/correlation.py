"""The audit correlator's reasoning, a pure function from stored events to a Correlation.

* Chaos events: ``fault.injected`` / ``fault.undone`` in the window (and with the
  correlation id, when one is asked), from any source.
* Outages: a service's ``dependency.lost`` opens one for that dependency, its
  ``dependency.regained`` ends it; repeated ``lost`` events while open change
  nothing. An outage still open when its service says ``service.started`` again
  ends at that restart (the process that saw it is gone). Outages that overlap
  the window are reported.
* Faults: each ``fault.injected`` paired with the ``fault.undone`` of the same
  ``fault_id``. The services it affects are its ``affects`` list, else every
  service that ever reported a dependency named like its ``target``. A service
  observed the fault if one of its outages (of any dependency when ``affects``
  names it, else of the target) began at or after the injection and no later
  than the undo (or the window's end) plus ``slack_ms``.
* Orders: those with ``order.sent`` in the window, counted at the window's end
  (the cut-off): each one acknowledged, failed (given up), in flight (no outcome,
  sent less than ``in_flight_ms`` before the cut-off) or unanswered (no outcome,
  sent earlier), by the times of ``order.acknowledged`` / ``order.failed`` from
  the sender; received when the exchange's ``order.received`` is at or before the
  cut-off. Outcomes told after the cut-off say what became of the orders without
  one at it. Lost: never acknowledged, never received by the exchange, and given
  up or unanswered at the cut-off; one in flight with no word since is pending.
  Counting what the exchange received keeps an order whose acknowledgement died
  with a killed engine from passing for lost. Differences: orders acknowledged
  that the exchange never reported receiving, acknowledged and failed both, or
  received by the exchange in the window that no sender reported sending. Each
  sender's share (since its latest ``service.started``) is what its own counters
  must say at the cut-off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from test_coordinator.ports.audit import (
    ACKNOWLEDGED_AND_FAILED,
    ACKNOWLEDGED_NOT_RECEIVED,
    CHAOS_KINDS,
    DEPENDENCY_LOST,
    DEPENDENCY_REGAINED,
    FAULT_INJECTED,
    FAULT_UNDONE,
    ORDER_ACKNOWLEDGED,
    ORDER_FAILED,
    ORDER_RECEIVED,
    ORDER_SENT,
    RECEIVED_NOT_SENT,
    SERVICE_STARTED,
    AuditEvent,
    ChaosEvent,
    Correlation,
    FaultObservation,
    FaultRecord,
    OrderAccounting,
    OrderDifference,
    Outage,
    SenderOrders,
    ServiceStart,
    SourceProgress,
)

DEFAULT_SLACK_MS = 5_000
DEFAULT_IN_FLIGHT_MS = 2_000
LOST_IDS_SHOWN = 50
DIFFERENT_IDS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Window:
    from_ms: int
    to_ms: int

    def holds(self, at_ms: int) -> bool:
        return self.from_ms <= at_ms <= self.to_ms

    def overlaps(self, outage: Outage) -> bool:
        ended = outage.ended_at_ms
        return outage.started_at_ms <= self.to_ms and (ended is None or ended >= self.from_ms)


def correlate(
    events: Iterable[AuditEvent],
    *,
    to_ms: int,
    from_ms: int | None = None,
    correlation_id: str | None = None,
    slack_ms: int = DEFAULT_SLACK_MS,
    in_flight_ms: int = DEFAULT_IN_FLIGHT_MS,
    progress: Mapping[str, SourceProgress] | None = None,
) -> Correlation:
    """What ``events`` say about the window [``from_ms``, ``to_ms``].

    Without ``from_ms`` the window opens at the first event of ``correlation_id``
    (or at the first event of all, when no id is asked). ``progress``: how far each
    source's events are delivered, told for the sources with events in the window.
    """
    ordered = sorted(events, key=lambda e: e.at_ms_epoch)
    window = Window(_window_start(ordered, from_ms, correlation_id), to_ms)
    chaos = [
        e
        for e in ordered
        if e.kind in CHAOS_KINDS
        and window.holds(e.at_ms_epoch)
        and (correlation_id is None or e.correlation_id == correlation_id)
    ]
    all_outages = outages_from(ordered)
    return Correlation(
        correlation_id=correlation_id,
        from_ms=window.from_ms,
        to_ms=window.to_ms,
        event_count=sum(1 for e in ordered if window.holds(e.at_ms_epoch)),
        chaos_events=tuple(_chaos_event(e) for e in chaos),
        faults=tuple(_faults(chaos, ordered, all_outages, window, slack_ms)),
        outages=tuple(o for o in all_outages if window.overlaps(o)),
        service_starts=tuple(
            ServiceStart(e.source, e.at_ms_epoch, dict(e.data))
            for e in ordered
            if e.kind == SERVICE_STARTED and window.holds(e.at_ms_epoch)
        ),
        orders=order_accounting(ordered, window, in_flight_ms),
        sources=tuple(
            (progress or {}).get(source) or SourceProgress(source, None)
            for source in sorted({e.source for e in ordered if window.holds(e.at_ms_epoch)})
        ),
    )


def outages_from(ordered: Sequence[AuditEvent]) -> list[Outage]:
    """Every outage the services reported, in the order they began."""
    open_since: dict[tuple[str, str], int] = {}
    outages: list[Outage] = []
    for event in ordered:
        if event.kind == SERVICE_STARTED:
            for key in [k for k in open_since if k[0] == event.source]:
                outages.append(Outage(*key, open_since.pop(key), event.at_ms_epoch))
            continue
        if event.kind not in (DEPENDENCY_LOST, DEPENDENCY_REGAINED):
            continue
        key = (event.source, str(event.data.get("dependency", "")))
        if event.kind == DEPENDENCY_LOST:
            open_since.setdefault(key, event.at_ms_epoch)
        elif key in open_since:
            outages.append(Outage(*key, open_since.pop(key), event.at_ms_epoch))
    outages.extend(Outage(*key, started, None) for key, started in open_since.items())
    return sorted(outages, key=lambda o: o.started_at_ms)


class OrderState(StrEnum):
    """What had become of an order at the cut-off."""

    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    IN_FLIGHT = "in flight"
    UNANSWERED = "unanswered"


@dataclass(slots=True)
class _Order:
    """One order id's events: when sent (and by whom), and when each outcome was first told."""

    sent_at: int
    source: str
    acknowledged_at: int | None = None
    failed_at: int | None = None
    received_at: int | None = None


def order_accounting(
    ordered: Sequence[AuditEvent], window: Window, in_flight_ms: int
) -> OrderAccounting:
    """The orders sent in ``window``, counted at its end (the cut-off), and their fate since."""
    cut_off = window.to_ms
    orders: dict[str, _Order] = {}  # every order sent up to the cut-off, in or before the window
    outcomes: dict[str, dict[str, int]] = {
        ORDER_ACKNOWLEDGED: {}, ORDER_FAILED: {}, ORDER_RECEIVED: {}
    }  # fmt: skip
    ever_sent: set[str] = set()
    started: dict[str, int] = {}  # source -> its latest service.started up to the cut-off
    for event in ordered:
        at = event.at_ms_epoch
        if event.kind == ORDER_SENT:
            for order_id in _order_ids(event.data):
                ever_sent.add(order_id)
                if at <= cut_off and order_id not in orders:
                    orders[order_id] = _Order(at, event.source)
        elif event.kind in outcomes:
            for order_id in _order_ids(event.data):
                outcomes[event.kind].setdefault(order_id, at)
        elif event.kind == SERVICE_STARTED and at <= cut_off:
            started[event.source] = at
    for order_id, order in orders.items():
        order.acknowledged_at = outcomes[ORDER_ACKNOWLEDGED].get(order_id)
        order.failed_at = outcomes[ORDER_FAILED].get(order_id)
        order.received_at = outcomes[ORDER_RECEIVED].get(order_id)
    in_window = sorted(
        ((i, o) for i, o in orders.items() if window.holds(o.sent_at)),
        key=lambda item: item[1].sent_at,
    )
    by_state: dict[OrderState, list[str]] = {state: [] for state in OrderState}
    received = received_unacknowledged = 0
    acknowledged_after = failed_after = 0
    pending: list[str] = []
    lost: list[str] = []
    for order_id, order in in_window:
        state = _state_at(order, cut_off, in_flight_ms)
        by_state[state].append(order_id)
        if _by(order.received_at, cut_off):
            received += 1
            received_unacknowledged += state != OrderState.ACKNOWLEDGED
        answered = order.acknowledged_at is not None
        if state in (OrderState.IN_FLIGHT, OrderState.UNANSWERED):
            if answered:
                acknowledged_after += 1
            elif order.failed_at is not None:
                failed_after += 1
        if answered or order.received_at is not None:
            continue
        if order.failed_at is not None or state == OrderState.UNANSWERED:
            lost.append(order_id)
        else:
            pending.append(order_id)
    return OrderAccounting(
        sent=len(in_window),
        acknowledged=len(by_state[OrderState.ACKNOWLEDGED]),
        received=received,
        failed=len(by_state[OrderState.FAILED]),
        in_flight=len(by_state[OrderState.IN_FLIGHT]),
        lost=len(lost),
        lost_order_ids=tuple(lost[:LOST_IDS_SHOWN]),
        cut_off_ms=cut_off,
        unanswered=len(by_state[OrderState.UNANSWERED]),
        received_unacknowledged=received_unacknowledged,
        acknowledged_after=acknowledged_after,
        failed_after=failed_after,
        pending=len(pending),
        pending_order_ids=tuple(pending[:LOST_IDS_SHOWN]),
        differences=_differences(in_window, outcomes[ORDER_RECEIVED], ever_sent, window),
        senders=_senders(orders, started, window),
    )


def _by(at_ms: int | None, cut_off: int) -> bool:
    return at_ms is not None and at_ms <= cut_off


def _state_at(order: _Order, cut_off: int, in_flight_ms: int) -> OrderState:
    """What had become of ``order`` at the cut-off: exactly one of the four states."""
    if _by(order.acknowledged_at, cut_off):
        return OrderState.ACKNOWLEDGED
    if _by(order.failed_at, cut_off):
        return OrderState.FAILED
    return OrderState.IN_FLIGHT if order.sent_at > cut_off - in_flight_ms else OrderState.UNANSWERED


def _differences(
    orders: Sequence[tuple[str, _Order]],
    received_at: Mapping[str, int],
    ever_sent: set[str],
    window: Window,
) -> tuple[OrderDifference, ...]:
    """The orders that contradict the identities, oldest first, each kind with its count."""
    found = {
        ACKNOWLEDGED_NOT_RECEIVED: [
            i
            for i, o in orders
            if _by(o.acknowledged_at, window.to_ms) and not _by(o.received_at, window.to_ms)
        ],
        ACKNOWLEDGED_AND_FAILED: [
            i for i, o in orders if o.acknowledged_at is not None and o.failed_at is not None
        ],
        RECEIVED_NOT_SENT: [
            i
            for i, at in sorted(received_at.items(), key=lambda item: item[1])
            if window.holds(at) and i not in ever_sent
        ],
    }
    return tuple(
        OrderDifference(kind, len(order_ids), tuple(order_ids[:DIFFERENT_IDS_SHOWN]))
        for kind, order_ids in found.items()
        if order_ids
    )


def _senders(
    orders: Mapping[str, _Order], started: Mapping[str, int], window: Window
) -> tuple[SenderOrders, ...]:
    """Each sender's orders since its latest start (or the window's), counted at the cut-off."""
    counts: dict[str, list[int]] = {}
    for order in orders.values():
        since = started.get(order.source, window.from_ms)
        if order.sent_at < since:
            continue
        sent_acknowledged_failed = counts.setdefault(order.source, [0, 0, 0])
        sent_acknowledged_failed[0] += 1
        if _by(order.acknowledged_at, window.to_ms):
            sent_acknowledged_failed[1] += 1
        elif _by(order.failed_at, window.to_ms):
            sent_acknowledged_failed[2] += 1
    return tuple(
        SenderOrders(source, started.get(source), sent, acknowledged, failed)
        for source, (sent, acknowledged, failed) in sorted(counts.items())
    )


def _window_start(
    ordered: Sequence[AuditEvent], from_ms: int | None, correlation_id: str | None
) -> int:
    if from_ms is not None:
        return from_ms
    for event in ordered:
        if correlation_id is None or event.correlation_id == correlation_id:
            return event.at_ms_epoch
    return 0


def _chaos_event(event: AuditEvent) -> ChaosEvent:
    target = event.data.get("target")
    return ChaosEvent(
        kind=event.kind,
        at_ms=event.at_ms_epoch,
        source=event.source,
        correlation_id=event.correlation_id,
        target=None if target is None else str(target),
        data=dict(event.data),
    )


def _faults(
    chaos: Sequence[AuditEvent],
    ordered: Sequence[AuditEvent],
    outages: Sequence[Outage],
    window: Window,
    slack_ms: int,
) -> Iterable[FaultRecord]:
    undone_at: dict[str, int] = {}
    for event in chaos:
        fault_id = _fault_id(event)
        if event.kind == FAULT_UNDONE and fault_id is not None:
            undone_at.setdefault(fault_id, event.at_ms_epoch)
    for event in chaos:
        if event.kind != FAULT_INJECTED:
            continue
        fault_id = _fault_id(event) or event.event_id
        target = _text(event.data.get("target"))
        injected, undone = event.at_ms_epoch, undone_at.get(fault_id)
        deadline = (undone if undone is not None else window.to_ms) + slack_ms
        explicit = event.data.get("affects")
        affected = (
            [str(s) for s in explicit]
            if isinstance(explicit, list | tuple)
            else _dependents(ordered, target)
        )
        observations = []
        for service in affected:
            seen = next(
                (
                    o
                    for o in outages
                    if o.service == service
                    and (explicit is not None or o.dependency == target)
                    and injected <= o.started_at_ms <= deadline
                ),
                None,
            )
            observations.append(
                FaultObservation(
                    service=service,
                    observed=seen is not None,
                    outage=seen,
                    delay_ms=None if seen is None else seen.started_at_ms - injected,
                )
            )
        yield FaultRecord(
            fault_id=fault_id,
            target=target,
            fault=_text(event.data.get("fault")),
            injected_at_ms=injected,
            undone_at_ms=undone,
            correlation_id=event.correlation_id,
            observations=tuple(observations),
        )


def _dependents(ordered: Sequence[AuditEvent], target: str | None) -> list[str]:
    """The services that ever reported losing or regaining a dependency named ``target``."""
    if target is None:
        return []
    found: dict[str, None] = {}
    for event in ordered:
        if (
            event.kind in (DEPENDENCY_LOST, DEPENDENCY_REGAINED)
            and event.data.get("dependency") == target
        ):
            found.setdefault(event.source, None)
    return list(found)


def _fault_id(event: AuditEvent) -> str | None:
    return _text(event.data.get("fault_id"))


def _order_ids(data: Mapping[str, Any]) -> list[str]:
    ids = []
    if data.get("order_id") is not None:
        ids.append(str(data["order_id"]))
    many = data.get("order_ids")
    if isinstance(many, list | tuple):
        ids.extend(str(i) for i in many)
    return ids


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
