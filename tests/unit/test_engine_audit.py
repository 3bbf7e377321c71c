"""The run's audit trail: faults reported at injection and undo, and the ``audit`` check."""

from __future__ import annotations

import dataclasses
import itertools
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from engine_fakes import harness
from engine_scenarios import scenario

from test_coordinator.adapters.audit import RecordingAuditSink
from test_coordinator.engine.audit_check import Evidence, evaluate
from test_coordinator.engine.audit_trail import ReportedFault
from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.ports import MetricReader
from test_coordinator.engine.results import Outcome, RunResult, Status
from test_coordinator.ports.audit import (
    ACKNOWLEDGED_NOT_RECEIVED,
    COORDINATOR_SOURCE,
    FAULT_INJECTED,
    FAULT_UNDONE,
    AuditEvent,
    AuditUnavailable,
    ChaosEvent,
    Correlation,
    FaultObservation,
    FaultRecord,
    OrderAccounting,
    OrderDifference,
    Outage,
    SenderOrders,
    SourceProgress,
    fault_injected,
)
from test_coordinator.scenario.checks import AuditCheckSpec

WALL_MS = 1_700_000_000_000
AUDIT = """
audit:
  url: http://audit.invalid
  affects: {api: [trading-engine]}
"""
METRICS_SERVICES = """
services:
  api:
    process: {command: fake-api}
    health: {http: {url: "fake://api/health"}}
    metrics_url: fake://api/metrics
  db:
    process: {command: fake-db}
    health: {http: {url: "fake://db/health"}}
"""


class FakeAuditLink:
    """A RecordingAuditSink plus correlations answered by ``answer`` (from what was emitted)."""

    def __init__(self, answer: Callable[[FakeAuditLink], Correlation] | None = None) -> None:
        self.recording = RecordingAuditSink()
        self.answer = answer or (lambda link: correlation_of(link.recording.events))
        self.questions: list[tuple[str, int, int]] = []
        self.closed = False

    @property
    def sink(self) -> RecordingAuditSink:
        return self.recording

    async def correlate(
        self, correlation_id: str, from_ms: int, to_ms: int, *, slack_ms: int, in_flight_ms: int
    ) -> Correlation:
        self.questions.append((correlation_id, from_ms, to_ms))
        return self.answer(self)

    def stats(self) -> Mapping[str, Any]:
        return {"delivered": len(self.recording.events), "pending": 0}

    async def close(self) -> None:
        self.closed = True


def correlation_of(
    events: list[AuditEvent],
    *,
    observed: bool = True,
    orders: OrderAccounting | None = None,
    outages: tuple[Outage, ...] = (),
) -> Correlation:
    """What a correlator holding ``events`` would say, every fault observed (or none)."""
    injected = [e for e in events if e.kind == FAULT_INJECTED]
    undone = {e.data["fault_id"]: e.at_ms_epoch for e in events if e.kind == FAULT_UNDONE}
    faults = tuple(
        FaultRecord(
            fault_id=e.data["fault_id"],
            target=e.data["target"],
            fault=e.data["fault"],
            injected_at_ms=e.at_ms_epoch,
            undone_at_ms=undone.get(e.data["fault_id"]),
            correlation_id=e.correlation_id,
            observations=tuple(
                FaultObservation(s, observed, delay_ms=40 if observed else None)
                for s in e.data.get("affects", [])
            ),
        )
        for e in injected
    )
    chaos = tuple(
        ChaosEvent(e.kind, e.at_ms_epoch, e.source, e.correlation_id, e.data.get("target"), e.data)
        for e in events
    )
    return Correlation(
        correlation_id=events[0].correlation_id if events else None,
        from_ms=WALL_MS,
        to_ms=WALL_MS + 10_000,
        event_count=len(events),
        chaos_events=chaos,
        faults=faults,
        outages=outages,
        orders=orders or OrderAccounting(sent=10, acknowledged=10, received=10),
    )


