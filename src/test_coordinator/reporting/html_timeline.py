"""The run's timeline as inline SVG: a lane for the steps, one per service, one per load.

Time runs left to right in ms from the run's start. On a service's lane: each
fault (a red triangle at its injection, a dashed line across every lane) and
its recovery window (a band from the injection to the first healthy probe,
labelled with its length in ms, or "not recovered", with a dashed line where a
resume or start restored it), the outages the services
reported to the audit correlator (amber bands), the health marks (green
dots healthy, red crosses unhealthy), and a tick at each start of a process.
Every mark has a ``<title>`` (the browser's tooltip), and a fault links to its
log excerpt further down the page. Everything from the journal is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from test_coordinator.reporting.html_view import (
    FaultView,
    LoadView,
    LoadWindow,
    ObservedOutage,
    RunView,
    StepView,
)

WIDTH = 1200
LABEL_WIDTH = 160
RIGHT_PAD = 80
AXIS_HEIGHT = 26
STEP_ROW = 20
SERVICE_LANE = 48
LOAD_LANE = 64
MIN_BAR_PX = 3.0
CHAR_PX = 6.4
MAX_STEP_ROWS = 6
TICKS_WANTED = 8


def _attrs(attrs: dict[str, object]) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        parts.append(f'{key.rstrip("_").replace("_", "-")}="{escape(text, quote=True)}"')
    return " ".join(parts)


def _el(tag: str, title: str | None = None, text: str | None = None, **attrs: object) -> str:
    inner = ""
    if title:
        inner += f"<title>{escape(title)}</title>"
    if text is not None:
        inner += escape(text)
    return f"<{tag} {_attrs(attrs)}>{inner}</{tag}>"


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def nice_step(span: float, wanted: int = TICKS_WANTED) -> float:
    """A tick spacing of 1, 2 or 5 times a power of ten giving about ``wanted`` ticks."""
    raw = max(span, 1e-9) / wanted
    power = 10.0 ** math.floor(math.log10(raw))
    return next(float(m * power) for m in (1, 2, 5, 10) if m * power >= raw)


class _Scale:
    def __init__(self, end_ms: float) -> None:
        self.end_ms = end_ms
        self.x0 = float(LABEL_WIDTH)
        self.x1 = float(WIDTH - RIGHT_PAD)

    def x(self, ms: float) -> float:
        clamped = min(max(ms, 0.0), self.end_ms)
        return self.x0 + clamped / self.end_ms * (self.x1 - self.x0)

    def width(self, start_ms: float, end_ms: float) -> float:
        return max(self.x(end_ms) - self.x(start_ms), MIN_BAR_PX)


def _pack_rows(steps: Sequence[StepView]) -> list[list[StepView]]:
    """Steps into rows so that steps overlapping in time (parallel ones) get rows of their own."""
    rows: list[list[StepView]] = []
    ends: list[float] = []
    for step in sorted(steps, key=lambda s: s.started_ms or 0.0):
        assert step.started_ms is not None and step.ended_ms is not None
        row = next((i for i, end in enumerate(ends) if end <= step.started_ms), None)
        if row is None and len(rows) < MAX_STEP_ROWS:
            rows.append([])
            ends.append(0.0)
            row = len(rows) - 1
        if row is None:
            row = min(range(len(ends)), key=ends.__getitem__)
        rows[row].append(step)
        ends[row] = max(ends[row], step.ended_ms)
    return rows or [[]]


def _axis(scale: _Scale, y: float, top: bool) -> list[str]:
    parts = [_el("line", x1=scale.x0, x2=scale.x1, y1=y, y2=y, class_="axis")]
    step = nice_step(scale.end_ms)
    tick = 0.0
    while tick <= scale.end_ms + 1e-9:
        x = scale.x(tick)
        parts.append(_el("line", x1=x, x2=x, y1=y - 4, y2=y + 4, class_="axis"))
        label = f"{tick:g} ms"
        parts.append(_el("text", text=label, x=x, y=y - 8 if top else y + 16, class_="tick-label"))
        tick += step
    return parts


def _lane_frame(label: str, y: float, height: float, index: int, title: str) -> list[str]:
    return [
        _el(
            "rect",
            x=0.0,
            y=y,
            width=float(WIDTH),
            height=float(height),
            class_="lane-even" if index % 2 == 0 else "lane-odd",
        ),
        _el("text", title=title, text=label, x=8.0, y=y + height / 2 + 4, class_="lane-label"),
    ]


def _steps_lane(view: RunView, scale: _Scale, y: float) -> tuple[list[str], float]:
    timed = [s for s in view.all_steps if s.started_ms is not None and s.ended_ms is not None]
    rows = _pack_rows(timed)
    height = len(rows) * STEP_ROW + 12
    parts = _lane_frame(
        "steps", y, height, 0, "setup, steady state, steps (by row when they overlap)"
    )
    for number, row in enumerate(rows):
        top = y + 6 + number * STEP_ROW
        for step in row:
            assert step.started_ms is not None and step.ended_ms is not None
            x, w = scale.x(step.started_ms), scale.width(step.started_ms, step.ended_ms)
            title = (
                f"{step.step_id} {step.name}: {step.status} in {_ms(step.duration_ms or 0.0)}"
                f" (from {_ms(step.started_ms)})" + (f"\n{step.detail}" if step.detail else "")
            )
            parts.append(
                _el(
                    "rect",
                    title=title,
                    x=x,
                    y=top,
                    width=w,
                    height=float(STEP_ROW - 4),
                    rx=2,
                    class_=f"step status-{_status_class(step.status)}",
                    data_step=step.step_id,
                )
            )
            for label in (f"{step.step_id} {step.name}", step.step_id):
                if len(label) * CHAR_PX + 6 <= w:
                    parts.append(
                        _el("text", text=label, x=x + 3, y=top + STEP_ROW - 8, class_="step-label")
                    )
                    break
    for violation in view.violations:
        if violation.service is None:
            parts += _cross(scale.x(violation.at_ms), y + height / 2, violation.detail)
    return parts, float(height)


def _status_class(status: str) -> str:
    return status if status in ("passed", "failed", "error", "skipped") else "other"


def _cross(x: float, y: float, title: str) -> list[str]:
    size = 4.5
    path = f"M{x - size:.1f},{y - size:.1f}L{x + size:.1f},{y + size:.1f}"
    path += f"M{x - size:.1f},{y + size:.1f}L{x + size:.1f},{y - size:.1f}"
    return [_el("path", title=title, d=path, class_="mark-unhealthy")]


def _fault_band(fault: FaultView, scale: _Scale, top: float, height: float) -> list[str]:
    start = scale.x(fault.injected_ms)
    end_ms = fault.recovered_ms if fault.recovered_ms is not None else scale.end_ms
    recovery_ms = fault.recovery_ms
    recovered = recovery_ms is not None
    label = (
        f"{fault.fault} · {_ms(recovery_ms)}"
        if recovery_ms is not None
        else f"{fault.fault} · not recovered"
    )
    restored = ""
    if fault.restored_ms is not None:
        by = f" by {fault.restored_by}" if fault.restored_by else ""
        restored = f"{fault.restore or 'restored'} at {_ms(fault.restored_ms)}{by}; "
    from_restore = fault.recovery_from_restore_ms
    title = (
        f"fault {fault.number}: {fault.fault} {fault.service} at {_ms(fault.injected_ms)} "
        f"(step {fault.step_id} {fault.step_name}); "
        + restored
        + (
            f"healthy again at {_ms(fault.recovered_ms or 0.0)}, "
            f"{_ms(fault.recovery_ms or 0.0)} later"
            + (
                f" ({_ms(from_restore)} after the {fault.restore or 'restore'})"
                if from_restore is not None
                else ""
            )
            if recovered
            else (fault.detail or "never healthy again")
        )
    )
    band_class = "recovery-window" if recovered else "recovery-window open"
    parts = [
        _el(
            "rect",
            title=title,
            x=start,
            y=top + 14,
            width=scale.width(fault.injected_ms, end_ms),
            height=height - 20,
            class_=band_class,
            data_fault=fault.number,
            data_recovery_ms=f"{fault.recovery_ms:.3f}" if recovered else "",
        ),
        _el("text", text=label, x=start + 7, y=top + 11, class_="recovery-label"),
    ]

    def mark(at_ms: float, kind: str, number: int | None = None) -> str:
        x = scale.x(at_ms)
        y1, y2 = top + 12, top + height - 4
        return _el("line", title=title, x1=x, x2=x, y1=y1, y2=y2, class_=kind, data_fault=number)

    if fault.restored_ms is not None and fault.restored_ms <= scale.end_ms:
        parts.append(mark(fault.restored_ms, "restored", fault.number))
    if fault.recovered_ms is not None:
        parts.append(mark(fault.recovered_ms, "recovered"))
    tip = (
        f"M{start - 6:.1f},{top + 2:.1f}L{start + 6:.1f},{top + 2:.1f}L{start:.1f},{top + 13:.1f}Z"
    )
    marker = _el("path", title=title, d=tip, class_="fault-mark", data_fault=fault.number)
    parts.append(f'<a href="#{fault.anchor}">{marker}</a>')
    return parts


def _outage_band(outage: ObservedOutage, scale: _Scale, top: float, height: float) -> list[str]:
    start = scale.x(outage.started_ms)
    end_ms = outage.ended_ms if outage.ended_ms is not None else scale.end_ms
    length = outage.duration_ms
    if length is None and outage.ended_ms is not None:
        length = outage.ended_ms - outage.started_ms
    of = f" of {outage.dependency}" if outage.dependency else ""
    shown = _ms(length) if length is not None else "not over"
    title = (
        f"{outage.service} reported an outage{of} from {_ms(outage.started_ms)}"
        + (f" to {_ms(outage.ended_ms)}" if outage.ended_ms is not None else "")
        + f": {shown}"
    )
    return [
        _el(
            "rect",
            title=title,
            x=start,
            y=top + 20,
            width=scale.width(outage.started_ms, end_ms),
            height=height - 28,
            class_="outage-window",
        ),
        _el(
            "text",
            title=title,
            text=f"outage{of} · {shown}",
            x=start + 3,
            y=top + 17,
            class_="outage-label",
        ),
    ]


def _service_lane(view: RunView, service: str, index: int, scale: _Scale, y: float) -> list[str]:
    height = float(SERVICE_LANE)
    parts = _lane_frame(service, y, height, index, f"service {service}")
    mid = y + height / 2 + 4
    parts.append(_el("line", x1=scale.x0, x2=scale.x1, y1=mid, y2=mid, class_="lane-line"))
    for fault in view.faults:
        if fault.service == service:
            parts += _fault_band(fault, scale, y, height)
    for outage in view.outages:
        if outage.service == service:
            parts += _outage_band(outage, scale, y, height)
    for start in view.starts:
        if start.service == service:
            x = scale.x(start.at_ms)
            title = f"{service} started ({start.identity}, {start.step}) at {_ms(start.at_ms)}"
            parts.append(
                _el(
                    "line",
                    title=title,
                    x1=x,
                    x2=x,
                    y1=y + height - 10,
                    y2=y + height - 2,
                    class_="start-tick",
                )
            )
    for mark in view.health:
        if mark.service != service:
            continue
        x = scale.x(mark.at_ms)
        title = f"{service} at {_ms(mark.at_ms)}: {mark.what}"
        if mark.healthy:
            parts.append(_el("circle", title=title, cx=x, cy=mid, r=4, class_="mark-healthy"))
        else:
            parts += _cross(x, mid, title)
    for violation in view.violations:
        if violation.service == service:
            title = (
                f"condition broke at {_ms(violation.at_ms)} (step {violation.step}): "
                f"{violation.detail}"
            )
            parts += _cross(scale.x(violation.at_ms), mid, title)
    return parts


def _load_lane(
    load: LoadView, windows: Sequence[LoadWindow], index: int, scale: _Scale, y: float
) -> list[str]:
    height = float(LOAD_LANE)
    rate = f" at {load.rate:g}/s" if load.rate is not None else ""
    parts = _lane_frame(f"load {load.step_id}", y, height, index, f"load {load.url}{rate}")
    base = y + height - 6
    stop = load.stopped_ms if load.stopped_ms is not None else scale.end_ms
    parts.append(
        _el(
            "rect",
            title=f"load on {load.url}{rate} from {_ms(load.started_ms)} to {_ms(stop)}",
            x=scale.x(load.started_ms),
            y=base,
            width=scale.width(load.started_ms, stop),
            height=4.0,
            class_="load-span",
        )
    )
    series = load.series
    if series is not None and series.sent:
        tallest = max(series.sent) or 1
        bar_height = height - 24
        for number, (sent, errors) in enumerate(zip(series.sent, series.errors, strict=True)):
            at = series.start_ms + number * series.bucket_ms
            x, w = scale.x(at), scale.width(at, at + series.bucket_ms)
            title = f"{_ms(at)}: {sent} requests, {errors} failed"
            sent_h = bar_height * sent / tallest
            parts.append(
                _el(
                    "rect",
                    title=title,
                    x=x,
                    y=base - sent_h,
                    width=w,
                    height=sent_h,
                    class_="load-sent",
                )
            )
            if errors:
                error_h = max(bar_height * errors / tallest, 2.0)
                parts.append(
                    _el(
                        "rect",
                        title=title,
                        x=x,
                        y=base - error_h,
                        width=w,
                        height=error_h,
                        class_="load-errors",
                        data_errors=errors,
                    )
                )
    for number, window in enumerate(windows):
        top = y + 6 + (number % 2) * 14
        left, right = scale.x(window.start_ms), scale.x(window.end_ms)
        failed = "?" if window.errors is None else str(window.errors)
        label = f"check {window.check_index}: {failed} errors / {window.requests}"
        why = ", ".join(f"{reason}: {count}" for reason, count in window.reasons)
        title = (
            f"{window.name}: {window.status}, {label}{f' ({why})' if why else ''} "
            f"in {window.start_ms:g}..{window.end_ms:g} ms"
        )
        state = "failed" if window.status != "passed" else "passed"
        path = f"M{left:.1f},{top + 8:.1f}V{top:.1f}H{right:.1f}V{top + 8:.1f}"
        parts.append(_el("path", title=title, d=path, class_=f"load-window status-{state}"))
        parts.append(
            _el("text", title=title, text=label, x=left + 3, y=top + 11, class_="window-label")
        )
    return parts


def render_timeline(view: RunView) -> str:
    """The ``<svg>`` element of the timeline (its height depends on the lanes)."""
    scale = _Scale(view.end_ms)
    body: list[str] = []
    y = float(AXIS_HEIGHT)
    steps, height = _steps_lane(view, scale, y)
    body += steps
    y += height
    for index, service in enumerate(view.services, start=1):
        body += _service_lane(view, service, index, scale, y)
        y += SERVICE_LANE
    for index, load in enumerate(view.loads, start=len(view.services) + 1):
        windows = view.load_windows if index == len(view.services) + 1 else ()
        body += _load_lane(load, windows, index, scale, y)
        y += LOAD_LANE
    bottom = y
    for fault in view.faults:
        x = scale.x(fault.injected_ms)
        body.append(_el("line", x1=x, x2=x, y1=float(AXIS_HEIGHT), y2=bottom, class_="fault-line"))
    body += _axis(scale, float(AXIS_HEIGHT) - 2, top=True)
    body += _axis(scale, bottom + 2, top=False)
    total = bottom + 24
    body.append(
        _el(
            "line",
            x1=scale.x0,
            x2=scale.x0,
            y1=float(AXIS_HEIGHT),
            y2=bottom,
            id="cursor",
            visibility="hidden",
        )
    )
    body.append(_el("text", text="", x=scale.x0, y=12.0, id="cursor-label", visibility="hidden"))
    attrs = _attrs(
        {
            "id": "timeline",
            "viewBox": f"0 0 {WIDTH} {total:.0f}",
            "width": "100%",
            "role": "img",
            "aria-label": f"timeline of run {view.run_id}",
            "data-x0": scale.x0,
            "data-x1": scale.x1,
            "data-end-ms": view.end_ms,
        }
    )
    return f"<svg {attrs}>" + "".join(body) + "</svg>"
