"""The ``audit`` check: ask the audit correlator what this run did to the system.

The coordinator's events are flushed first (bounded by ``audit.flush_timeout``).
The first audit check of a run then takes the run's order cut-off (see
:mod:`~test_coordinator.engine.order_accounting`): a moment, and the counters of
every sender an ``orders_reported`` criterion names, read at it. Every audit
check asks the correlator for the run's correlation (the run id, from the run's
start to the cut-off) until every criterion holds and the order accounting at
the cut-off is complete (its identities hold, the counters read agree), or
``settle`` has passed: events still on their way and orders in flight at the
cut-off are given their time, and every check reports the same order numbers.
A source that says how far its events are delivered (see
:class:`~test_coordinator.ports.audit.SourceProgress`) is waited for until it is
past the cut-off; the orders cannot be judged before.
The verdict comes from the last answer, and the check's value carries its
summary under ``correlation`` and the cut-off under ``cut_off``.

:func:`evaluate` is pure: the criteria against one correlation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from test_coordinator.engine.audit_trail import ReportedFault
from test_coordinator.engine.order_accounting import (
    CounterReading,
    OrderCutOff,
    SenderCounters,
    accounting_problems,
    accounting_settled,
    counter_problems,
    describe_accounting,
    describe_counters,
    ids_text,
    take_cut_off,
)
from test_coordinator.ports.audit import (
    COORDINATOR_SOURCE,
    RECEIVED_NOT_SENT,
    AuditEvent,
    AuditQueryFailed,
    AuditUnavailable,
    Correlation,
    FaultRecord,
    Outage,
)
from test_coordinator.scenario.checks import AuditCheck, AuditCheckSpec, OrdersReportedSpec
from test_coordinator.scenario.durations import format_duration

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext

LOST_IDS_SHOWN = 5
CLOCK_TICK_S = 0.001
CLOCK_TICK_TRIES = 5


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
    cut_off: OrderCutOff | None = None
    run_started_ms: int | None = None


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
    """The orders up to the cut-off reconcile, and at most ``max`` are lost; an order in
    flight at the cut-off with no word since counts as lost until it has one."""
    assert spec.orders_lost is not None
    orders, limit = c.orders, spec.orders_lost.max
    counts = describe_accounting(orders, evidence.run_started_ms)
    behind = _trail_behind(c, evidence)
    if behind:
        return Verdict("orders_lost", False, f"{behind}: {counts}", waiting=True)
    if orders.sent == 0:
        return Verdict("orders_lost", False, f"no order was sent: {counts}", empty=True)
    problems = accounting_problems(orders)
    if orders.lost + orders.pending > limit:
        lost = f"{orders.lost} orders lost (at most {limit} allowed): {counts}"
        if orders.lost:
            lost += f"; lost: {ids_text(orders.lost_order_ids[:LOST_IDS_SHOWN], orders.lost)}"
        if orders.pending:
            lost += (
                f"; in flight at the cut-off and not answered since: "
                f"{ids_text(orders.pending_order_ids[:LOST_IDS_SHOWN], orders.pending)}"
            )
        problems.insert(0, lost)
    if problems:
        if orders.lost + orders.pending <= limit:
            problems.insert(0, f"the orders do not reconcile: {counts}")
        return Verdict("orders_lost", False, "; ".join(problems), waiting=orders.pending > 0)
    pending = f"; {orders.pending} still in flight" if orders.pending else ""
    unreported = orders.difference(RECEIVED_NOT_SENT)
    note = f"; besides, {unreported.describe()}" if unreported is not None else ""
    return Verdict(
        "orders_lost",
        True,
        f"{orders.lost} orders lost (at most {limit}): {counts}{pending}{note}",
        waiting=orders.pending > 0,
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
    """The sender's counters read at the cut-off equal its orders in the trail up to it."""
    assert spec.orders_reported is not None
    service = spec.orders_reported.service
    counted = evidence.cut_off.counted_by(service) if evidence.cut_off is not None else None
    if counted is None or counted.sent.value is None:
        why = counted.sent.problem if counted is not None and counted.sent.problem else ""
        metric = spec.orders_reported.metric
        return Verdict(
            "orders_reported",
            False,
            f"{service} exposes no order count ({metric})" + (f": {why}" if why else ""),
        )
    if counted.sent.value == 0:
        return Verdict(
            "orders_reported",
            False,
            f"{service} counted no order ({counted.sent.metric})",
            empty=True,
        )
    assert evidence.cut_off is not None
    counters = describe_counters(counted)
    behind = _trail_behind(c, evidence)
    if behind:
        return Verdict("orders_reported", False, f"{behind} ({counters})", waiting=True)
    if not evidence.cut_off.still:
        return Verdict(
            "orders_reported",
            False,
            f"{service}'s counters changed between every two reads around the cut-off "
            f"({evidence.cut_off.reads} tries): it kept counting, so they cannot be compared "
            f"with the trail exactly; stop its orders before the checks ({counters})",
        )
    trail = c.orders.sender(counted.source)
    since = (
        f" since its start ({_relative_to_run(trail.since_ms - evidence.run_started_ms)})"
        if trail is not None and trail.since_ms is not None and evidence.run_started_ms is not None
        else ""
    )
    held = (
        f"the audit trail holds {trail.sent} sent, {trail.acknowledged} acknowledged, "
        f"{trail.failed} given up by {counted.source}{since}"
        if trail is not None
        else f"the audit trail holds no order of {counted.source}"
    )
    problems = counter_problems(c.orders, counted)
    if problems:
        return Verdict("orders_reported", False, f"{counters}; {held}: " + "; ".join(problems))
    return Verdict("orders_reported", True, f"{counters}; {held}: the same")


