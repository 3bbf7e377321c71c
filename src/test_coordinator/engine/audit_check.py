"""The ``audit`` check: ask the audit correlator what this run did to the system.

The coordinator's events are flushed first (bounded by ``audit.flush_timeout``),
then the correlator is asked for the run's correlation (the run id, from the
run's start to now) until every criterion holds or ``settle`` has passed, so
that events still on their way and orders still in flight are given their time.
The verdict comes from the last answer, and the check's value carries its
summary under ``correlation`` for the reports.

:func:`evaluate` is pure: the criteria against one correlation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from test_coordinator.engine.audit_trail import ReportedFault
from test_coordinator.ports.audit import (
    COORDINATOR_SOURCE,
    AuditEvent,
    AuditQueryFailed,
    AuditUnavailable,
    Correlation,
    FaultRecord,
    Outage,
)
from test_coordinator.scenario.checks import AuditCheck, AuditCheckSpec
from test_coordinator.scenario.durations import format_duration

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext

LOST_IDS_SHOWN = 5


class AuditCheckFailed(Exception):
    def __init__(self, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


class AuditNothingToJudge(AuditCheckFailed):
    """Every criterion that failed had nothing to judge (no fault, no order, no outage)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One criterion against one correlation. ``waiting``: it holds, but an answer may change."""

    criterion: str
    ok: bool
    detail: str
    waiting: bool = False
    empty: bool = False
    """Nothing to judge (no fault, no order, no outage, no event): not a pass."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the coordinator knows besides the correlator's answer."""

    faults: Sequence[ReportedFault] = ()
    emitted: Sequence[AuditEvent] = ()
    orders_counted: float | None = None
    orders_counted_by: str = ""


def evaluate(spec: AuditCheckSpec, correlation: Correlation, evidence: Evidence) -> list[Verdict]:
    """Every criterion ``spec`` asks for, judged on ``correlation``."""
    judges = {
        "faults_observed": _faults_observed,
        "orders_lost": _orders_lost,
        "outage": _outage,
        "coordinator_events": _coordinator_events,
        "orders_reported": _orders_reported,
        "events_min": _events_min,
    }
    return [judges[name](spec, correlation, evidence) for name in spec.criteria]


def _faults_observed(spec: AuditCheckSpec, c: Correlation, evidence: Evidence) -> Verdict:
    by_id = {f.fault_id: f for f in c.faults}
    if not evidence.faults:
        return Verdict(
            "faults_observed", False, "the coordinator reported no fault to observe", empty=True
        )
    problems, seen = [], []
    for fault in evidence.faults:
        name = f"{fault.fault} of {fault.target} ({fault.step})"
        record = by_id.get(fault.fault_id)
        if record is None:
            problems.append(f"{name}: the audit correlator has no record of it")
        elif not record.observed_by_all:
            problems.append(f"{name}: not observed by {', '.join(record.unobserved_by)}")
        elif not record.observations:
            seen.append(f"{name}: on record (no service has to observe it)")
        else:
            observers = [f"{o.service} after {o.delay_ms} ms" for o in record.observations]
            seen.append(f"{name} by {', '.join(observers)}")
    if problems:
        return Verdict("faults_observed", False, "faults not observed: " + "; ".join(problems))
    return Verdict("faults_observed", True, "observed: " + "; ".join(seen))


def _orders_lost(spec: AuditCheckSpec, c: Correlation, evidence: Evidence) -> Verdict:
    assert spec.orders_lost is not None
    orders, limit = c.orders, spec.orders_lost.max
    counts = (
        f"{orders.sent} sent, {orders.acknowledged} acknowledged, "
        f"{orders.received} received by the exchange, {orders.failed} failed"
    )
    if orders.sent == 0:
        return Verdict("orders_lost", False, f"no order was sent: {counts}", empty=True)
    if orders.lost > limit:
        ids = ", ".join(orders.lost_order_ids[:LOST_IDS_SHOWN])
        more = "..." if orders.lost > LOST_IDS_SHOWN else ""
        return Verdict(
            "orders_lost",
            False,
            f"{orders.lost} orders lost (at most {limit} allowed): {counts}; lost: {ids}{more}",
        )
    in_flight = f", {orders.in_flight} still in flight" if orders.in_flight else ""
    return Verdict(
        "orders_lost",
        True,
        f"{orders.lost} orders lost (at most {limit}): {counts}{in_flight}",
        waiting=orders.in_flight > 0,
    )


