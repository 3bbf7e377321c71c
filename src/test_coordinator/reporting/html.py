"""report.html: one self-contained page per run, rendered from its journal.

The page inlines its stylesheet, its script and the timeline's SVG; it fetches
nothing (its Content-Security-Policy forbids it), so it opens the same from a
CI artefact, a mail attachment or a laptop offline. Everything read from the
journal or the services' logs is HTML-escaped.

:func:`render_html` is pure: the journal document (journal.json's data, or a
:class:`RunResult`) and the service logs in, the page out, so a report can be
rendered again later from a stored journal (:func:`write_html_report`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from test_coordinator.engine.results import RESTORED_BY_UNDO, RunResult
from test_coordinator.reporting.html_assets import SCRIPT, STYLE
from test_coordinator.reporting.html_logs import (
    WINDOW_AFTER_MS,
    WINDOW_BEFORE_MS,
    Excerpt,
    ServiceLog,
    excerpts_for,
    read_service_logs,
)
from test_coordinator.reporting.html_network import network_faults, network_faults_html
from test_coordinator.reporting.html_timeline import render_timeline
from test_coordinator.reporting.html_view import (
    CheckView,
    EventView,
    FaultView,
    RunView,
    StepView,
    run_view,
)
from test_coordinator.reporting.journal_json import journal_document

HTML_FILE = "report.html"
LOG_DIR = "logs"
MAX_EVENTS_SHOWN = 5000
MAX_EVENT_DATA_CHARS = 600
MAX_TABLE_ROWS = 200
MAX_VALUE_DEPTH = 8
FOLD_ABOVE_CHARS = 1500
_VERDICT_WORDS = {"not-started": "NOT STARTED", "timed-out": "TIMED OUT"}


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} ms"


def _badge(status: str) -> str:
    known = status if status in ("passed", "failed", "error", "skipped", "done") else "other"
    return f'<span class="badge {known}">{_e(status)}</span>'


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return _e(round(value, 4))
    if value is None:
        return "null"
    return _e(value)


def _nested(records: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any field of ``records`` holds a mapping or records of its own."""
    return any(
        isinstance(v, Mapping)
        or (isinstance(v, list | tuple) and any(isinstance(i, Mapping) for i in v))
        for record in records
        for v in record.values()
    )


def value_html(value: Any, depth: int = 0) -> str:
    """A check's value (or any JSON value) as nested tables: a dict as key/value rows,
    a list of flat dicts as a table with a column per key (of nested ones, one after
    the other)."""
    if isinstance(value, Mapping):
        if not value:
            return ""
        if depth >= MAX_VALUE_DEPTH:
            return f"<code>{_e(json.dumps(value, default=str))}</code>"
        rows = "".join(
            f"<tr><th>{_e(key)}</th><td>{value_html(item, depth + 1)}</td></tr>"
            for key, item in list(value.items())[:MAX_TABLE_ROWS]
        )
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list | tuple):
        records = bool(value) and all(isinstance(item, Mapping) for item in value)
        if records and depth < MAX_VALUE_DEPTH and not _nested(value):
            columns = list(dict.fromkeys(key for item in value for key in item))
            head = "".join(f"<th>{_e(c)}</th>" for c in columns)
            body = "".join(
                "<tr>"
                + "".join(f"<td>{value_html(item.get(c), depth + 1)}</td>" for c in columns)
                + "</tr>"
                for item in value[:MAX_TABLE_ROWS]
            )
            more = len(value) - MAX_TABLE_ROWS
            extra = f'<p class="note">and {more} more</p>' if more > 0 else ""
            return f'<table class="kv"><tr>{head}</tr>{body}</table>{extra}'
        if records:
            return "".join(value_html(item, depth + 1) for item in value[:MAX_TABLE_ROWS])
        return ", ".join(value_html(item, depth + 1) for item in value[:MAX_TABLE_ROWS])
    return _scalar(value)


