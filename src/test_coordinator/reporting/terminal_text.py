"""What the terminal says about a run, before anyone decides how it looks.

Lines are lists of :data:`Piece` (text and a style name, "" for none), tables are
:class:`TextTable`. The rich renderer (a terminal) colours them; the plain one (CI
logs, pipes) writes the text as it is. No markup: a service called ``[red]`` is
printed as ``[red]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from test_coordinator.engine.results import (
    RESTORED_BY_UNDO,
    Outcome,
    Recovery,
    RunResult,
    Status,
)
from test_coordinator.ports.storage import JournalEvent

Piece = tuple[str, str]
"""Text and its style ("" for none): "green", "red", "yellow", "dim", "bold red" ..."""

_STATUS_STYLE = {
    "passed": "green",
    "failed": "red",
    "error": "red",
    "skipped": "yellow",
    "done": "green",
}
_OUTCOME_STYLE = {
    Outcome.PASSED: "bold green",
    Outcome.INTERRUPTED: "bold yellow",
}


def status_piece(status: str, text: str | None = None) -> Piece:
    return (text if text is not None else status, _STATUS_STYLE.get(status, ""))


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool = False
    """Right-aligned."""
    wraps: bool = False
    """May fold when the terminal is narrow (the last, free-text column)."""


@dataclass
class TextTable:
    title: str
    columns: Sequence[Column]
    rows: list[list[Piece]] = field(default_factory=list)


def progress_line(event: JournalEvent) -> list[Piece] | None:
    """The line an event earns while the run goes, timestamp first; None: no line."""
    what = _progress(event)
    if what is None:
        return None
    at = event.data.get("at_ms", event.at_ms)
    return [(f"{at / 1000.0:8.3f}s", "dim"), (" ", ""), *what]


def _progress(event: JournalEvent) -> list[Piece] | None:
    data: dict[str, Any] = dict(event.data)
    kind = event.kind
    if kind == "run.started":
        return [(f"run {data['run_id']} of {data['scenario']} (seed {data['seed']})", "")]
    if kind == "setup.finished":
        return [("setup ", ""), status_piece(data["status"]), (f" {data['detail']}", "")]
    if kind == "steady_state.finished":
        return [
            (f"steady state {data['check']} ", ""),
            status_piece(data["status"]),
            (f" {data['detail']}", ""),
        ]
    if kind == "step.finished":
        detail = f": {data['detail']}" if data.get("detail") else ""
        return [
            (f"step {data['step']} {data['name']} ", ""),
            status_piece(data["status"]),
            (f" in {data['duration_ms']:.1f} ms{detail}", ""),
        ]
    if kind == "targets.chosen":
        chosen = ", ".join(data["chosen"])
        return [(f"step {data['step']} targets {chosen} (seed {data['seed']})", "")]
    if kind == "fault.recovered":
        from_restore = data.get("recovery_from_restore_ms")
        after_restore = (
            f" ({from_restore:.1f} ms after the {data.get('restore', 'restore')})"
            if isinstance(from_restore, int | float)
            else ""
        )
        text = f"{data['service']} healthy again {data['recovery_ms']:.1f} ms after the fault"
        return [(text + after_restore, "")]
    if kind == "condition.violated":
        return [status_piece("failed", f"condition broke (step {data['step']}): {data['detail']}")]
    if kind == "check.finished":
        return [
            (f"check {data['check']} {data['name']} ", ""),
            status_piece(data["status"]),
            (f": {data['detail']}", ""),
        ]
    if kind == "undo.finished":
        return [
            (f"undo {data['action']} {data['service']} ", ""),
            status_piece(data["status"]),
            (f": {data['detail']}", ""),
        ]
    return None


def summary_table(result: RunResult) -> TextTable:
    table = TextTable(
        f"{result.scenario}  (run {result.run_id}, seed {result.seed})",
        (
            Column("#", numeric=True),
            Column("What"),
            Column("Status"),
            Column("Time", numeric=True),
            Column("Detail", wraps=True),
        ),
    )
    rows: list[tuple[str, str, Status, float | None, str]] = []
    if result.setup is not None:
        setup = result.setup
        rows.append(("setup", setup.name, setup.status, setup.duration_ms, setup.detail))
    before = [s for s in result.steady_state if s.step_id.startswith("before")]
    after = [s for s in result.steady_state if not s.step_id.startswith("before")]
    for part in (before, result.steps, after):
        rows += [(s.step_id, s.name, s.status, s.duration_ms, s.detail) for s in part]
    rows += [(f"check {c.index}", c.name, c.status, None, c.detail) for c in result.checks]
    for ident, name, status, millis, detail in rows:
        shown = "" if millis is None or status is Status.SKIPPED else f"{millis:.1f} ms"
        table.rows.append(
            [(ident, ""), (name, ""), status_piece(status.value), (shown, ""), (detail, "")]
        )
    return table


def recovery_table(result: RunResult) -> TextTable | None:
    if not result.recoveries:
        return None
    numbers = ("Injected", "Restored", "Healthy", "Recovery", "From restore")
    table = TextTable(
        "Recoveries",
        [Column(name) for name in ("Service", "Fault", "Step")]
        + [Column(name, numeric=True) for name in numbers],
    )
    for r in result.recoveries:
        cells = [
            r.service,
            r.fault,
            f"{r.step_id} {r.step_name}",
            f"{r.injected_at_ms:.1f} ms",
            _restored(r),
            "-" if r.recovered_at_ms is None else f"{r.recovered_at_ms:.1f} ms",
            r.detail if r.recovery_ms is None else f"{r.recovery_ms:.1f} ms",
            "-" if r.recovery_from_restore_ms is None else f"{r.recovery_from_restore_ms:.1f} ms",
        ]
        table.rows.append([(cell, "") for cell in cells])
    return table


def _restored(recovery: Recovery) -> str:
    """When the fault's resume or start was performed ("-": never, or it restores itself)."""
    if recovery.restored_at_ms is None:
        return "-"
    by_undo = " (undo)" if recovery.restored_by == RESTORED_BY_UNDO else ""
    return f"{recovery.restored_at_ms:.1f} ms{by_undo}"


def verdict_lines(result: RunResult, report_paths: Sequence[Any]) -> list[list[Piece]]:
    """The verdict, where the reports are, and how to replay the run."""
    because = f": {result.reason}" if result.reason else ""
    seconds = result.duration_ms / 1000.0
    lines = [
        [
            (result.outcome.value.upper(), _OUTCOME_STYLE.get(result.outcome, "bold red")),
            (f" {result.scenario} in {seconds:.2f} s{because}", ""),
        ]
    ]
    if report_paths:
        lines.append([("reports: " + ", ".join(str(p) for p in report_paths), "")])
    lines.append([(f"replay with --seed {result.seed}", "")])
    return lines