def _outage(spec: AuditCheckSpec, c: Correlation, evidence: Evidence) -> Verdict:
    assert spec.outage is not None
    want = spec.outage
    of = f"{want.service}'s outage" + (f" of {want.dependency}" if want.dependency else "")
    outages = c.outages_of(want.service, want.dependency)
    if not outages:
        return Verdict("outage", False, f"{want.service} reported no outage", empty=True)
    ongoing = [o for o in outages if o.ongoing]
    if ongoing:
        return Verdict(
            "outage", False, f"{of} has not ended ({len(ongoing)} still open)", waiting=True
        )
    longest = max(outages, key=lambda o: o.duration_ms or 0)
    duration = longest.duration_ms or 0
    if duration > want.max * 1000.0:
        return Verdict(
            "outage",
            False,
            f"{of} lasted {duration} ms, more than the allowed {format_duration(want.max)}",
        )
    return Verdict(
        "outage",
        True,
        f"{of} lasted {duration} ms at the longest ({len(outages)} in all; "
        f"max {format_duration(want.max)})",
    )


def _coordinator_events(spec: AuditCheckSpec, c: Correlation, evidence: Evidence) -> Verdict:
    stored = {
        (e.kind, str(e.data.get("fault_id")))
        for e in c.chaos_events
        if e.source == COORDINATOR_SOURCE
    }
    missing = [e for e in evidence.emitted if (e.kind, str(e.data.get("fault_id"))) not in stored]
    total = len(evidence.emitted)
    if not total:
        return Verdict("coordinator_events", False, "the coordinator reported no event", empty=True)
    if missing:
        listed = ", ".join(f"{e.kind} {e.data.get('target')}" for e in missing[:LOST_IDS_SHOWN])
        return Verdict(
            "coordinator_events",
            False,
            f"{len(missing)} of the {total} events the coordinator reported are not in the "
            f"audit trail: {listed}",
        )
    return Verdict(
        "coordinator_events", True, f"all {total} events the coordinator reported are stored"
    )


def _orders_reported(spec: AuditCheckSpec, c: Correlation, evidence: Evidence) -> Verdict:
    assert spec.orders_reported is not None
    counted = evidence.orders_counted
    who = evidence.orders_counted_by or spec.orders_reported.service
    if counted is None:
        return Verdict("orders_reported", False, f"{who} exposes no order count")
    if counted == 0:
        return Verdict("orders_reported", False, f"{who} counted no order", empty=True)
    if c.orders.sent < counted:
        return Verdict(
            "orders_reported",
            False,
            f"the audit trail holds {c.orders.sent} orders sent, but {who} counted "
            f"{counted:g}: {counted - c.orders.sent:g} order events lost",
        )
    return Verdict(
        "orders_reported",
        True,
        f"the audit trail holds {c.orders.sent} orders sent; {who} counted {counted:g}",
    )


def _events_min(spec: AuditCheckSpec, c: Correlation, evidence: Evidence) -> Verdict:
    assert spec.events_min is not None
    ok = c.event_count >= spec.events_min
    relation = "at least" if ok else "fewer than"
    return Verdict(
        "events_min", ok, f"{c.event_count} events in the window, {relation} {spec.events_min}"
    )