def folded_value_html(value: Any, summary: str = "data", *, always: bool = False) -> str:
    """:func:`value_html`, folded away under ``summary`` when it is large (or ``always``)."""
    shown = value_html(value)
    if len(shown) <= FOLD_ABOVE_CHARS and not always:
        return shown
    size = f" ({len(value)} fields)" if isinstance(value, Mapping) else ""
    return f'<details class="data"><summary>{_e(summary)}{size}</summary>{shown}</details>'


def _header(view: RunView) -> str:
    meta = [
        ("run", view.run_id),
        ("seed", view.seed),
        ("started", view.started_at),
        ("duration", _ms(view.duration_ms)),
        ("file", view.file),
    ]
    spans = "".join(f"<span>{_e(k)} <code>{_e(v)}</code></span>" for k, v in meta if v)
    return f'<h1>{_e(view.scenario or "scenario")}</h1><p class="meta">{spans}</p>'


def _verdict(view: RunView) -> str:
    word = _VERDICT_WORDS.get(view.outcome, view.outcome.upper())
    reason = view.reason or ("every step and check passed" if view.passed else "no reason recorded")
    ran = [s for s in view.steps if s.status != "skipped"]
    passed_steps = sum(1 for s in view.steps if s.status == "passed")
    passed_checks = sum(1 for c in view.checks if c.status == "passed")
    recovered = [
        f"{f.service} {f.fault} {_ms(f.recovery_ms)}{_from_restore(f)}"
        if f.recovery_ms is not None
        else f"{f.service} {f.fault} not recovered"
        for f in view.faults
    ]
    network = network_faults(view)
    facts = [
        f"steps: {passed_steps} of {len(view.steps)} passed ({len(ran)} ran)",
        f"checks: {passed_checks} of {len(view.checks)} passed"
        if view.checks
        else "checks: none ran",
        f"faults: {len(view.faults) + len(network)}"
        + (f" ({len(network)} on the network)" if network else ""),
    ]
    if recovered:
        facts.append("recovery: " + "; ".join(recovered))
    summary = "".join(f"<div>{_e(fact)}</div>" for fact in facts)
    outcome_class = view.outcome if view.outcome.replace("-", "").isalpha() else "unknown"
    return (
        f'<section id="verdict" class="verdict {_e(outcome_class)}">'
        f'<div class="word">{_e(word)}</div>'
        f'<div class="reason">{_e(reason)}</div>'
        f'<div class="summary">{summary}</div></section>'
    )


_LEGEND = (
    ("fault", "fault injected (click: its logs)"),
    ("window", "recovery window: injection to first healthy probe"),
    ("restored", "restore: the resume or start that undid the fault"),
    ("outage", "outage a service reported (audit)"),
    ("healthy", "healthy probe"),
    ("unhealthy", "unhealthy probe or broken condition"),
    ("step", "step (colour: outcome)"),
    ("load", "load"),
    ("errors", "failed requests"),
)


def _timeline(view: RunView) -> str:
    legend = "".join(
        f'<span><span class="swatch {cls}"></span>{_e(text)}</span>' for cls, text in _LEGEND
    )
    note = ""
    if view.loads and not any(load.series for load in view.loads):
        note = (
            '<p class="note">The journal holds no per-request load series, so the load lane '
            "shows when the load ran and the windows its checks judged, with their error counts."
            "</p>"
        )
    return (
        '<section id="timeline-section"><h2>Timeline</h2>'
        f'<div class="timeline-box">{render_timeline(view)}</div>'
        f'<div class="legend">{legend}</div>{note}'
        '<p class="note">Time in ms from the run\'s start; hover a mark for details.</p>'
        "</section>"
    )


def _step_row(step: StepView) -> str:
    started = "" if step.status == "skipped" else _ms(step.started_ms)
    took = "" if step.status == "skipped" else _ms(step.duration_ms)
    return (
        f'<tr class="row-{_e(step.status)}" id="step-{_e(step.step_id)}">'
        f"<td>{_e(step.step_id)}</td><td>{_e(step.name)}</td><td>{_e(step.kind)}</td>"
        f"<td>{_e(', '.join(step.targets))}</td><td>{_badge(step.status)}</td>"
        f'<td class="num">{started}</td><td class="num">{took}</td>'
        f'<td class="detail">{_e(step.detail)}</td></tr>'
    )


