"""The terminal: plain text for logs and pipes, rich for a terminal, the same words in both."""

from __future__ import annotations

import errno
import io

import pytest
from rich.console import Console

from test_coordinator.ports.storage import JournalEvent
from test_coordinator.reporting.terminal import PlainTerminal, Progress, terminal_for_stdout
from test_coordinator.reporting.terminal_rich import RichTerminal
from test_coordinator.reporting.terminal_text import Column, TextTable


def table() -> TextTable:
    return TextTable(
        "Recoveries",
        (Column("Service"), Column("Recovery", numeric=True)),
        [[("exchange-[OKX]", ""), ("12.5 ms", "")], [("db", ""), ("1034.0 ms", "green")]],
    )


def test_plain_tables_are_padded_with_numbers_to_the_right() -> None:
    out = io.StringIO()

    PlainTerminal(out).table(table())

    assert out.getvalue().splitlines() == [
        "Recoveries",
        "Service" + " " * 10 + "Recovery",
        "exchange-[OKX]" + " " * 4 + "12.5 ms",
        "db" + " " * 14 + "1034.0 ms",
    ]


def test_progress_prints_one_plain_line_per_event_and_nothing_for_others() -> None:
    out = io.StringIO()
    finished = JournalEvent(
        "r1",
        3,
        1500,
        "step.finished",
        {"step": "2", "name": "kill [db]", "status": "passed", "duration_ms": 3.25, "detail": ""},
    )
    started = JournalEvent("r1", 2, 1400, "step.started", {"step": "2", "name": "kill [db]"})

    with Progress(PlainTerminal(out), "demo") as progress:
        progress(started)
        progress(finished)

    assert out.getvalue() == "   1.500s step 2 kill [db] passed in 3.2 ms\n"


def test_rich_prints_names_as_they_are_not_as_markup() -> None:
    console = Console(width=120, record=True, force_terminal=False)
    terminal = RichTerminal(console)

    terminal.pieces([("service ", ""), ("[red]", "green"), (" is [bold]fine[/bold]", "")])
    terminal.table(table())

    text = console.export_text()
    assert "service [red] is [bold]fine[/bold]" in text
    assert "exchange-[OKX]" in text


def test_stdout_that_is_not_a_terminal_gets_plain_text() -> None:
    assert isinstance(terminal_for_stdout(), PlainTerminal)


class _FullDevice(io.StringIO):
    """An output on a full disk: every write fails with ENOSPC."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def write(self, text: str) -> int:
        self.attempts += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def test_an_output_that_cannot_be_written_is_said_once_and_then_left_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    full = _FullDevice()
    terminal = PlainTerminal(full)

    terminal.line("first")
    terminal.line("second")

    assert 1 == full.attempts
    assert terminal.reader_gone
    assert capsys.readouterr().err == (
        "test-coordinator: cannot write to standard output: No space left on device; "
        "the runs go on and write their reports\n"
    )


def test_a_reader_that_closed_the_pipe_is_left_alone_in_silence(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    terminal = PlainTerminal(ClosedPipe())

    terminal.line("first")

    assert terminal.reader_gone
    assert "" == capsys.readouterr().err