async def audited_run(
    body: str,
    tmp_path: Path,
    link: FakeAuditLink | None = None,
    *,
    metrics: Mapping[str, float] | None = None,
    read_metric: MetricReader | None = None,
) -> tuple[RunResult, FakeAuditLink, list[tuple[str, Path]]]:
    h = harness(metrics=metrics)
    link = link or FakeAuditLink()
    made: list[tuple[str, Path]] = []

    def factory(url: str, run_dir: Path) -> FakeAuditLink:
        made.append((url, run_dir))
        return link

    deps = dataclasses.replace(
        h.deps,
        audit_link=factory,
        wall_clock_ms=lambda: WALL_MS,
        read_metric=read_metric or h.deps.read_metric,
    )
    loaded = scenario(AUDIT + textwrap.dedent(body), services=METRICS_SERVICES)
    result = await run_scenario(loaded, deps, RunOptions("run-1", 1, tmp_path))
    return result, link, made


def events_of(result: RunResult, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in result.events if e.kind == kind]


async def test_each_fault_is_reported_at_injection_and_at_its_end(tmp_path: Path) -> None:
    """pause/resume, a restart and a kill left to the undo: injected and undone, paired by id."""
    result, link, made = await audited_run(
        """
        steps:
          - {name: freeze, pause: api}
          - resume: api
          - {name: bounce, restart: db}
          - {name: shoot, kill: api}
        """,
        tmp_path,
    )

    assert Outcome.PASSED == result.outcome, result.reason
    assert [("http://audit.invalid", tmp_path / "run-1")] == made
    sent = link.recording.events
    assert [
        (FAULT_INJECTED, "api", "pause"),
        (FAULT_UNDONE, "api", None),
        (FAULT_INJECTED, "db", "restart"),
        (FAULT_UNDONE, "db", None),
        (FAULT_INJECTED, "api", "kill SIGKILL"),
        (FAULT_UNDONE, "api", None),
    ] == [(e.kind, e.data["target"], e.data.get("fault")) for e in sent]
    assert {"run-1"} == {e.correlation_id for e in sent}
    assert {COORDINATOR_SOURCE} == {e.source for e in sent}
    assert {WALL_MS} == {e.at_ms_epoch for e in sent}
    ids = [e.data["fault_id"] for e in sent]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[4] == ids[5]
    assert 3 == len(set(ids))
    assert ["trading-engine"] == sent[0].data["affects"]
    assert "affects" not in sent[2].data  # db is not listed: the correlator decides
    assert "freeze" == sent[0].data["step"]
    assert link.closed
    assert 6 == len(events_of(result, "audit.emitted"))
    [reporter] = events_of(result, "audit.reporter")
    assert 6 == reporter["emitted"] == reporter["delivered"]


async def test_the_undo_at_the_end_reports_the_fault_undone_before_services_stop(
    tmp_path: Path,
) -> None:
    result, link, _ = await audited_run("steps:\n  - stop: api\n", tmp_path)

    assert [FAULT_INJECTED, FAULT_UNDONE] == link.recording.kinds()
    kinds = [e.kind for e in result.events]
    assert kinds.index("undo.finished") < kinds.index("audit.reporter")


async def test_without_audit_settings_nothing_is_reported(tmp_path: Path) -> None:
    h = harness()
    made: list[str] = []
    deps = dataclasses.replace(h.deps, audit_link=lambda url, run_dir: made.append(url))  # type: ignore[arg-type,func-returns-value]
    result = await run_scenario(
        scenario("steps:\n  - restart: api\n"), deps, RunOptions("r", 1, tmp_path)
    )

    assert Outcome.PASSED == result.outcome
    assert [] == made
    assert [] == events_of(result, "audit.emitted")


async def test_a_sink_that_raises_does_not_break_the_run(tmp_path: Path) -> None:
    link = FakeAuditLink()

    def broken(event: AuditEvent) -> None:
        raise RuntimeError("sink exploded")

    link.recording.emit = broken  # type: ignore[method-assign]
    result, _, _ = await audited_run("steps:\n  - restart: api\n", tmp_path, link)

    assert Outcome.PASSED == result.outcome
    assert [] == events_of(result, "audit.emitted")


async def test_the_audit_url_can_be_replaced_for_a_run(tmp_path: Path) -> None:
    h = harness()
    made: list[str] = []

    def factory(url: str, run_dir: Path) -> FakeAuditLink:
        made.append(url)
        return FakeAuditLink()

    deps = dataclasses.replace(h.deps, audit_link=factory)
    options = RunOptions("r", 1, tmp_path, audit_url="http://elsewhere:1")
    await run_scenario(scenario(AUDIT + "steps:\n  - wait: 0ms\n"), deps, options)

    assert ["http://elsewhere:1"] == made


