"""The audit contract: events the ecosystem reports, and what the audit correlator answers.

Services and the coordinator report what they do and observe as
:class:`AuditEvent` s to the audit correlator; the coordinator reports every
fault it injects and undoes with the run id as correlation id. The correlator
answers a :class:`Correlation` for a time window or a correlation id: the
chaos events, the faults and whether the services they affect observed them,
the outages the services reported, and the order accounting.

Event kinds and the ``data`` each one carries:

* ``fault.injected``: ``fault_id``, ``target`` (the service hit), ``fault``
  (``restart``, ``pause``...), optional ``step`` and ``affects`` (the services
  that must observe it; without it, every service that ever reported a
  dependency named ``target``).
* ``fault.undone``: ``fault_id``, ``target``.
* ``dependency.lost`` / ``dependency.regained``: ``dependency`` (``exchange``);
  the event's ``source`` is the service that lost or regained it.
* ``order.sent`` / ``order.acknowledged`` / ``order.failed`` (from the sender) and
  ``order.received`` (from the exchange): ``order_id``. A sender stamps each one
  at the moment it counts the order in its own counters (``orders_sent_total``...),
  so that the counters read at a cut-off and the trail up to it can agree exactly.
* ``service.started``: anything the service wants said (``book_reset``); a sender's
  counters start from zero again after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from test_coordinator.ports.availability import DependencyUnavailable

COORDINATOR_SOURCE = "test-coordinator"

FAULT_INJECTED = "fault.injected"
FAULT_UNDONE = "fault.undone"
DEPENDENCY_LOST = "dependency.lost"
DEPENDENCY_REGAINED = "dependency.regained"
ORDER_SENT = "order.sent"
ORDER_ACKNOWLEDGED = "order.acknowledged"
ORDER_FAILED = "order.failed"
ORDER_RECEIVED = "order.received"
SERVICE_STARTED = "service.started"
CHAOS_KINDS = frozenset({FAULT_INJECTED, FAULT_UNDONE})


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, at ``at_ms_epoch`` (milliseconds since the Unix epoch).

    ``event_id`` makes delivery idempotent: the correlator stores an id once,
    however many times a retry sends it.
    """

    kind: str
    at_ms_epoch: int
    correlation_id: str | None = None
    source: str = COORDINATOR_SOURCE
    data: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)


class AuditSink(Protocol):
    """Where events go. Reporting never slows or breaks the caller."""

    def emit(self, event: AuditEvent) -> None:
        """Queue ``event`` for delivery; never blocks, never raises."""

    async def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for everything queued to be delivered; True if it was."""

    async def close(self) -> None:
        """Deliver what can be delivered within a short grace period, then stop; idempotent."""


class AuditUnavailable(DependencyUnavailable):
    """The audit correlator cannot be reached right now."""


class AuditQueryFailed(Exception):
    """The audit correlator answered, but not with a correlation (an error or a malformed body)."""


@dataclass(frozen=True, slots=True)
class ChaosEvent:
    """A fault injected or undone, as the coordinator reported it."""

    kind: str
    at_ms: int
    source: str
    correlation_id: str | None
    target: str | None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outage:
    """``service`` could not reach ``dependency`` from ``started_at_ms`` to ``ended_at_ms``.

    ``ended_at_ms`` is None while the outage lasts (or when the service never said
    it regained the dependency).
    """

    service: str
    dependency: str
    started_at_ms: int
    ended_at_ms: int | None

    @property
    def duration_ms(self) -> int | None:
        return None if self.ended_at_ms is None else self.ended_at_ms - self.started_at_ms

    @property
    def ongoing(self) -> bool:
        return self.ended_at_ms is None


@dataclass(frozen=True, slots=True)
class FaultObservation:
    """Whether ``service`` saw a fault: an outage that began while it was in force."""

    service: str
    observed: bool
    outage: Outage | None = None
    delay_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One fault from injection to undo, and who observed it."""

    fault_id: str
    target: str | None
    fault: str | None
    injected_at_ms: int
    undone_at_ms: int | None
    correlation_id: str | None
    observations: tuple[FaultObservation, ...] = ()

    @property
    def unobserved_by(self) -> tuple[str, ...]:
        return tuple(o.service for o in self.observations if not o.observed)

    @property
    def observed_by_all(self) -> bool:
        return not self.unobserved_by


