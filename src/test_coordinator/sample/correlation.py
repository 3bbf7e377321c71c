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
* Orders: those with ``order.sent`` in the window, and what became of them, as
  reported at any time: ``order.acknowledged`` and ``order.failed`` by the
  sender, ``order.received`` by the exchange. One with no outcome yet is in
  flight if sent less than ``in_flight_ms`` before the window's end. Lost:
  neither acknowledged, nor received by the exchange, nor in flight. Counting
  what the exchange received keeps an order whose acknowledgement died with a
  killed engine from passing for lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from test_coordinator.ports.audit import (
    CHAOS_KINDS,
    DEPENDENCY_LOST,
    DEPENDENCY_REGAINED,
    FAULT_INJECTED,
    FAULT_UNDONE,
    ORDER_ACKNOWLEDGED,
    ORDER_FAILED,
    ORDER_RECEIVED,
    ORDER_SENT,
    SERVICE_STARTED,
    AuditEvent,
    ChaosEvent,
    Correlation,
    FaultObservation,
    FaultRecord,
    OrderAccounting,
    Outage,
    ServiceStart,
)

DEFAULT_SLACK_MS = 5_000
DEFAULT_IN_FLIGHT_MS = 2_000
LOST_IDS_SHOWN = 50


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
) -> Correlation:
    """What ``events`` say about the window [``from_ms``, ``to_ms``].

    Without ``from_ms`` the window opens at the first event of ``correlation_id``
    (or at the first event of all, when no id is asked).
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


def order_accounting(
    ordered: Sequence[AuditEvent], window: Window, in_flight_ms: int
) -> OrderAccounting:
    sent: dict[str, int] = {}
    outcomes: dict[str, set[str]] = {
        ORDER_ACKNOWLEDGED: set(),
        ORDER_RECEIVED: set(),
        ORDER_FAILED: set(),
    }
    for event in ordered:
        if event.kind == ORDER_SENT and window.holds(event.at_ms_epoch):
            for order_id in _order_ids(event.data):
                sent.setdefault(order_id, event.at_ms_epoch)
        elif event.kind in outcomes:
            outcomes[event.kind].update(_order_ids(event.data))
    acknowledged, received, failed = (
        outcomes[ORDER_ACKNOWLEDGED], outcomes[ORDER_RECEIVED], outcomes[ORDER_FAILED]
    )  # fmt: skip
    unanswered = [(at, i) for i, at in sent.items() if i not in acknowledged]
    in_flight = {
        i
        for at, i in unanswered
        if i not in failed and i not in received and at > window.to_ms - in_flight_ms
    }
    lost = sorted((at, i) for at, i in unanswered if i not in in_flight and i not in received)
    return OrderAccounting(
        sent=len(sent),
        acknowledged=len(sent) - len(unanswered),
        received=sum(1 for i in sent if i in received),
        failed=sum(1 for _, i in unanswered if i in failed),
        in_flight=len(in_flight),
        lost=len(lost),
        lost_order_ids=tuple(i for _, i in lost[:LOST_IDS_SHOWN]),
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
