"""The terminal: live progress while a run goes, and a summary table at the end.

On a terminal, progress lines are coloured and a spinner names the step in
progress; otherwise (CI logs, pipes) each event is one plain line.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status as Spinner
from rich.table import Table

from test_coordinator.engine.results import (
    RESTORED_BY_UNDO,
    Outcome,
    Recovery,
    RunResult,
    Status,
)
from test_coordinator.ports.storage import JournalEvent

_STYLE = {
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


def _styled(status: str, text: str | None = None) -> str:
    style = _STYLE.get(status, "")
    shown = escape(text if text is not None else status)
    return f"[{style}]{shown}[/{style}]" if style else shown


class Progress:
    """A journal listener that prints the run as it goes; use as a context manager."""

    def __init__(self, console: Console, scenario: str) -> None:
        self.console = console
        self.scenario = scenario
        self.live = console.is_terminal
        self._spinner: Spinner | None = None

    def __enter__(self) -> Progress:
        if self.live:
            self._spinner = self.console.status(f"{escape(self.scenario)}: starting")
            self._spinner.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    def __call__(self, event: JournalEvent) -> None:
        line = self._line(event)
        if line is not None:
            at = event.data.get("at_ms", event.at_ms)
            self._print(f"[dim]{at / 1000.0:8.3f}s[/dim] {line}")
        if self._spinner is not None and event.kind == "step.started":
            self._spinner.update(
                f"{escape(self.scenario)}: step {event.data['step']} {escape(event.data['name'])}"
            )
        elif self._spinner is not None and event.kind == "cleanup.started":
            self._spinner.update(f"{escape(self.scenario)}: undoing and stopping services")

    def _print(self, markup: str) -> None:
        if self.live:
            self.console.print(markup, highlight=False)
        else:
            self.console.print(markup, highlight=False, markup=True, soft_wrap=True)

    def _line(self, event: JournalEvent) -> str | None:
        data: dict[str, Any] = dict(event.data)
        kind = event.kind
        if kind == "run.started":
            return f"run {data['run_id']} of {escape(data['scenario'])} (seed {data['seed']})"
        if kind == "setup.finished":
            return f"setup {_styled(data['status'])} {escape(data['detail'])}"
        if kind == "steady_state.finished":
            return (
                f"steady state {data['check']} {_styled(data['status'])} {escape(data['detail'])}"
            )
        if kind == "step.finished":
            detail = f": {escape(data['detail'])}" if data.get("detail") else ""
            return (
                f"step {data['step']} {escape(data['name'])} {_styled(data['status'])} "
                f"in {data['duration_ms']:.1f} ms{detail}"
            )
        if kind == "targets.chosen":
            return f"step {data['step']} targets {', '.join(data['chosen'])} (seed {data['seed']})"
        if kind == "fault.recovered":
            service, millis = escape(data["service"]), data["recovery_ms"]
            from_restore = data.get("recovery_from_restore_ms")
            after_restore = (
                f" ({from_restore:.1f} ms after the {escape(str(data.get('restore', 'restore')))})"
                if isinstance(from_restore, int | float)
                else ""
            )
            return f"{service} healthy again {millis:.1f} ms after the fault{after_restore}"
        if kind == "condition.violated":
            return _styled("failed", f"condition broke (step {data['step']}): {data['detail']}")
        if kind == "check.finished":
            status, detail = _styled(data["status"]), escape(data["detail"])
            return f"check {data['check']} {escape(data['name'])} {status}: {detail}"
        if kind == "undo.finished":
            status, detail = _styled(data["status"]), escape(data["detail"])
            return f"undo {data['action']} {escape(data['service'])} {status}: {detail}"
        return None


def summary_table(result: RunResult) -> Table:
    table = Table(
        title=f"{result.scenario}  (run {result.run_id}, seed {result.seed})", title_justify="left"
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("What")
    table.add_column("Status", no_wrap=True)
    table.add_column("Time", justify="right", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    rows: list[tuple[str, str, Status, float | None, str]] = []
    if result.setup is not None:
        rows.append(
            (
                "setup",
                result.setup.name,
                result.setup.status,
                result.setup.duration_ms,
                result.setup.detail,
            )
        )
    before = [s for s in result.steady_state if s.step_id.startswith("before")]
    after = [s for s in result.steady_state if not s.step_id.startswith("before")]
    for part in (before, result.steps, after):
        rows += [(s.step_id, s.name, s.status, s.duration_ms, s.detail) for s in part]
    rows += [(f"check {c.index}", c.name, c.status, None, c.detail) for c in result.checks]
    for ident, name, status, millis, detail in rows:
        table.add_row(
            ident,
            escape(name),
            _styled(status.value),
            "" if millis is None or status is Status.SKIPPED else f"{millis:.1f} ms",
            escape(detail),
        )
    return table


def recovery_table(result: RunResult) -> Table | None:
    if not result.recoveries:
        return None
    table = Table(title="Recoveries", title_justify="left")
    numbers = ("Injected", "Restored", "Healthy", "Recovery", "From restore")
    for column in ("Service", "Fault", "Step", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for r in result.recoveries:
        table.add_row(
            escape(r.service),
            escape(r.fault),
            escape(f"{r.step_id} {r.step_name}"),
            f"{r.injected_at_ms:.1f} ms",
            _restored(r),
            "-" if r.recovered_at_ms is None else f"{r.recovered_at_ms:.1f} ms",
            escape(r.detail) if r.recovery_ms is None else f"{r.recovery_ms:.1f} ms",
            "-" if r.recovery_from_restore_ms is None else f"{r.recovery_from_restore_ms:.1f} ms",
        )
    return table


def _restored(recovery: Recovery) -> str:
    """When the fault's resume or start was performed ("-": never, or it restores itself)."""
    if recovery.restored_at_ms is None:
        return "-"
    by_undo = " (undo)" if recovery.restored_by == RESTORED_BY_UNDO else ""
    return f"{recovery.restored_at_ms:.1f} ms{by_undo}"


def print_summary(console: Console, result: RunResult, report_paths: list[Any]) -> None:
    console.print(summary_table(result))
    recoveries = recovery_table(result)
    if recoveries is not None:
        console.print(recoveries)
    style = _OUTCOME_STYLE.get(result.outcome, "bold red")
    verdict = result.outcome.value.upper()
    because = f": {escape(result.reason)}" if result.reason else ""
    seconds = result.duration_ms / 1000.0
    console.print(
        f"[{style}]{verdict}[/{style}] {escape(result.scenario)} in {seconds:.2f} s{because}",
        highlight=False,
    )
    if report_paths:
        console.print("reports: " + ", ".join(str(p) for p in report_paths), highlight=False)
    console.print(f"replay with --seed {result.seed}", highlight=False)
