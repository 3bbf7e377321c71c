"""What is wrong with a scenario file, each problem at its line and column."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
        where = f"{self.file}:{self.position.line}:{self.position.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


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
