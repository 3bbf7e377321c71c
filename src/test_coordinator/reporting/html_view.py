"""A run as the HTML report sees it, read from a journal document (journal.json's data).

The journal is parsed once, here, into frozen dataclasses; the page and the
timeline only read these. Every field is read defensively (``.get`` with a
default), so a journal from an older or newer coordinator still renders.

Health marks come from what the journal records about health: a service
healthy after its start, the first healthy probe after a fault, a broken
``always`` condition naming a service, and the steady-state and ``expect``
checks of health that name services.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class StepView:
    step_id: str
    name: str
    kind: str
    status: str
    started_ms: float | None
    ended_ms: float | None
    detail: str
    targets: tuple[str, ...]

    @property
    def duration_ms(self) -> float | None:
        if self.started_ms is None or self.ended_ms is None:
            return None
        return self.ended_ms - self.started_ms


@dataclass(frozen=True, slots=True)
class CheckView:
    index: int
    name: str
    kind: str
    status: str
    detail: str
    value: Any


@dataclass(frozen=True, slots=True)
class FaultView:
    """One injected fault and its recovery window (``recovered_ms`` None: never healthy)."""

    number: int
    service: str
    step_id: str
    step_name: str
    fault: str
    injected_ms: float
    recovered_ms: float | None
    detail: str
    restore: str = ""
    """What restores it (``resume``, ``start``), or ``""``: it restores itself (a restart)."""
    restored_ms: float | None = None
    restored_by: str = ""

    @property
    def recovery_ms(self) -> float | None:
        if self.recovered_ms is None:
            return None
        return round(self.recovered_ms - self.injected_ms, 3)

    @property
    def recovery_from_restore_ms(self) -> float | None:
        if self.recovered_ms is None or self.restored_ms is None:
            return None
        return round(self.recovered_ms - self.restored_ms, 3)

    @property
    def anchor(self) -> str:
        return f"fault-{self.number}"


@dataclass(frozen=True, slots=True)
class HealthMark:
    service: str
    at_ms: float
    healthy: bool
    what: str


@dataclass(frozen=True, slots=True)
class ServiceStart:
    service: str
    at_ms: float
    identity: str
    """Which incarnation started: ``pid 42``, a container id."""
    step: str


@dataclass(frozen=True, slots=True)
class Violation:
    at_ms: float
    step: str
    detail: str
    service: str | None


@dataclass(frozen=True, slots=True)
class ObservedOutage:
    """An outage a service itself reported (found in an audit check's data), on the run's clock.

    Any mapping in an audit check's value with a ``service`` and a
    ``started_at_run_ms`` counts (``ended_at_run_ms``, ``dependency`` and
    ``duration_ms`` when present).
    """

    service: str
    dependency: str
    started_ms: float
    ended_ms: float | None
    duration_ms: float | None


@dataclass(frozen=True, slots=True)
class LoadSeries:
    """Requests sent and failed per bucket of ``bucket_ms``, from ``start_ms``.

    Read from a ``load.series`` journal event (data: ``step``, ``start_ms``,
    ``bucket_ms``, ``sent`` and ``errors`` as lists of counts).
    """

    start_ms: float
    bucket_ms: float
    sent: tuple[int, ...]
    errors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LoadWindow:
    """A load check judged over a window of the run (parsed from its result)."""

    check_index: int
    name: str
    status: str
    start_ms: float
    end_ms: float
    requests: int | None
    errors: int | None
    reasons: tuple[tuple[str, int], ...] = ()
    """The failed requests by reason (``timeout``, ``refused``, ``status 503`` ...)."""


@dataclass(frozen=True, slots=True)
class LoadView:
    step_id: str
    url: str
    rate: float | None
    started_ms: float
    stopped_ms: float | None
    series: LoadSeries | None


@dataclass(frozen=True, slots=True)
class UndoView:
    service: str
    action: str
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class EventView:
    seq: int
    at_ms: float
    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunView:
    run_id: str
    scenario: str
    file: str
    outcome: str
    reason: str
    seed: str
    started_at: str
    started_epoch_ms: float | None
    duration_ms: float
    setup: StepView | None
    steady_before: tuple[StepView, ...]
    steps: tuple[StepView, ...]
    steady_after: tuple[StepView, ...]
    checks: tuple[CheckView, ...]
    faults: tuple[FaultView, ...]
    undos: tuple[UndoView, ...]
    services: tuple[str, ...]
    health: tuple[HealthMark, ...]
    starts: tuple[ServiceStart, ...]
    violations: tuple[Violation, ...]
    outages: tuple[ObservedOutage, ...]
    loads: tuple[LoadView, ...]
    load_windows: tuple[LoadWindow, ...]
    events: tuple[EventView, ...]

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def all_steps(self) -> tuple[StepView, ...]:
        """Setup, steady state before, the steps, steady state after: in the order they ran."""
        head = (self.setup,) if self.setup is not None else ()
        return (*head, *self.steady_before, *self.steps, *self.steady_after)

    @property
    def audit_checks(self) -> tuple[CheckView, ...]:
        return tuple(c for c in self.checks if c.kind == "audit")

    @property
    def audit_events(self) -> tuple[EventView, ...]:
        return tuple(e for e in self.events if e.kind.startswith("audit."))

    @property
    def end_ms(self) -> float:
        """The right end of the timeline: the run's duration or its last event."""
        last = max((e.at_ms for e in self.events), default=0.0)
        return max(self.duration_ms, last, 1.0)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _step(raw: Any) -> StepView:
    data = _mapping(raw)
    return StepView(
        step_id=_text(data.get("step_id")),
        name=_text(data.get("name")),
        kind=_text(data.get("kind")),
        status=_text(data.get("status")) or "unknown",
        started_ms=_number(data.get("started_at_ms")),
        ended_ms=_number(data.get("ended_at_ms")),
        detail=_text(data.get("detail")),
        targets=tuple(_text(t) for t in _sequence(data.get("targets"))),
    )


def _check(raw: Any) -> CheckView:
    data = _mapping(raw)
    index = _number(data.get("index"))
    return CheckView(
        index=int(index) if index is not None else 0,
        name=_text(data.get("name")),
        kind=_text(data.get("kind")),
        status=_text(data.get("status")) or "unknown",
        detail=_text(data.get("detail")),
        value=data.get("value"),
    )


def _faults(raw: Iterable[Any]) -> tuple[FaultView, ...]:
    faults = []
    for number, item in enumerate(raw, start=1):
        data = _mapping(item)
        injected = _number(data.get("injected_at_ms"))
        if injected is None:
            continue
        faults.append(
            FaultView(
                number=number,
                service=_text(data.get("service")),
                step_id=_text(data.get("step_id")),
                step_name=_text(data.get("step_name")),
                fault=_text(data.get("fault")),
                injected_ms=injected,
                recovered_ms=_number(data.get("recovered_at_ms")),
                detail=_text(data.get("detail")),
                restore=_text(data.get("restore")),
                restored_ms=_number(data.get("restored_at_ms")),
                restored_by=_text(data.get("restored_by")),
            )
        )
    return tuple(faults)


def _events(raw: Iterable[Any]) -> tuple[EventView, ...]:
    events: list[EventView] = []
    for item in raw:
        data = _mapping(item)
        at = _number(data.get("at_ms"))
        seq = _number(data.get("seq"))
        events.append(
            EventView(
                seq=int(seq) if seq is not None else len(events) + 1,
                at_ms=at if at is not None else 0.0,
                kind=_text(data.get("kind")),
                data=_mapping(data.get("data")),
            )
        )
    return tuple(events)


def _epoch_ms(started_at: str) -> float | None:
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000.0


def _services(
    events: Sequence[EventView], faults: Sequence[FaultView], steps: Sequence[StepView]
) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for event in events:
        if event.kind == "setup.started":
            names.update((_text(s), None) for s in _sequence(event.data.get("services")))
        service = event.data.get("service")
        if isinstance(service, str) and (
            event.kind.startswith(("service.", "fault.", "undo.")) and service
        ):
            names[service] = None
    names.update((f.service, None) for f in faults if f.service)
    for step in steps:
        names.update((t, None) for t in step.targets if t)
    return tuple(names)


def mentioned(service: str, text: str) -> bool:
    """Whether ``text`` names ``service`` as a whole word (service names hold ``.`` and ``-``)."""
    return re.search(rf"(?<![\w.-]){re.escape(service)}(?![\w.-])", text) is not None


def _health_marks(
    events: Sequence[EventView],
    services: Sequence[str],
    checked: Sequence[StepView],
) -> tuple[HealthMark, ...]:
    marks = []
    for event in events:
        service = _text(event.data.get("service"))
        if event.kind == "service.healthy" and service:
            marks.append(HealthMark(service, event.at_ms, True, "healthy after its start"))
        elif event.kind == "fault.recovered" and service:
            millis = _number(event.data.get("recovery_ms"))
            after = f" ({millis:.1f} ms after the fault)" if millis is not None else ""
            marks.append(HealthMark(service, event.at_ms, True, f"first healthy probe{after}"))
    for step in checked:
        if step.ended_ms is None or "healthy" not in step.name or step.status == "skipped":
            continue
        named = [s for s in services if mentioned(s, step.name)]
        ok = step.status == "passed"
        blamed = named if ok else ([s for s in named if mentioned(s, step.detail)] or named)
        what = f"{step.name}: {step.status}" + (f" ({step.detail})" if step.detail else "")
        marks.extend(HealthMark(s, step.ended_ms, ok, what) for s in blamed)
    return tuple(sorted(marks, key=lambda m: m.at_ms))


def _violations(events: Sequence[EventView], services: Sequence[str]) -> tuple[Violation, ...]:
    found = []
    for event in events:
        if event.kind != "condition.violated":
            continue
        detail = _text(event.data.get("detail"))
        service = next((s for s in services if detail.startswith(f"{s}:")), None)
        found.append(Violation(event.at_ms, _text(event.data.get("step")), detail, service))
    return tuple(found)


def _starts(events: Sequence[EventView]) -> tuple[ServiceStart, ...]:
    starts = []
    for event in events:
        if event.kind == "service.started":
            pid = _number(event.data.get("pid"))
            identity = _text(event.data.get("identity")) or (
                f"pid {int(pid)}" if pid is not None else "?"
            )
            starts.append(
                ServiceStart(
                    _text(event.data.get("service")),
                    event.at_ms,
                    identity,
                    _text(event.data.get("step")),
                )
            )
    return tuple(starts)


_MAX_DATA_DEPTH = 8


def _outages_in(value: Any, depth: int = 0) -> Iterable[ObservedOutage]:
    if depth > _MAX_DATA_DEPTH:
        return
    if isinstance(value, Mapping):
        service, started = value.get("service"), _number(value.get("started_at_run_ms"))
        if isinstance(service, str) and started is not None:
            yield ObservedOutage(
                service,
                _text(value.get("dependency")),
                started,
                _number(value.get("ended_at_run_ms")),
                _number(value.get("duration_ms")),
            )
        for item in value.values():
            yield from _outages_in(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _outages_in(item, depth + 1)


def _outages(checks: Sequence[CheckView]) -> tuple[ObservedOutage, ...]:
    found = dict.fromkeys(o for c in checks if c.kind == "audit" for o in _outages_in(c.value))
    return tuple(sorted(found, key=lambda o: (o.service, o.started_ms)))


def _series(data: Mapping[str, Any]) -> LoadSeries | None:
    start, bucket = _number(data.get("start_ms")), _number(data.get("bucket_ms"))
    sent = [_number(v) for v in _sequence(data.get("sent"))]
    errors = [_number(v) for v in _sequence(data.get("errors"))]
    if start is None or bucket is None or bucket <= 0 or len(sent) != len(errors):
        return None
    if any(v is None for v in (*sent, *errors)):
        return None
    return LoadSeries(
        start, bucket, tuple(int(v or 0) for v in sent), tuple(int(v or 0) for v in errors)
    )


def _loads(events: Sequence[EventView]) -> tuple[LoadView, ...]:
    started: dict[str, EventView] = {}
    stopped: dict[str, float] = {}
    series: dict[str, LoadSeries] = {}
    for event in events:
        step = _text(event.data.get("step"))
        if event.kind == "load.started":
            started.setdefault(step, event)
        elif event.kind == "load.stopped":
            stopped.setdefault(step, event.at_ms)
        elif event.kind == "load.series":
            parsed = _series(event.data)
            if parsed is not None:
                series[step] = parsed
    return tuple(
        LoadView(
            step_id=step,
            url=_text(event.data.get("url")),
            rate=_number(event.data.get("rate")),
            started_ms=event.at_ms,
            stopped_ms=stopped.get(step),
            series=series.get(step),
        )
        for step, event in started.items()
    )


_WINDOW = re.compile(r"(\d+) requests in (-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?) ms")


def _load_windows(checks: Sequence[CheckView]) -> tuple[LoadWindow, ...]:
    windows = []
    for check in checks:
        if check.kind != "load":
            continue
        match = _WINDOW.search(check.detail)
        if match is None:
            continue
        value = _mapping(check.value)
        errors = _number(value.get("errors"))
        counted = ((str(r), _number(n)) for r, n in _mapping(value.get("reasons")).items())
        reasons = tuple((reason, int(n)) for reason, n in counted if n is not None)
        windows.append(
            LoadWindow(
                check.index,
                check.name,
                check.status,
                float(match.group(2)),
                float(match.group(3)),
                int(match.group(1)),
                int(errors) if errors is not None else None,
                reasons,
            )
        )
    return tuple(windows)


def run_view(journal: Mapping[str, Any]) -> RunView:
    """The run described by ``journal`` (the data of journal.json)."""
    events = _events(_sequence(journal.get("events")))
    steady = [_step(s) for s in _sequence(journal.get("steady_state"))]
    steps = tuple(_step(s) for s in _sequence(journal.get("steps")))
    faults = _faults(_sequence(journal.get("recoveries")))
    setup = _step(journal["setup"]) if isinstance(journal.get("setup"), Mapping) else None
    checks = tuple(_check(c) for c in _sequence(journal.get("checks")))
    outages = _outages(checks)
    services = _services(events, faults, (*steps, *((setup,) if setup else ())))
    services += tuple(dict.fromkeys(o.service for o in outages if o.service not in services))
    started_at = _text(journal.get("started_at"))
    duration = _number(journal.get("duration_ms"))
    steady_before = tuple(s for s in steady if s.step_id.startswith("before"))
    steady_after = tuple(s for s in steady if not s.step_id.startswith("before"))
    health_checked = [*steady_before, *(s for s in steps if s.kind == "expect"), *steady_after]
    return RunView(
        run_id=_text(journal.get("run_id")),
        scenario=_text(journal.get("scenario")),
        file=_text(journal.get("file")),
        outcome=_text(journal.get("outcome")) or "unknown",
        reason=_text(journal.get("reason")),
        seed=_text(journal.get("seed")),
        started_at=started_at,
        started_epoch_ms=_epoch_ms(started_at),
        duration_ms=duration if duration is not None else 0.0,
        setup=setup,
        steady_before=steady_before,
        steps=steps,
        steady_after=steady_after,
        checks=checks,
        faults=faults,
        undos=tuple(
            UndoView(
                _text(_mapping(u).get("service")),
                _text(_mapping(u).get("action")),
                _text(_mapping(u).get("status")),
                _text(_mapping(u).get("detail")),
            )
            for u in _sequence(journal.get("undos"))
        ),
        services=services,
        health=_health_marks(events, services, health_checked),
        starts=_starts(events),
        violations=_violations(events, services),
        outages=outages,
        loads=_loads(events),
        load_windows=_load_windows(checks),
        events=events,
    )