async def test_audit_check_passes_and_carries_the_correlation(tmp_path: Path) -> None:
    outage = Outage("trading-engine", "exchange", WALL_MS + 100, WALL_MS + 900)
    link = FakeAuditLink(lambda link: correlation_of(link.recording.events, outages=(outage,)))
    result, link, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit:
              faults_observed: true
              coordinator_events: all
              orders_lost: {max: 0}
              outage: {service: trading-engine, dependency: exchange, max: 1s}
        """,
        tmp_path,
        link,
    )

    [check] = result.checks
    assert Status.PASSED == check.status, check.detail
    assert ("run-1", WALL_MS, WALL_MS) == link.questions[-1]
    summary = check.value["correlation"]
    assert 800 == summary["outages"][0]["duration_ms"]
    assert 100 == summary["outages"][0]["started_at_run_ms"]
    assert 0 == summary["orders"]["lost"]
    assert [True] == [f["observed_by_all"] for f in summary["faults"]]
    assert ["faults_observed", "orders_lost", "outage", "coordinator_events"] == [
        c["criterion"] for c in check.value["criteria"]
    ]


async def test_unobserved_faults_and_lost_orders_fail_with_the_reason(tmp_path: Path) -> None:
    lost = OrderAccounting(sent=20, acknowledged=17, failed=3, lost=3, lost_order_ids=("a", "b"))
    link = FakeAuditLink(
        lambda link: correlation_of(link.recording.events, observed=False, orders=lost)
    )
    result, _, _ = await audited_run(
        """
        steps:
          - {name: bounce, restart: api}
        checks:
          - audit: {faults_observed: true, orders_lost: {max: 0}, settle: 0ms}
        """,
        tmp_path,
        link,
    )

    assert Outcome.FAILED == result.outcome
    [check] = result.checks
    assert "faults not observed: restart of api (bounce): not observed by trading-engine" in (
        check.detail
    )
    assert "3 orders lost (at most 0 allowed)" in check.detail
    assert "lost: a, b" in check.detail
    assert "check 1" in result.reason and "orders lost" in result.reason
    assert 3 == check.value["correlation"]["orders"]["lost"]


async def test_the_check_asks_again_until_orders_in_flight_settle(tmp_path: Path) -> None:
    """Two orders in flight at the cut-off, no word of them yet; then both acknowledged."""
    answers = [
        OrderAccounting(sent=10, acknowledged=8, in_flight=2, received=8, pending=2),
        OrderAccounting(sent=10, acknowledged=8, in_flight=2, received=8, acknowledged_after=2),
    ]

    def answer(link: FakeAuditLink) -> Correlation:
        orders = answers.pop(0) if len(answers) > 1 else answers[0]
        return correlation_of(link.recording.events, orders=orders)

    result, link, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {orders_lost: {max: 0}, settle: 5s, every: 1ms}
        """,
        tmp_path,
        FakeAuditLink(answer),
    )

    [check] = result.checks
    assert Status.PASSED == check.status, check.detail
    assert 2 == len(link.questions)
    assert "since, of the 2 without an outcome at it: 2 acknowledged, 0 given up" in check.detail
    assert "still" not in check.detail


async def test_an_unanswering_correlator_fails_the_check_after_settle(tmp_path: Path) -> None:
    def answer(link: FakeAuditLink) -> Correlation:
        raise AuditUnavailable("audit correlator at http://audit.invalid: refused")

    result, _, _ = await audited_run(
        "steps:\n  - restart: api\nchecks:\n  - audit: {faults_observed: true, settle: 10ms}\n",
        tmp_path,
        FakeAuditLink(answer),
    )

    [check] = result.checks
    assert Status.FAILED == check.status
    assert "no answer from the audit correlator within 10ms" in check.detail
    assert "refused" in check.detail


ENGINE_COUNTERS = {
    "orders_sent_total": 10.0,
    "orders_acknowledged_total": 9.0,
    "orders_failed_total": 1.0,
}