def _steps(view: RunView) -> str:
    head = (
        "<tr><th>#</th><th>Step</th><th>Kind</th><th>Targets</th><th>Status</th>"
        '<th class="num">Start</th><th class="num">Duration</th><th>Detail</th></tr>'
    )
    rows = "".join(_step_row(step) for step in view.all_steps)
    return f'<section id="steps"><h2>Steps</h2><table>{head}{rows}</table></section>'


def _check_row(check: CheckView) -> str:
    return (
        f'<tr class="row-{_e(check.status)}" id="check-{check.index}">'
        f"<td>{check.index}</td><td>{_e(check.name)}</td><td>{_e(check.kind)}</td>"
        f"<td>{_badge(check.status)}</td>"
        f'<td class="detail">{_e(check.detail)}</td><td>{folded_value_html(check.value)}</td></tr>'
    )


def _checks(view: RunView) -> str:
    if not view.checks:
        body = '<p class="note">The scenario has no checks.</p>'
    else:
        head = (
            "<tr><th>#</th><th>Check</th><th>Kind</th><th>Status</th><th>Detail</th>"
            "<th>Value</th></tr>"
        )
        body = f"<table>{head}{''.join(_check_row(c) for c in view.checks)}</table>"
    return f'<section id="checks"><h2>Checks</h2>{body}</section>'


def _from_restore(fault: FaultView) -> str:
    """`` (2.1 ms from the resume)``, or nothing for a fault with no restore measured."""
    took = fault.recovery_from_restore_ms
    if took is None:
        return ""
    return f" ({_ms(took)} from the {fault.restore or 'restore'})"


def _restored_cell(fault: FaultView) -> str:
    if fault.restored_ms is None:
        return '<td class="num restored-ms"></td>'
    by = f"{fault.restore or 'restored'} by {fault.restored_by}" if fault.restored_by else ""
    undo = " (undo)" if fault.restored_by == RESTORED_BY_UNDO else ""
    return f'<td class="num restored-ms" title="{_e(by)}">{_ms(fault.restored_ms)}{undo}</td>'


def _no_fault_note(view: RunView) -> str:
    if network_faults(view):
        return '<p class="note">No fault with a recovery to time; see Network faults.</p>'
    return '<p class="note">No fault was injected.</p>'


def _faults(view: RunView) -> str:
    network = network_faults_html(network_faults(view), _e, _ms)
    if not view.faults:
        return (
            f'<section id="faults"><h2>Faults and recoveries</h2>{_no_fault_note(view)}</section>'
            + network
        )
    head = (
        "<tr><th>#</th><th>Service</th><th>Fault</th><th>Step</th>"
        '<th class="num">Injected</th><th class="num">Restored</th>'
        '<th class="num">Healthy again</th>'
        '<th class="num">Recovery</th><th class="num">From restore</th><th>Detail</th></tr>'
    )
    rows = "".join(
        f'<tr class="row-{"passed" if f.recovery_ms is not None else "failed"}">'
        f'<td><a href="#{f.anchor}">{f.number}</a></td><td>{_e(f.service)}</td>'
        f"<td>{_e(f.fault)}</td><td>{_e(f.step_id)} {_e(f.step_name)}</td>"
        f'<td class="num">{_ms(f.injected_ms)}</td>{_restored_cell(f)}'
        f'<td class="num">{_ms(f.recovered_ms)}</td>'
        f'<td class="num recovery-ms">{_ms(f.recovery_ms) or "not recovered"}</td>'
        f'<td class="num from-restore-ms">{_ms(f.recovery_from_restore_ms)}</td>'
        f'<td class="detail">{_e(f.detail)}</td></tr>'
        for f in view.faults
    )
    return (
        f'<section id="faults"><h2>Faults and recoveries</h2><table>{head}{rows}</table></section>'
        + network
    )