def _trail_behind(c: Correlation, evidence: Evidence) -> str:
    """Why the orders up to the cut-off cannot be counted yet: a source whose events up to it
    may still be on their way (empty when every source that says how far it is, is past it)."""
    if evidence.cut_off is None:
        return ""
    behind = c.sources_behind(evidence.cut_off.at_ms)
    if not behind:
        return ""
    started = evidence.run_started_ms

    def when(at_ms: int | None) -> str:
        if at_ms is None or started is None:
            return f"{at_ms} ms"
        return f"run +{(at_ms - started) / 1000:.2f} s"

    marks = ", ".join(f"{s.source} only to {when(s.complete_to_ms)}" for s in behind)
    return (
        f"the audit trail is not complete up to the cut-off ({when(evidence.cut_off.at_ms)}): "
        f"it holds the events of {marks}, and the rest may still be on their way"
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
        "sources": [
            {
                "source": s.source,
                "complete_to_ms_epoch": s.complete_to_ms,
                "complete_to_run_ms": run_ms(s.complete_to_ms),
                "closed": s.closed,
            }
            for s in c.sources
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
    cut_off = await run_cut_off(ctx)
    evidence = Evidence(
        faults=tuple(audit.faults),
        emitted=tuple(audit.emitted),
        cut_off=cut_off,
        run_started_ms=ctx.started_epoch_ms,
    )
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
                cut_off.at_ms,
                slack_ms=round(spec.slack * 1000),
                in_flight_ms=round(spec.in_flight * 1000),
            )
            correlation, verdicts = answer, evaluate(spec, answer, evidence)
            settled = (
                all(v.ok and not v.waiting for v in verdicts)
                and accounting_settled(answer.orders, cut_off)
                and not answer.sources_behind(cut_off.at_ms)
            )
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
        "cut_off": cut_off.as_json(ctx.started_epoch_ms),
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


async def run_cut_off(ctx: RunContext) -> OrderCutOff:
    """The run's order cut-off: taken now by the first audit check, then the same for all.

    The counters read are those of every ``orders_reported`` criterion of the run's
    checks, whichever check asks for them, so that each is read at the cut-off.
    """
    audit = ctx.audit
    if audit.cut_off is not None:
        return audit.cut_off
    wanted = _counted_senders(ctx)
    clock = ctx.deps.wall_clock_ms

    async def read() -> tuple[SenderCounters, ...]:
        return tuple([await _read_counters(ctx, reported) for reported in wanted])

    async def next_ms(after_ms: int) -> None:
        for _ in range(CLOCK_TICK_TRIES):  # a frozen (fake) clock: go on after a few tries
            if clock() > after_ms:
                return
            await asyncio.sleep(CLOCK_TICK_S)

    cut_off = await take_cut_off(read, clock, next_ms)
    audit.cut_off = cut_off
    ctx.journal.record("audit.cut_off", **cut_off.as_json(ctx.started_epoch_ms))
    return cut_off


def _counted_senders(ctx: RunContext) -> list[OrdersReportedSpec]:
    wanted: dict[tuple[str, str, str | None, str | None, str], OrdersReportedSpec] = {}
    for check in ctx.loaded.model.checks:
        if not isinstance(check, AuditCheck):
            continue
        resolved = ctx.resolve(check)
        assert isinstance(resolved, AuditCheck)
        reported = resolved.audit.orders_reported
        if reported is not None:
            key = (
                reported.service,
                reported.metric,
                reported.acknowledged_metric,
                reported.failed_metric,
                reported.source or reported.service,
            )
            wanted.setdefault(key, reported)
    return list(wanted.values())


async def _read_counters(ctx: RunContext, reported: OrdersReportedSpec) -> SenderCounters:
    url = ctx.loaded.model.services[reported.service].metrics_url
    assert url is not None

    async def reading(metric: str | None) -> CounterReading | None:
        if metric is None:
            return None
        try:
            return CounterReading(metric, await ctx.deps.read_metric(url, metric, {}))
        except Exception as exc:
            return CounterReading(metric, None, str(exc) or repr(exc))

    sent = await reading(reported.metric)
    assert sent is not None
    return SenderCounters(
        service=reported.service,
        source=reported.source or reported.service,
        sent=sent,
        acknowledged=await reading(reported.acknowledged_metric),
        failed=await reading(reported.failed_metric),
    )


def _relative_to_run(offset_ms: float) -> str:
    """``run +1.20 s``, or ``7.66 s before the run`` for a service started earlier."""
    if offset_ms < 0:
        return f"{-offset_ms / 1000:.2f} s before the run"
    return f"run +{offset_ms / 1000:.2f} s"