def trail_of_api(
    sent: int = 10,
    acknowledged: int = 9,
    failed: int = 1,
    *,
    events: list[AuditEvent] | None = None,
) -> Correlation:
    orders = OrderAccounting(
        sent=sent,
        acknowledged=acknowledged,
        failed=failed,
        received=acknowledged,
        lost=failed,
        lost_order_ids=("api-1-7",)[:failed],
        senders=(SenderOrders("api", WALL_MS - 50, sent, acknowledged, failed),),
    )
    return correlation_of(events or [], orders=orders)


async def test_orders_reported_compares_the_counters_at_the_cut_off_with_the_trail(
    tmp_path: Path,
) -> None:
    result, link, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {orders_reported: {service: api}, settle: 0ms}
        """,
        tmp_path,
        FakeAuditLink(lambda link: trail_of_api()),
        metrics=ENGINE_COUNTERS,
    )

    [check] = result.checks
    assert Status.PASSED == check.status, check.detail
    assert (
        "api counted at the cut-off: orders_sent_total 10, orders_acknowledged_total 9, "
        "orders_failed_total 1; the audit trail holds 10 sent, 9 acknowledged, 1 given up by api"
    ) in check.detail
    cut_off = check.value["cut_off"]
    assert (WALL_MS, True) == (cut_off["at_ms_epoch"], cut_off["counters_still"])
    assert {"metric": "orders_acknowledged_total", "value": 9.0} == (
        cut_off["counters"][0]["acknowledged"]
    )
    assert [("run-1", WALL_MS, WALL_MS)] == link.questions  # the trail up to the cut-off
    assert "given up by api since its start (0.05 s before the run): the same" in check.detail


async def test_counters_that_differ_from_the_trail_fail_and_say_by_how_much(
    tmp_path: Path,
) -> None:
    result, _, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {orders_reported: {service: api, metric: orders_sent_total}, settle: 0ms}
        """,
        tmp_path,
        FakeAuditLink(lambda link: trail_of_api()),
        metrics={**ENGINE_COUNTERS, "orders_sent_total": 12.0},
    )

    [check] = result.checks
    assert Status.FAILED == check.status
    assert (
        "orders_sent_total is 12 at the cut-off, but the audit trail holds 10 orders sent by "
        "api: 2 of its order events are missing from the trail"
    ) in check.detail


async def test_every_audit_check_of_a_run_shares_one_cut_off_and_its_counters(
    tmp_path: Path,
) -> None:
    """Orders go on after the cut-off: a later check still judges the counters read at it."""
    reads: list[str] = []

    async def read_metric(url: str, name: str, labels: Mapping[str, str]) -> float | None:
        reads.append(name)
        return ENGINE_COUNTERS[name] + (100.0 if len(reads) > 6 else 0.0)

    result, link, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {faults_observed: true, settle: 0ms}
          - audit: {orders_lost: {max: 1}, orders_reported: {service: api}, settle: 0ms}
        """,
        tmp_path,
        FakeAuditLink(lambda link: trail_of_api()),
        read_metric=read_metric,
    )

    first, second = result.checks
    assert Status.PASSED == second.status, second.detail
    assert 6 == len(reads)  # one pair of reads of three counters, at the first audit check
    assert first.value["cut_off"] == second.value["cut_off"]
    assert 1 == len({to_ms for _, _, to_ms in link.questions})
    [taken] = events_of(result, "audit.cut_off")
    assert WALL_MS == taken["at_ms_epoch"]


async def test_a_check_without_order_criteria_still_waits_for_the_orders_to_catch_up(
    tmp_path: Path,
) -> None:
    """Events on their way: the first answer lags behind the counters read at the cut-off;
    the check asks again, so that its data shows the same numbers as the order checks."""
    answers = [(8, 7), (10, 9)]

    def answer(link: FakeAuditLink) -> Correlation:
        sent, acknowledged = answers.pop(0) if len(answers) > 1 else answers[0]
        return trail_of_api(sent, acknowledged, events=link.recording.events)

    result, link, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {coordinator_events: all, settle: 5s, every: 1ms}
          - audit: {orders_reported: {service: api}, settle: 0ms}
        """,
        tmp_path,
        FakeAuditLink(answer),
        metrics=ENGINE_COUNTERS,
    )

    first, second = result.checks
    assert (Status.PASSED, Status.PASSED) == (first.status, second.status), second.detail
    assert 3 == len(link.questions)  # twice for the first check, once for the second
    assert 10 == first.value["correlation"]["orders"]["sent"]
    assert first.value["correlation"]["orders"] == second.value["correlation"]["orders"]