def _excerpt_html(excerpt: Excerpt) -> str:
    lines = []
    if excerpt.omitted_before:
        lines.append(f'<span class="gap">… {excerpt.omitted_before} earlier lines</span>')
    for line in excerpt.lines:
        at = f'<span class="at">{line.run_ms:9.1f} ms </span>' if line.run_ms is not None else ""
        text = at + _e(line.text)
        lines.append(f'<span class="inside">{text}</span>' if line.inside else text)
    if excerpt.omitted_after:
        lines.append(f'<span class="gap">… {excerpt.omitted_after} later lines</span>')
    if not excerpt.lines:
        lines.append('<span class="gap">no line in this window</span>')
    how = "" if excerpt.timed else " (last lines of the log at the end of the run)"
    title = f"{_e(excerpt.service)} {_e(excerpt.stream)} <code>{_e(excerpt.file_name)}</code>{how}"
    return f'<h4>{title}</h4><pre class="log">{chr(10).join(lines)}</pre>'


def _fault_logs(fault: FaultView, view: RunView, logs: Sequence[ServiceLog]) -> str:
    excerpts = excerpts_for(fault, logs, view.started_epoch_ms)
    recovery = (
        f"healthy again {_ms(fault.recovery_ms)} later{_from_restore(fault)}"
        if fault.recovery_ms is not None
        else (fault.detail or "not recovered")
    )
    heading = (
        f"Fault {fault.number}: {fault.fault} {fault.service} at {_ms(fault.injected_ms)} "
        f"(step {fault.step_id} {fault.step_name}), {recovery}"
    )
    body = "".join(_excerpt_html(x) for x in excerpts)
    if not excerpts:
        body = f'<p class="note">No output of {_e(fault.service)} was captured.</p>'
    elif not any(x.timed for x in excerpts):
        body = (
            f'<p class="note">The lines of {_e(fault.service)} carry no timestamps and the engine '
            "records no log offsets at a fault, so these are the last lines of its log as it was "
            "at the end of the run, not a window around the fault.</p>" + body
        )
    return f'<div class="fault-block" id="{fault.anchor}"><h3>{_e(heading)}</h3>{body}</div>'


def _logs(view: RunView, logs: Sequence[ServiceLog]) -> str:
    window = (
        f"Lines with a timestamp from {WINDOW_BEFORE_MS / 1000:g} s before each injection to "
        f"{WINDOW_AFTER_MS / 1000:g} s after its recovery, from every service, placed on the "
        "run's clock; lines written between the injection and the recovery are highlighted."
    )
    files = sorted({log.file_name for log in logs})
    links = ", ".join(f'<a href="{_e(LOG_DIR)}/{_e(name)}">{_e(name)}</a>' for name in files)
    where = f'<p class="note">Whole logs: {links}</p>' if links else ""
    if not view.faults:
        body = _no_fault_note(view)
    else:
        body = f'<p class="note">{_e(window)}</p>' + "".join(
            _fault_logs(f, view, logs) for f in view.faults
        )
    return f'<section id="logs"><h2>Service logs around each fault</h2>{body}{where}</section>'


def _event_rows(events: Sequence[EventView]) -> str:
    rows = []
    for event in events:
        data = json.dumps(dict(event.data), default=str, ensure_ascii=False)
        if len(data) > MAX_EVENT_DATA_CHARS:
            data = data[:MAX_EVENT_DATA_CHARS] + " …"
        rows.append(
            f'<tr><td class="num">{event.seq}</td><td class="num">{_ms(event.at_ms)}</td>'
            f'<td>{_e(event.kind)}</td><td class="detail mono">{_e(data)}</td></tr>'
        )
    return "".join(rows)


