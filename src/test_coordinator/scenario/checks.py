"""Checks: what must be true of the whole run, judged after the last step."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from test_coordinator.domain.compare import impossible
from test_coordinator.scenario.probes import Condition
from test_coordinator.scenario.types import (
    Duration,
    ServiceName,
    Strict,
    Text,
    checked_regex,
    key_discriminator,
    kind_of,
)


class CheckBase(Strict):
    name: Text | None = None
    allow_empty: bool = False
    """A check with nothing to judge (no fault, no request, no order, no log) fails, unless
    this says that nothing is an acceptable answer."""


class RecoveryTimeSpec(Strict):
    """Each fault recovered within ``max`` of its injection, and within ``max_from_restore``
    of the ``resume`` or ``start`` that restored it: every fault, or those on ``service``,
    or of ``step``."""

    service: ServiceName | None = None
    step: Text | None = None
    max: Duration | None = None
    max_from_restore: Duration | None = None
    """From the restore (the ``resume`` or ``start`` step performed) to the first healthy
    probe; judges the faults a resume or a start restores (not a restart, which restores
    itself)."""

    @model_validator(mode="after")
    def _some_bound(self) -> RecoveryTimeSpec:
        if self.max is None and self.max_from_restore is None:
            raise ValueError("a recovery_time check needs at least one of max, max_from_restore")
        return self


class RecoveryTimeCheck(CheckBase):
    recovery_time: RecoveryTimeSpec


class MetricSpec(Strict):
    """A Prometheus sample from the service's ``metrics_url`` (or ``url``) against bounds."""

    service: ServiceName | None = None
    url: Text | None = None
    metric: Text = Field(alias="name")
    labels: dict[str, Text] = Field(default_factory=dict)
    min: float | None = None
    max: float | None = None
    equals: float | None = None

    @model_validator(mode="after")
    def _source_and_bound(self) -> MetricSpec:
        if (self.service is None) == (self.url is None):
            raise ValueError("a metric check needs exactly one of service, url")
        if self.min is None and self.max is None and self.equals is None:
            raise ValueError("a metric check needs at least one of min, max, equals")
        never = impossible(equals=self.equals, min=self.min, max=self.max)
        if never is not None:
            raise ValueError(never)
        return self


class MetricCheck(CheckBase):
    metric: MetricSpec


class LogSpec(Strict):
    """A regular expression that must be ``present`` in, or ``absent`` from, the service's log
    (with ``after``: the part of it written after that step started)."""

    service: ServiceName
    present: Text | None = None
    absent: Text | None = None
    min_count: int | None = Field(None, ge=1)
    """With ``present``: at least this many lines must match (default 1)."""
    after: Text | None = None
    """A step's name: only the lines written after that step started count."""

    @field_validator("present", "absent")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return checked_regex(value)

    @model_validator(mode="after")
    def _one_pattern(self) -> LogSpec:
        if (self.present is None) == (self.absent is None):
            raise ValueError("a log check needs exactly one of present, absent")
        if self.min_count is not None and self.present is None:
            raise ValueError("min_count counts the lines that match present; allowed with: present")
        return self


class LogCheck(CheckBase):
    log: LogSpec


class WindowSpec(Strict):
    """The part of the run from ``before`` ahead of step ``around`` to ``after`` it started."""

    around: Text
    before: Duration = 0.0
    after: Duration = 5.0


class LoadCheckSpec(Strict):
    """The load's error rate and latency percentiles, over the run or a window, against maxima."""

    generator: Text | None = None
    window: WindowSpec | None = None
    max_error_rate: float | None = Field(None, ge=0, le=1)
    min_error_rate: float | None = Field(None, ge=0, le=1)
    """At least this error rate: proof that the fault actually hurt the load."""
    max_p50: Duration | None = None
    max_p95: Duration | None = None
    max_p99: Duration | None = None
    min_requests: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> LoadCheckSpec:
        bounds = (
            self.max_error_rate,
            self.min_error_rate,
            self.max_p50,
            self.max_p95,
            self.max_p99,
        )
        if all(bound is None for bound in bounds):
            raise ValueError(
                "a load check needs at least one of max_error_rate, min_error_rate, "
                "max_p50, max_p95, max_p99"
            )
        low, high = self.min_error_rate, self.max_error_rate
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"min_error_rate {low:g} is above max_error_rate {high:g}: no load can satisfy both"
            )
        return self


class LoadCheck(CheckBase):
    load: LoadCheckSpec


class OrdersLostSpec(Strict):
    """The orders sent up to the run's cut-off reconcile (each one acknowledged, failed, in
    flight or unanswered at it; every one acknowledged received by the exchange), and at most
    ``max`` are lost: never acknowledged nor received by the exchange."""

    max: int = Field(0, ge=0)


class OutageSpec(Strict):
    """The longest outage ``service`` reported (of ``dependency``, or of any) lasted at most
    ``max``, and none is still open. Names are as the services report themselves."""

    service: Text
    dependency: Text | None = None
    max: Duration