async def test_a_check_waits_until_every_source_is_delivered_past_the_cut_off(
    tmp_path: Path,
) -> None:
    """The first answer holds fewer orders, and they reconcile, but the engine's events are
    delivered only to before the cut-off: the check asks again, and reports the later answer."""
    answers = [(8, SourceProgress("api", WALL_MS - 50)), (10, SourceProgress("api", WALL_MS + 5))]

    def answer(link: FakeAuditLink) -> Correlation:
        sent, progress = answers.pop(0) if len(answers) > 1 else answers[0]
        orders = OrderAccounting(sent=sent, acknowledged=sent, received=sent)
        return dataclasses.replace(
            correlation_of(link.recording.events, orders=orders), sources=(progress,)
        )

    result, link, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {faults_observed: true, settle: 5s, every: 1ms}
          - audit: {orders_lost: {max: 0}, settle: 0ms}
        """,
        tmp_path,
        FakeAuditLink(answer),
    )

    first, second = result.checks
    assert (Status.PASSED, Status.PASSED) == (first.status, second.status), second.detail
    assert 3 == len(link.questions)  # twice for the first check, once for the second
    assert 10 == first.value["correlation"]["orders"]["sent"]
    assert first.value["correlation"]["orders"] == second.value["correlation"]["orders"]


@pytest.mark.parametrize(
    ("progress", "judged"),
    [
        (SourceProgress("api", WALL_MS - 1), False),
        (SourceProgress("api", WALL_MS), True),
        (SourceProgress("api", WALL_MS - 1, closed=True), True),
        (SourceProgress("api", None), True),
    ],
    ids=["behind", "at-the-cut-off", "closed", "does-not-say"],
)
async def test_orders_are_not_judged_on_a_trail_behind_the_cut_off(
    tmp_path: Path, progress: SourceProgress, judged: bool
) -> None:
    def answer(link: FakeAuditLink) -> Correlation:
        return dataclasses.replace(correlation_of(link.recording.events), sources=(progress,))

    result, _, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {orders_lost: {max: 0}, settle: 20ms, every: 1ms}
        """,
        tmp_path,
        FakeAuditLink(answer),
    )

    [check] = result.checks
    assert (Status.PASSED if judged else Status.FAILED) == check.status, check.detail
    if not judged:
        assert "not complete up to the cut-off" in check.detail
        assert "api only to run" in check.detail


async def test_counters_that_never_stand_still_cannot_be_compared(tmp_path: Path) -> None:
    count = itertools.count()

    async def read_metric(url: str, name: str, labels: Mapping[str, str]) -> float | None:
        return float(next(count))

    result, _, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {orders_reported: {service: api}, settle: 0ms}
        """,
        tmp_path,
        FakeAuditLink(lambda link: trail_of_api()),
        read_metric=read_metric,
    )

    [check] = result.checks
    assert Status.FAILED == check.status
    assert "api's counters changed between every two reads around the cut-off (25 tries)" in (
        check.detail
    )
    assert check.value["cut_off"]["counters_still"] is False


async def test_orders_that_do_not_reconcile_fail_and_are_named(tmp_path: Path) -> None:
    unreceived = OrderDifference(ACKNOWLEDGED_NOT_RECEIVED, 1, ("api-1-3",))
    orders = OrderAccounting(sent=10, acknowledged=10, received=9, differences=(unreceived,))
    result, _, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {orders_lost: {max: 0}, settle: 0ms}
        """,
        tmp_path,
        FakeAuditLink(lambda link: correlation_of(link.recording.events, orders=orders)),
    )

    [check] = result.checks
    assert Status.FAILED == check.status
    assert check.detail.startswith("the orders do not reconcile: at the cut-off")
    assert (
        "1 order acknowledged but never reported received by the exchange: api-1-3" in check.detail
    )


