"""What a caller asks of the runs service, and each way the service can say no."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from test_coordinator.scenario.problems import ScenarioProblem


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Run ``scenario`` (a name in the library) or ``document`` (a scenario's text).

    ``remote``: it came over the network, so a document may not run things on this
    host unless the service allows it (see :mod:`.remote_policy`)."""

    scenario: str | None = None
    document: str | None = None
    vars: Mapping[str, str] = field(default_factory=dict)
    seed: int | None = None
    remote: bool = True

    def __post_init__(self) -> None:
        if (self.scenario is None) == (self.document is None):
            raise ValueError("a run needs exactly one of scenario (a name) and document")


class RunRefused(Exception):
    """The service will not do what was asked; ``reason`` says why, for the caller."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return {"detail": self.reason}


class ScenarioRejected(RunRefused):
    """The scenario is not valid: every problem, with its line and column."""

    status = 422

    def __init__(self, problems: Sequence[ScenarioProblem]) -> None:
        super().__init__(f"the scenario is not valid: {len(problems)} problem(s)")
        self.problems = tuple(problems)

    def body(self) -> dict[str, Any]:
        return {
            "detail": self.reason,
            "problems": [
                {
                    "file": p.file,
                    "line": p.position.line,
                    "column": p.position.column,
                    "path": p.path,
                    "message": p.message,
                }
                for p in self.problems
            ],
        }


class UnknownScenario(RunRefused):
    status = 404


class RunNotFound(RunRefused):
    status = 404


class NotAllowed(RunRefused):
    """A remote scenario wants to run something on this host, and the service does not allow it."""

    status = 403


class QueueFull(RunRefused):
    status = 429


class RunAlreadyEnded(RunRefused):
    status = 409


class ServiceStopping(RunRefused):
    status = 503
