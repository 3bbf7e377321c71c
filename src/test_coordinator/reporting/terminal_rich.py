"""The terminal through rich: colours, a spinner, tables that fit the window."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from test_coordinator.reporting.terminal import Spinner
from test_coordinator.reporting.terminal_text import Piece, TextTable
from test_coordinator.runtime.stdout_loss import give_up_on, is_lost_output


class RichTerminal:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(highlight=False)
        self.output_gone = False

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal

    def line(self, text: str, style: str = "") -> None:
        self._print(Text(text, style=style))

    def pieces(self, pieces: Sequence[Piece]) -> None:
        self._print(_text(pieces))

    def table(self, table: TextTable) -> None:
        shown = Table(title=table.title, title_justify="left")
        for column in table.columns:
            shown.add_column(
                column.name,
                justify="right" if column.numeric else "left",
                no_wrap=not column.wraps,
                overflow="fold" if column.wraps else "ellipsis",
            )
        for row in table.rows:
            shown.add_row(*(Text(text, style=style) for text, style in row))
        self._print(shown)

    def spinner(self, text: str) -> Spinner | None:
        if self.output_gone:
            return None
        status = self.console.status(Text(text))
        status.start()
        return _RichSpinner(status)

    def _print(self, renderable: Text | Table) -> None:
        """Print, unless the terminal is gone (hung up): then the runs go on unseen."""
        if self.output_gone:
            return
        try:
            self.console.print(renderable)
        except OSError as exc:
            if not is_lost_output(exc):
                raise
            self.output_gone = True
            give_up_on(self.console.file, exc, "the runs go on and write their reports")


class _RichSpinner:
    def __init__(self, status: Status) -> None:
        self._status = status

    def update(self, text: str) -> None:
        self._status.update(Text(text))

    def stop(self) -> None:
        self._status.stop()


def _text(pieces: Sequence[Piece]) -> Text:
    text = Text()
    for part, style in pieces:
        text.append(part, style=style or None)
    return text
