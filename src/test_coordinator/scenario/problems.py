"""What is wrong with a scenario file, each problem at its line and column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SHOWN_CHARS = 60


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A 1-based line and column in the source file."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class ScenarioProblem:
    """One problem: where it is, which key path, what is wrong and what is allowed."""

    file: str
    position: Position
    path: str
    message: str

    def __str__(self) -> str:
        """One line, whatever the file holds: line breaks and other unprintables are escaped."""
        where = f"{escape(self.file)}:{self.position.line}:{self.position.column}"
        message = escape(self.message)
        return f"{where}: {escape(self.path)}: {message}" if self.path else f"{where}: {message}"


class ScenarioInvalid(Exception):
    """The scenario cannot be used; ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: Sequence[ScenarioProblem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.file, p.position)))
        super().__init__("\n".join(str(problem) for problem in self.problems))


def format_path(loc: Sequence[str | int]) -> str:
    """``("steps", 2, "restart")`` → ``steps[2].restart``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def escape(text: str) -> str:
    """``text`` with every character that is not printable written as Python would escape it.

    Line breaks (``\\n``, ``\\r``, ``\\x85``, ``\\u2028``...), tabs, control and
    format characters all count, so a problem printed with it is always one line.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def shown(value: object) -> str:
    """``value`` for a message: its repr, cut short past SHOWN_CHARS characters."""
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"
    return repr(value)