class OrdersReportedSpec(Strict):
    """``service``'s own order counters, read at the run's cut-off, equal what the audit trail
    holds of its orders at the cut-off (those since its latest start): ``metric`` the orders
    sent, ``acknowledged_metric`` and ``failed_metric`` (None: not compared) those acknowledged
    and given up. ``source``: the service as it reports itself (default: its name)."""

    service: ServiceName
    metric: Text = "orders_sent_total"
    acknowledged_metric: Text | None = "orders_acknowledged_total"
    failed_metric: Text | None = "orders_failed_total"
    source: Text | None = None


AUDIT_CRITERIA = (
    "faults_observed",
    "orders_lost",
    "outage",
    "coordinator_events",
    "orders_reported",
    "events_min",
)


class AuditCheckSpec(Strict):
    """What the audit correlator must say about this run (run id, from the run's start to
    its cut-off: the moment the first audit check began, the same for every check).

    The check asks again until every criterion holds or ``settle`` has passed,
    so late events and orders in flight at the cut-off are given their time.
    """

    faults_observed: bool = False
    orders_lost: OrdersLostSpec | None = None
    outage: OutageSpec | None = None
    coordinator_events: Literal["all"] | None = None
    orders_reported: OrdersReportedSpec | None = None
    events_min: int | None = Field(None, ge=1)
    settle: Duration = 5.0
    every: Duration = 0.25
    in_flight: Duration = 2.0
    slack: Duration = 5.0

    @model_validator(mode="after")
    def _some_criterion(self) -> AuditCheckSpec:
        if not self.criteria:
            raise ValueError(
                "an audit check needs at least one of faults_observed: true, orders_lost, "
                "outage, coordinator_events: all, orders_reported, events_min"
            )
        return self

    @property
    def criteria(self) -> tuple[str, ...]:
        """The criteria asked for, in a fixed order."""
        asked = {
            "faults_observed": self.faults_observed,
            "orders_lost": self.orders_lost is not None,
            "outage": self.outage is not None,
            "coordinator_events": self.coordinator_events is not None,
            "orders_reported": self.orders_reported is not None,
            "events_min": self.events_min is not None,
        }
        return tuple(name for name in AUDIT_CRITERIA if asked[name])


class AuditCheck(CheckBase):
    audit: AuditCheckSpec


class ProbeCheck(CheckBase):
    """A probe once, at the end; its value compared with equals, min/max or regex."""

    probe: Condition


CHECK_TYPES: dict[str, type[CheckBase]] = {
    "recovery_time": RecoveryTimeCheck,
    "metric": MetricCheck,
    "log": LogCheck,
    "load": LoadCheck,
    "probe": ProbeCheck,
    "audit": AuditCheck,
}
CHECK_KINDS = tuple(CHECK_TYPES)


def check_kind(check: CheckBase) -> str:
    return kind_of(check, CHECK_TYPES)


Check = Annotated[
    Annotated[RecoveryTimeCheck, Tag("check:recovery_time")]
    | Annotated[MetricCheck, Tag("check:metric")]
    | Annotated[LogCheck, Tag("check:log")]
    | Annotated[LoadCheck, Tag("check:load")]
    | Annotated[ProbeCheck, Tag("check:probe")]
    | Annotated[AuditCheck, Tag("check:audit")],
    Discriminator(
        key_discriminator("check", CheckBase, CHECK_TYPES),
        custom_error_type="check_kind",
        custom_error_message="a check needs exactly one kind key",
    ),
]
"""One check; which model is chosen by its kind key (tags are ``check:<kind>``)."""


def describe_check_text(check: CheckBase) -> str:
    """A short description: the check's name, or what it compares."""
    from test_coordinator.scenario.durations import format_duration

    if check.name:
        return check.name
    if isinstance(check, RecoveryTimeCheck):
        spec = check.recovery_time
        bounds = []
        if spec.max is not None:
            bounds.append(f"<= {format_duration(spec.max)}")
        if spec.max_from_restore is not None:
            bounds.append(f"<= {format_duration(spec.max_from_restore)} from the restore")
        return f"recovery time of {spec.service or 'every fault'} " + ", ".join(bounds)
    if isinstance(check, MetricCheck):
        return f"metric {check.metric.metric} of {check.metric.service or check.metric.url}"
    if isinstance(check, LogCheck):
        log = check.log
        after = f" after {log.after}" if log.after is not None else ""
        if log.present is not None:
            return f"log of {log.service} contains /{log.present}/{after}"
        return f"log of {log.service} lacks /{log.absent}/{after}"
    if isinstance(check, LoadCheck):
        return f"load {check.load.generator or ''}".rstrip()
    if isinstance(check, ProbeCheck):
        return f"probe {check.probe.describe()}"
    if isinstance(check, AuditCheck):
        return "audit: " + ", ".join(check.audit.criteria)
    return check_kind(check)