@dataclass(frozen=True, slots=True)
class ServiceStart:
    """A service said it started (a restart shows as a second start)."""

    service: str
    at_ms: int
    data: Mapping[str, Any] = field(default_factory=dict)


ACKNOWLEDGED_NOT_RECEIVED = "acknowledged_not_received"
RECEIVED_NOT_SENT = "received_not_sent"
ACKNOWLEDGED_AND_FAILED = "acknowledged_and_failed"
ORDER_DIFFERENCES = {
    ACKNOWLEDGED_NOT_RECEIVED: "acknowledged but never reported received by the exchange",
    ACKNOWLEDGED_AND_FAILED: "both acknowledged and given up by the sender",
    RECEIVED_NOT_SENT: "received by the exchange but never reported sent",
}
"""The ways orders can contradict each other in the audit trail, and what each means."""


@dataclass(frozen=True, slots=True)
class OrderDifference:
    """Orders that break one of the accounting's identities: how many, and the first ids."""

    kind: str
    count: int
    order_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        meaning = ORDER_DIFFERENCES.get(self.kind, self.kind)
        more = f" (first {len(self.order_ids)})" if self.count > len(self.order_ids) else ""
        ids = f": {', '.join(self.order_ids)}{more}" if self.order_ids else ""
        return f"{self.count} {'order' if self.count == 1 else 'orders'} {meaning}{ids}"


@dataclass(frozen=True, slots=True)
class SenderOrders:
    """What one sender's own counters must say at the cut-off: its orders since its latest
    start (a restarted process counts from zero), as the audit trail holds them.

    ``since_ms``: its latest ``service.started`` at or before the cut-off; None when it
    never reported one (then its orders since the window's start)."""

    source: str
    since_ms: int | None
    sent: int
    acknowledged: int
    failed: int


@dataclass(frozen=True, slots=True)
class OrderAccounting:
    """Orders sent from the window's start to its end, the cut-off, and what became of them.

    Counted at the cut-off (``cut_off_ms``, the window's end), each order sent is in
    exactly one of: ``acknowledged`` (the sender reported the exchange's
    acknowledgement), ``failed`` (the sender gave it up), ``in_flight`` (no outcome
    yet, sent less than the query's ``in_flight_ms`` before the cut-off) or
    ``unanswered`` (no outcome, and sent earlier than that): ``sent = acknowledged +
    failed + in_flight + unanswered``. ``received``: the exchange reported receiving
    it by the cut-off, whatever the sender heard; ``received_unacknowledged`` of those
    were not acknowledged by then, so that ``received = acknowledged + received_unacknowledged``
    less the acknowledged orders the exchange never reported (a difference).

    After the cut-off, of the orders without an outcome at it: ``acknowledged_after``
    and ``failed_after`` got one since; ``pending`` (ids: ``pending_order_ids``) were
    in flight and still have none, nor did the exchange report them: they may yet.

    ``lost``: never acknowledged, never received by the exchange, and given up or
    unanswered at the cut-off (a failed order usually is one).

    ``differences``: orders that contradict each other (see :data:`ORDER_DIFFERENCES`).
    ``senders``: each sender's share since its latest start, to compare with its counters.
    """

    sent: int = 0
    acknowledged: int = 0
    received: int = 0
    failed: int = 0
    in_flight: int = 0
    lost: int = 0
    lost_order_ids: tuple[str, ...] = ()
    cut_off_ms: int | None = None
    unanswered: int = 0
    received_unacknowledged: int = 0
    acknowledged_after: int = 0
    failed_after: int = 0
    pending: int = 0
    pending_order_ids: tuple[str, ...] = ()
    differences: tuple[OrderDifference, ...] = ()
    senders: tuple[SenderOrders, ...] = ()

    def difference(self, kind: str) -> OrderDifference | None:
        return next((d for d in self.differences if d.kind == kind), None)

    def sender(self, source: str) -> SenderOrders | None:
        return next((s for s in self.senders if s.source == source), None)

    def as_json(self) -> dict[str, Any]:
        """The same fields as plain JSON values."""
        return {
            "cut_off_ms": self.cut_off_ms,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "unanswered": self.unanswered,
            "received": self.received,
            "received_unacknowledged": self.received_unacknowledged,
            "acknowledged_after": self.acknowledged_after,
            "failed_after": self.failed_after,
            "pending": self.pending,
            "pending_order_ids": list(self.pending_order_ids),
            "lost": self.lost,
            "lost_order_ids": list(self.lost_order_ids),
            "differences": [
                {"kind": d.kind, "count": d.count, "order_ids": list(d.order_ids)}
                for d in self.differences
            ],
            "senders": [
                {
                    "source": s.source,
                    "since_ms": s.since_ms,
                    "sent": s.sent,
                    "acknowledged": s.acknowledged,
                    "failed": s.failed,
                }
                for s in self.senders
            ],
        }