def correlation_summary(c: Correlation, run_started_epoch_ms: int) -> dict[str, Any]:
    """The correlation as plain data; every epoch time also as ms since the run's start."""

    def run_ms(epoch_ms: int | None) -> int | None:
        return None if epoch_ms is None else epoch_ms - run_started_epoch_ms

    def outage(o: Outage) -> dict[str, Any]:
        return {
            "service": o.service,
            "dependency": o.dependency,
            "started_at_ms_epoch": o.started_at_ms,
            "ended_at_ms_epoch": o.ended_at_ms,
            "started_at_run_ms": run_ms(o.started_at_ms),
            "ended_at_run_ms": run_ms(o.ended_at_ms),
            "duration_ms": o.duration_ms,
        }

    def fault(f: FaultRecord) -> dict[str, Any]:
        return {
            "fault_id": f.fault_id,
            "target": f.target,
            "fault": f.fault,
            "injected_at_ms_epoch": f.injected_at_ms,
            "undone_at_ms_epoch": f.undone_at_ms,
            "injected_at_run_ms": run_ms(f.injected_at_ms),
            "undone_at_run_ms": run_ms(f.undone_at_ms),
            "observed_by_all": f.observed_by_all,
            "observations": [
                {
                    "service": o.service,
                    "observed": o.observed,
                    "delay_ms": o.delay_ms,
                    "outage": None if o.outage is None else outage(o.outage),
                }
                for o in f.observations
            ],
        }

    orders = c.orders
    return {
        "correlation_id": c.correlation_id,
        "from_ms_epoch": c.from_ms,
        "to_ms_epoch": c.to_ms,
        "event_count": c.event_count,
        "faults": [fault(f) for f in c.faults],
        "outages": [outage(o) for o in c.outages],
        "orders": orders.as_json(),
        "service_starts": [
            {"service": s.service, "at_ms_epoch": s.at_ms, "at_run_ms": run_ms(s.at_ms)}
            for s in c.service_starts
        ],
    }


async def judge_audit(ctx: RunContext, check: AuditCheck) -> tuple[str, Any]:
    """Passes with a summary, or raises AuditCheckFailed naming every criterion that failed."""
    spec = check.audit
    audit = ctx.audit
    link = audit.link
    if link is None:
        raise AuditCheckFailed(
            "no audit correlator to ask: the scenario has no audit: settings, "
            "or this coordinator has no way to reach one"
        )
    settings = ctx.loaded.model.audit
    flush_timeout = settings.flush_timeout if settings is not None else 5.0
    delivered = await audit.flush(flush_timeout)
    evidence = Evidence(faults=tuple(audit.faults), emitted=tuple(audit.emitted))
    if spec.orders_reported is not None:
        evidence = await _with_order_count(ctx, spec, evidence)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + spec.settle
    correlation: Correlation | None = None
    verdicts: list[Verdict] = []
    problem = ""
    while True:
        try:
            answer = await link.correlate(
                ctx.run_id,
                ctx.started_epoch_ms,
                ctx.deps.wall_clock_ms(),
                slack_ms=round(spec.slack * 1000),
                in_flight_ms=round(spec.in_flight * 1000),
            )
            correlation, verdicts = answer, evaluate(spec, answer, evidence)
            settled = all(v.ok and not v.waiting for v in verdicts)
        except (AuditUnavailable, AuditQueryFailed) as exc:
            problem, settled = str(exc), False
        remaining = deadline - loop.time()
        if settled or remaining <= 0:
            break
        await asyncio.sleep(min(spec.every, remaining))
    if correlation is None:
        raise AuditCheckFailed(
            f"no answer from the audit correlator within {format_duration(spec.settle)}: {problem}"
        )
    value = {
        "correlation": correlation_summary(correlation, ctx.started_epoch_ms),
        "criteria": [{"criterion": v.criterion, "ok": v.ok, "detail": v.detail} for v in verdicts],
        "reporter": {**audit.stats(), "flushed": delivered},
    }
    failed = [v for v in verdicts if not v.ok and not (v.empty and check.allow_empty)]
    if failed and all(v.empty for v in failed):
        raise AuditNothingToJudge("; ".join(v.detail for v in failed), value)
    if failed:
        raise AuditCheckFailed(
            "; ".join(f"nothing to judge: {v.detail}" if v.empty else v.detail for v in failed),
            value,
        )
    return "; ".join(v.detail for v in verdicts), value


async def _with_order_count(ctx: RunContext, spec: AuditCheckSpec, evidence: Evidence) -> Evidence:
    assert spec.orders_reported is not None
    service = spec.orders_reported.service
    url = ctx.loaded.model.services[service].metrics_url
    assert url is not None
    counted = await ctx.deps.read_metric(url, spec.orders_reported.metric, {})
    return Evidence(
        faults=evidence.faults,
        emitted=evidence.emitted,
        orders_counted=counted,
        orders_counted_by=f"{service} ({spec.orders_reported.metric})",
    )
