"""The terminal: live progress while a run goes, and a summary table at the end.

On a terminal (:func:`terminal_for_stdout` decides), lines are coloured and a
spinner names the step in progress, through rich. Otherwise (CI logs, pipes) each
event is one plain line and tables are padded text: rich is not even imported,
and a run of a thousand steps does not spend its time laying out a table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, TextIO

from test_coordinator.engine.results import RunResult
from test_coordinator.ports.storage import JournalEvent
from test_coordinator.reporting.terminal_text import (
    Piece,
    TextTable,
    progress_line,
    recovery_table,
    summary_table,
    verdict_lines,
)
from test_coordinator.runtime.stdout_loss import give_up_on, is_lost_output

PLAIN_WIDTH = 140
"""Columns for tables when stdout is not a terminal (CI logs are wide)."""


class Spinner(Protocol):
    def update(self, text: str) -> None: ...
    def stop(self) -> None: ...


class Terminal(Protocol):
    """Where the CLI writes for people."""

    @property
    def is_terminal(self) -> bool: ...

    def line(self, text: str, style: str = "") -> None:
        """One line of text, as it is (no markup)."""

    def pieces(self, pieces: Sequence[Piece]) -> None:
        """One line made of styled pieces."""

    def table(self, table: TextTable) -> None: ...

    def spinner(self, text: str) -> Spinner | None:
        """A live status line, where the terminal has one."""


class PlainTerminal:
    """Text for logs and pipes: no colour, no spinner, tables padded to their widest cell."""

    is_terminal = False

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.reader_gone = False

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def line(self, text: str, style: str = "") -> None:
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        """Write, unless the output is gone: a reader that closed the pipe (``| head``), a
        full disk. The runs then go on (their faults must be undone and their reports
        written) and nothing more is shown; a failure other than the closed pipe is said
        once on standard error."""
        if self.reader_gone:
            return
        try:
            try:
                self.stream.write(text)
            except UnicodeEncodeError:  # an output that cannot show every character (ASCII)
                encoding = self.stream.encoding or "ascii"
                self.stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            self.stream.flush()
        except OSError as exc:
            if not is_lost_output(exc):
                raise
            self.reader_gone = True
            give_up_on(self.stream, exc, "the runs go on and write their reports")

    def pieces(self, pieces: Sequence[Piece]) -> None:
        self.line("".join(text for text, _ in pieces))

    def table(self, table: TextTable) -> None:
        header = [column.name for column in table.columns]
        rows = [[text for text, _ in row] for row in table.rows]
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
        out = [table.title]
        for cells in (header, *rows):
            out.append(
                "  ".join(
                    (cell.rjust(width) if column.numeric else cell.ljust(width))
                    for cell, width, column in zip(cells, widths, table.columns, strict=True)
                ).rstrip()
            )
        self._write("\n".join(out) + "\n")

    def spinner(self, text: str) -> Spinner | None:
        return None


def terminal_for_stdout() -> Terminal:
    """rich on a terminal, plain text otherwise (nothing, when there is no stdout at all)."""
    if sys.stdout is None:  # started with its output closed (>&-): the runs go on unseen
        return PlainTerminal(open(os.devnull, "w", encoding="utf-8"))
    if sys.stdout.isatty():
        from test_coordinator.reporting.terminal_rich import RichTerminal

        return RichTerminal()
    return PlainTerminal()


class Progress:
    """A journal listener that prints the run as it goes; use as a context manager."""

    def __init__(self, terminal: Terminal, scenario: str) -> None:
        self.terminal = terminal
        self.scenario = scenario
        self._spinner: Spinner | None = None

    def __enter__(self) -> Progress:
        self._spinner = self.terminal.spinner(f"{self.scenario}: starting")
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
        line = progress_line(event)
        if line is not None:
            self.terminal.pieces(line)
        if self._spinner is not None and event.kind == "step.started":
            self._spinner.update(f"{self.scenario}: step {event.data['step']} {event.data['name']}")
        elif self._spinner is not None and event.kind == "cleanup.started":
            self._spinner.update(f"{self.scenario}: undoing and stopping services")


def print_summary(terminal: Terminal, result: RunResult, report_paths: Sequence[Any]) -> None:
    terminal.table(summary_table(result))
    recoveries = recovery_table(result)
    if recoveries is not None:
        terminal.table(recoveries)
    for line in verdict_lines(result, report_paths):
        terminal.pieces(line)