def _audit(view: RunView) -> str:
    checks, events = view.audit_checks, view.audit_events
    if not checks and not events:
        body = (
            '<p class="note" id="no-audit">No audit correlator configured: '
            "no check of type audit ran in this scenario.</p>"
        )
        return f'<section id="audit"><h2>Audit correlation</h2>{body}</section>'
    parts = []
    if checks:
        head = "<tr><th>#</th><th>Audit check</th><th>Status</th><th>Detail</th></tr>"
        rows = "".join(
            f'<tr class="row-{_e(c.status)}"><td>{c.index}</td><td>{_e(c.name)}</td>'
            f'<td>{_badge(c.status)}</td><td class="detail">{_e(c.detail)}</td></tr>'
            for c in checks
        )
        last = checks[-1]
        parts.append(f"<table>{head}{rows}</table>")
        if last.value not in (None, {}, []):
            parts.append(
                f"<h3>The audit correlator's last answer (check {last.index})</h3>"
                f"{value_html(last.value)}"
            )
        earlier = [c for c in checks[:-1] if c.value not in (None, {}, [])]
        parts += [
            folded_value_html(c.value, f"data of check {c.index}: {c.name}", always=True)
            for c in earlier
        ]
    if events:
        head = "<tr><th>#</th><th>At</th><th>Event</th><th>Data</th></tr>"
        parts.append(
            "<h3>The coordinator's audit events</h3>"
            f'<details class="data"><summary>{len(events)} events</summary>'
            f"<table>{head}{_event_rows(events)}</table></details>"
        )
    return f'<section id="audit"><h2>Audit correlation</h2>{"".join(parts)}</section>'


def _undos(view: RunView) -> str:
    if not view.undos:
        body = '<p class="note">Nothing was left to undo at the end of the run.</p>'
    else:
        rows = "".join(
            f"<tr><td>{_e(u.service)}</td><td>{_e(u.action)}</td><td>{_badge(u.status)}</td>"
            f'<td class="detail">{_e(u.detail)}</td></tr>'
            for u in view.undos
        )
        head = "<tr><th>Service</th><th>Undo</th><th>Status</th><th>Detail</th></tr>"
        body = f"<table>{head}{rows}</table>"
    title = "Undone by the guard or recover" if view.outcome == "aborted" else "Undo at the end"
    return f'<section id="undo"><h2>{title}</h2>{body}</section>'


def _events(view: RunView) -> str:
    shown = view.events[:MAX_EVENTS_SHOWN]
    more = len(view.events) - len(shown)
    extra = f'<p class="note">and {more} more in journal.json</p>' if more > 0 else ""
    head = "<tr><th>#</th><th>At</th><th>Event</th><th>Data</th></tr>"
    return (
        f'<section id="events"><h2>Journal</h2><details><summary>{len(view.events)} events'
        f"</summary><table>{head}{_event_rows(shown)}</table>{extra}</details></section>"
    )


def _csp_hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def _as_journal(run: RunResult | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(run, RunResult):
        plain: dict[str, Any] = json.loads(json.dumps(journal_document(run), default=str))
        return plain
    return run


def render_html(run: RunResult | Mapping[str, Any], logs: Sequence[ServiceLog] = ()) -> str:
    """The whole report page for ``run`` (a RunResult or journal.json's data)."""
    view = run_view(_as_journal(run))
    policy = (
        "default-src 'none'; "
        f"style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    title = f"{view.outcome.upper()} {view.scenario} ({view.run_id})"
    sections = (
        _header(view),
        _verdict(view),
        _timeline(view),
        _steps(view),
        _checks(view),
        _faults(view),
        _logs(view, logs),
        _audit(view),
        _undos(view),
        _events(view),
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(policy)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="test-coordinator">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(sections)}</main><script>{SCRIPT}</script></body></html>\n"
    )


def write_html_report(journal_path: Path) -> Path:
    """Render ``report.html`` beside ``journal_path`` from it and the ``logs/`` folder there."""
    run_dir = journal_path.parent
    journal = json.loads(journal_path.read_text(encoding="utf-8"))
    page = render_html(journal, read_service_logs(run_dir / LOG_DIR))
    path = run_dir / HTML_FILE
    temporary = path.with_suffix(".html.tmp")
    # errors="replace": a path the system gave in bytes that are not UTF-8 (a scenario file's
    # name) is shown with a replacement character rather than lose the report.
    temporary.write_text(page, encoding="utf-8", errors="replace")
    os.replace(temporary, path)
    return path