@dataclass(frozen=True, slots=True)
class SourceProgress:
    """How far the trail holds a source's events: every event it stamped at or before
    ``complete_to_ms`` is stored (None: its reporter does not say). ``closed``: its reporter
    closed after delivering everything, so nothing more comes until the source starts again.

    A reporter knows this when a batch leaves nothing behind in its buffer; reporters
    deliver in order and send a heartbeat when idle, so the mark follows the clock."""

    source: str
    complete_to_ms: int | None
    closed: bool = False

    def behind(self, at_ms: int) -> bool:
        """Whether events it stamped at or before ``at_ms`` may still be on their way."""
        return not self.closed and self.complete_to_ms is not None and self.complete_to_ms < at_ms


@dataclass(frozen=True, slots=True)
class Correlation:
    """The audit correlator's answer for one window (and correlation id, if asked)."""

    correlation_id: str | None
    from_ms: int
    to_ms: int
    event_count: int
    chaos_events: tuple[ChaosEvent, ...] = ()
    faults: tuple[FaultRecord, ...] = ()
    outages: tuple[Outage, ...] = ()
    service_starts: tuple[ServiceStart, ...] = ()
    orders: OrderAccounting = field(default_factory=OrderAccounting)
    sources: tuple[SourceProgress, ...] = ()
    """The progress of each source with events in the window (when the correlator tracks it)."""

    def sources_behind(self, at_ms: int) -> tuple[SourceProgress, ...]:
        """The sources whose events stamped at or before ``at_ms`` may not all be stored yet."""
        return tuple(s for s in self.sources if s.behind(at_ms))

    def outages_of(self, service: str, dependency: str | None = None) -> tuple[Outage, ...]:
        return tuple(
            o
            for o in self.outages
            if o.service == service and (dependency is None or o.dependency == dependency)
        )

    def longest_outage_ms(self, service: str | None = None) -> int | None:
        """The longest finished outage (of ``service``, or of any); None if there is none."""
        durations = [
            o.duration_ms
            for o in self.outages
            if o.duration_ms is not None and (service is None or o.service == service)
        ]
        return max(durations, default=None)

    @property
    def unobserved_faults(self) -> tuple[FaultRecord, ...]:
        return tuple(f for f in self.faults if not f.observed_by_all)


class AuditQuery(Protocol):
    """Asks the audit correlator for a correlation; raises AuditUnavailable or AuditQueryFailed."""

    async def correlate(
        self,
        correlation_id: str | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> Correlation: ...


def fault_injected(
    *,
    run_id: str,
    fault_id: str,
    target: str,
    fault: str,
    at_ms: int,
    step: str | None = None,
    affects: Sequence[str] | None = None,
) -> AuditEvent:
    """The event the coordinator reports when it injects a fault."""
    data: dict[str, Any] = {"fault_id": fault_id, "target": target, "fault": fault}
    if step is not None:
        data["step"] = step
    if affects is not None:
        data["affects"] = list(affects)
    return AuditEvent(FAULT_INJECTED, at_ms, run_id, COORDINATOR_SOURCE, data)


def fault_undone(*, run_id: str, fault_id: str, target: str, at_ms: int) -> AuditEvent:
    """The event the coordinator reports when it undoes a fault."""
    data = {"fault_id": fault_id, "target": target}
    return AuditEvent(FAULT_UNDONE, at_ms, run_id, COORDINATOR_SOURCE, data)
