"""The audit correlator's JSON: events as they travel, and the correlation it answers.

Events travel as ``{"id", "source", "kind", "at", "correlation_id", "data"}``,
``at`` in milliseconds since the epoch or as an ISO 8601 timestamp (a naive one
is UTC). Both the reporter and the correlator use these functions, so the two
ends cannot drift apart.

A batch may say how far its source's events are delivered, in headers:
``X-Audit-Source`` (the source), ``X-Audit-Complete-To`` (epoch ms: every event
the source stamped at or before it is in this batch or an earlier one) and
``X-Audit-Closed: 1`` (the reporter closes; nothing follows until the source
starts again). An empty batch carrying them is a heartbeat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from test_coordinator.ports.audit import (
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
    new_event_id,
)

SOURCE_HEADER = "X-Audit-Source"
COMPLETE_TO_HEADER = "X-Audit-Complete-To"
CLOSED_HEADER = "X-Audit-Closed"


class MalformedAuditJson(ValueError):
    """A body that is not an audit event or a correlation; the message says what is wrong."""


def progress_headers(
    source: str, complete_to_ms: int | None, *, closed: bool = False
) -> dict[str, str]:
    """The headers of a batch from ``source`` saying how far its events are delivered."""
    headers = {SOURCE_HEADER: source}
    if complete_to_ms is not None:
        headers[COMPLETE_TO_HEADER] = str(complete_to_ms)
    if closed:
        headers[CLOSED_HEADER] = "1"
    return headers


def progress_from_headers(headers: Mapping[str, str]) -> SourceProgress | None:
    """What a batch's headers say of its source's progress; None without a source."""
    source = (headers.get(SOURCE_HEADER) or "").strip()
    if not source:
        return None
    raw = headers.get(COMPLETE_TO_HEADER)
    complete_to = None
    if raw is not None:
        try:
            complete_to = int(raw)
        except ValueError:
            raise MalformedAuditJson(
                f"{COMPLETE_TO_HEADER}: not epoch milliseconds: {raw[:40]!r}"
            ) from None
    return SourceProgress(source, complete_to, closed=headers.get(CLOSED_HEADER) == "1")


def event_to_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.event_id,
        "source": event.source,
        "kind": event.kind,
        "at": event.at_ms_epoch,
        "correlation_id": event.correlation_id,
        "data": dict(event.data),
    }


def event_from_json(body: Any) -> AuditEvent:
    if not isinstance(body, Mapping):
        raise MalformedAuditJson(f"an event is a JSON object, not {type(body).__name__}")
    source, kind = body.get("source"), body.get("kind")
    if not isinstance(source, str) or not source:
        raise MalformedAuditJson("an event needs a non-empty string 'source'")
    if not isinstance(kind, str) or not kind:
        raise MalformedAuditJson("an event needs a non-empty string 'kind'")
    correlation_id = body.get("correlation_id")
    if correlation_id is not None and not isinstance(correlation_id, str):
        raise MalformedAuditJson("'correlation_id' is a string when given")
    data = body.get("data") or {}
    if not isinstance(data, Mapping):
        raise MalformedAuditJson("'data' is a JSON object when given")
    event_id = body.get("id") or new_event_id()
    if not isinstance(event_id, str):
        raise MalformedAuditJson("'id' is a string when given")
    return AuditEvent(
        kind=kind,
        at_ms_epoch=parse_instant_ms(body.get("at"), what="'at'"),
        correlation_id=correlation_id or None,
        source=source,
        data=dict(data),
        event_id=event_id,
    )


def parse_instant_ms(value: Any, *, what: str = "time") -> int:
    """Milliseconds since the epoch, from a number of milliseconds or an ISO 8601 string."""
    if isinstance(value, bool) or value is None:
        raise MalformedAuditJson(f"{what} is epoch milliseconds or an ISO 8601 time, not {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise MalformedAuditJson(f"{what} is not a finite number: {value!r}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(float(text))
        except ValueError:
            pass
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            raise MalformedAuditJson(
                f"{what} is epoch milliseconds or an ISO 8601 time, not {value!r}"
            ) from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return int(instant.timestamp() * 1000)
    raise MalformedAuditJson(f"{what} is epoch milliseconds or an ISO 8601 time, not {value!r}")


def outage_to_json(outage: Outage) -> dict[str, Any]:
    return {
        "service": outage.service,
        "dependency": outage.dependency,
        "started_at_ms": outage.started_at_ms,
        "ended_at_ms": outage.ended_at_ms,
        "duration_ms": outage.duration_ms,
    }


def correlation_to_json(correlation: Correlation) -> dict[str, Any]:
    orders = correlation.orders
    return {
        "correlation_id": correlation.correlation_id,
        "from_ms": correlation.from_ms,
        "to_ms": correlation.to_ms,
        "event_count": correlation.event_count,
        "chaos_events": [
            {
                "kind": e.kind,
                "at_ms": e.at_ms,
                "source": e.source,
                "correlation_id": e.correlation_id,
                "target": e.target,
                "data": dict(e.data),
            }
            for e in correlation.chaos_events
        ],
        "faults": [
            {
                "fault_id": f.fault_id,
                "target": f.target,
                "fault": f.fault,
                "injected_at_ms": f.injected_at_ms,
                "undone_at_ms": f.undone_at_ms,
                "correlation_id": f.correlation_id,
                "observed_by_all": f.observed_by_all,
                "observations": [
                    {
                        "service": o.service,
                        "observed": o.observed,
                        "delay_ms": o.delay_ms,
                        "outage": None if o.outage is None else outage_to_json(o.outage),
                    }
                    for o in f.observations
                ],
            }
            for f in correlation.faults
        ],
        "outages": [outage_to_json(o) for o in correlation.outages],
        "service_starts": [
            {"service": s.service, "at_ms": s.at_ms, "data": dict(s.data)}
            for s in correlation.service_starts
        ],
        "orders": orders.as_json(),
        "sources": [
            {"source": p.source, "complete_to_ms": p.complete_to_ms, "closed": p.closed}
            for p in correlation.sources
        ],
    }


def correlation_from_json(body: Any) -> Correlation:
    """The typed correlation from the correlator's JSON; MalformedAuditJson if it is not one."""
    try:
        return _correlation(body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, MalformedAuditJson):
            raise
        raise MalformedAuditJson(f"not a correlation: {type(exc).__name__}: {exc}") from None