async def test_orders_in_flight_at_the_cut_off_without_an_outcome_count_as_lost(
    tmp_path: Path,
) -> None:
    orders = OrderAccounting(
        sent=10, acknowledged=9, in_flight=1, received=9, pending=1, pending_order_ids=("o-10",)
    )
    result, link, _ = await audited_run(
        """
        steps:
          - restart: api
        checks:
          - audit: {orders_lost: {max: 0}, settle: 20ms, every: 1ms}
        """,
        tmp_path,
        FakeAuditLink(lambda link: correlation_of(link.recording.events, orders=orders)),
    )

    [check] = result.checks
    assert Status.FAILED == check.status
    assert "in flight at the cut-off and not answered since: o-10" in check.detail
    assert len(link.questions) > 1  # it waited for an answer before it judged


def spec(**criteria: Any) -> AuditCheckSpec:
    return AuditCheckSpec.model_validate(criteria)


def test_a_fault_the_correlator_never_heard_of_is_not_observed() -> None:
    reported = ReportedFault("f1", "exchange", "restart", "bounce")

    [verdict] = evaluate(
        spec(faults_observed=True), correlation_of([]), Evidence(faults=[reported])
    )

    assert not verdict.ok
    assert (
        "faults not observed: restart of exchange (bounce): "
        "the audit correlator has no record of it" == verdict.detail
    )


def test_coordinator_events_missing_from_the_trail_are_listed() -> None:
    emitted = [
        fault_injected(run_id="r", fault_id="f1", target="exchange", fault="restart", at_ms=1),
        fault_injected(run_id="r", fault_id="f2", target="engine", fault="kill", at_ms=2),
    ]

    [verdict] = evaluate(
        spec(coordinator_events="all"), correlation_of(emitted[:1]), Evidence(emitted=emitted)
    )

    assert not verdict.ok
    assert "1 of the 2 events" in verdict.detail and "fault.injected engine" in verdict.detail


@pytest.mark.parametrize(
    ("outage", "ok", "words"),
    [
        (Outage("engine", "exchange", 0, 4_000), True, "lasted 4000 ms at the longest"),
        (Outage("engine", "exchange", 0, 6_000), False, "more than the allowed 5s"),
        (Outage("engine", "exchange", 0, None), False, "has not ended"),
        (Outage("engine", "database", 0, 60_000), False, "reported no outage"),
    ],
)
def test_outage_criterion(outage: Outage, ok: bool, words: str) -> None:
    [verdict] = evaluate(
        spec(outage={"service": "engine", "dependency": "exchange", "max": "5s"}),
        correlation_of([], outages=(outage,)),
        Evidence(),
    )

    assert ok == verdict.ok
    assert words in verdict.detail
    assert verdict.empty == ("no outage" in words)


@pytest.mark.parametrize(
    ("criterion", "words"),
    [
        ({"faults_observed": True}, "reported no fault to observe"),
        ({"orders_lost": {"max": 0}}, "no order was sent"),
        ({"coordinator_events": "all"}, "reported no event"),
    ],
)
def test_a_criterion_with_nothing_to_judge_does_not_pass(
    criterion: dict[str, object], words: str
) -> None:
    """With audit events dropped, "no order lost" of 0 orders is not a pass."""
    nothing = correlation_of([], orders=OrderAccounting(sent=0, acknowledged=0, received=0))

    [verdict] = evaluate(spec(**criterion), nothing, Evidence())

    assert not verdict.ok and verdict.empty
    assert words in verdict.detail


def test_events_min_counts_the_window() -> None:
    [verdict] = evaluate(spec(events_min=5), correlation_of([]), Evidence())

    assert not verdict.ok
    assert "0 events in the window, fewer than 5" == verdict.detail


async def test_setup_starts_a_service_once_its_dependencies_are_healthy(tmp_path: Path) -> None:
    h = harness()
    services = METRICS_SERVICES.replace(
        "    process: {command: fake-api}", "    depends_on: db\n    process: {command: fake-api}"
    )
    result = await run_scenario(
        scenario("steps:\n  - wait: 0ms\n", services=services), h.deps, RunOptions("r", 1, tmp_path)
    )

    assert Outcome.PASSED == result.outcome, result.reason
    assert [("start", "db"), ("start", "api")] == [c for c in h.backend.calls if c[0] == "start"]