def _correlation(body: Any) -> Correlation:
    return Correlation(
        correlation_id=_opt_str(body.get("correlation_id")),
        from_ms=int(body["from_ms"]),
        to_ms=int(body["to_ms"]),
        event_count=int(body["event_count"]),
        chaos_events=tuple(
            ChaosEvent(
                kind=str(e["kind"]),
                at_ms=int(e["at_ms"]),
                source=str(e["source"]),
                correlation_id=_opt_str(e.get("correlation_id")),
                target=_opt_str(e.get("target")),
                data=dict(e.get("data") or {}),
            )
            for e in body["chaos_events"]
        ),
        faults=tuple(
            FaultRecord(
                fault_id=str(f["fault_id"]),
                target=_opt_str(f.get("target")),
                fault=_opt_str(f.get("fault")),
                injected_at_ms=int(f["injected_at_ms"]),
                undone_at_ms=_opt_int(f.get("undone_at_ms")),
                correlation_id=_opt_str(f.get("correlation_id")),
                observations=tuple(
                    FaultObservation(
                        service=str(o["service"]),
                        observed=bool(o["observed"]),
                        outage=None if o.get("outage") is None else _outage(o["outage"]),
                        delay_ms=_opt_int(o.get("delay_ms")),
                    )
                    for o in f["observations"]
                ),
            )
            for f in body["faults"]
        ),
        outages=tuple(_outage(o) for o in body["outages"]),
        service_starts=tuple(
            ServiceStart(str(s["service"]), int(s["at_ms"]), dict(s.get("data") or {}))
            for s in body["service_starts"]
        ),
        orders=_orders(body["orders"]),
        sources=tuple(
            SourceProgress(
                str(p["source"]), _opt_int(p.get("complete_to_ms")), p.get("closed") is True
            )
            for p in body.get("sources") or ()
        ),
    )


def _orders(orders: Any) -> OrderAccounting:
    """The order accounting; the fields a correlator without cut-off accounting lacks are 0."""
    return OrderAccounting(
        sent=int(orders["sent"]),
        acknowledged=int(orders["acknowledged"]),
        received=int(orders.get("received", 0)),
        failed=int(orders["failed"]),
        in_flight=int(orders["in_flight"]),
        lost=int(orders["lost"]),
        lost_order_ids=_ids(orders.get("lost_order_ids")),
        cut_off_ms=_opt_int(orders.get("cut_off_ms")),
        unanswered=int(orders.get("unanswered", 0)),
        received_unacknowledged=int(orders.get("received_unacknowledged", 0)),
        acknowledged_after=int(orders.get("acknowledged_after", 0)),
        failed_after=int(orders.get("failed_after", 0)),
        pending=int(orders.get("pending", 0)),
        pending_order_ids=_ids(orders.get("pending_order_ids")),
        differences=tuple(
            OrderDifference(str(d["kind"]), int(d["count"]), _ids(d.get("order_ids")))
            for d in orders.get("differences") or ()
        ),
        senders=tuple(
            SenderOrders(
                source=str(s["source"]),
                since_ms=_opt_int(s.get("since_ms")),
                sent=int(s["sent"]),
                acknowledged=int(s["acknowledged"]),
                failed=int(s["failed"]),
            )
            for s in orders.get("senders") or ()
        ),
    )


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(str(i) for i in value or ())


def _outage(body: Any) -> Outage:
    return Outage(
        service=str(body["service"]),
        dependency=str(body["dependency"]),
        started_at_ms=int(body["started_at_ms"]),
        ended_at_ms=_opt_int(body.get("ended_at_ms")),
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
