"""The runs API's request and response bodies, as the OpenAPI document describes them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from test_coordinator.ports.storage import RunStatus
from test_coordinator.service.runs.manager import RunView

SEED_MAX = 2**31 - 1
VarValue = str | int | float | bool


class RunSubmission(BaseModel):
    """A run of ``scenario`` (a name in the library) or of ``document`` (a scenario's YAML)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"scenario": "exchange-restart-during-trading"},
                {"scenario": "exchange-pause", "vars": {"hold": "2s"}, "seed": 7},
            ]
        },
    )

    scenario: str | None = Field(default=None, min_length=1, max_length=500)
    document: str | None = Field(default=None, min_length=1)
    vars: dict[str, VarValue] = Field(default_factory=dict, max_length=200)
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX, strict=True)

    @field_validator("scenario", "document")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        return None if value is None else text_problem(value)

    @field_validator("vars")
    @classmethod
    def _plain_vars(cls, value: dict[str, VarValue]) -> dict[str, VarValue]:
        for name, item in value.items():
            text_problem(name)
            if isinstance(item, str):
                text_problem(item)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> RunSubmission:
        if (self.scenario is None) == (self.document is None):
            raise ValueError("give exactly one of scenario (a name in the library) and document")
        return self

    def var_texts(self) -> dict[str, str]:
        """Variables as the CLI's --var gives them: text, converted by the scenario's types."""
        return {
            name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in self.vars.items()
        }


class ValidationRequest(RunSubmission):
    """A scenario to validate: by name in the library, or as a document."""


class Problem(BaseModel):
    """One problem: in a scenario (file, line, column, key path) or in the request (path)."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None


class Problems(BaseModel):
    detail: str
    problems: list[Problem]


class ErrorBody(BaseModel):
    detail: str


class RunLinks(BaseModel):
    self: str
    events: str
    journal: str
    report: str
    junit: str


class RunOut(BaseModel):
    run_id: str
    scenario: str
    status: RunStatus
    submitted_at_ms: int | None = None
    started_at_ms: int
    ended_at_ms: int | None = None
    outcome: str | None = None
    reason: str | None = None
    seed: int | None = None
    source: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    queue_position: int | None = None
    waiting_for: str = ""
    cancel_requested: bool = False
    links: RunLinks

    @classmethod
    def of(cls, view: RunView) -> RunOut:
        record = view.record
        summary = dict(record.summary)
        base = f"/api/v1/runs/{record.run_id}"
        return cls(
            run_id=record.run_id,
            scenario=record.scenario,
            status=record.status,
            submitted_at_ms=_int_or_none(summary.get("submitted_at_ms")),
            started_at_ms=record.started_at_ms,
            ended_at_ms=record.ended_at_ms,
            outcome=_str_or_none(summary.get("outcome")),
            reason=_str_or_none(summary.get("reason")),
            seed=_int_or_none(summary.get("seed")),
            source=_str_or_none(summary.get("source")),
            vars=dict(summary.get("vars") or {}),
            queue_position=view.queue_position,
            waiting_for=view.waiting_for,
            cancel_requested=view.cancel_requested,
            links=RunLinks(
                self=base,
                events=f"{base}/events",
                journal=f"{base}/journal",
                report=f"{base}/report.html",
                junit=f"{base}/junit.xml",
            ),
        )


class RunDetail(RunOut):
    """A run with what it did, once it ended (from its journal.json): each part a list of
    plain objects as in the journal file."""

    setup: dict[str, Any] | None = None
    steady_state: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[dict[str, Any]] = Field(default_factory=list)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    recoveries: list[dict[str, Any]] = Field(default_factory=list)
    undos: list[dict[str, Any]] = Field(default_factory=list)


class RunPage(BaseModel):
    runs: list[RunOut]
    next: str | None = Field(default=None, description="cursor of the next (older) page")


class JournalEventOut(BaseModel):
    seq: int
    at_ms: float
    kind: str
    data: dict[str, Any]


class Journal(BaseModel):
    run_id: str
    events: list[JournalEventOut]


class ScenarioOut(BaseModel):
    name: str
    file: str


class ScenarioList(BaseModel):
    scenarios: list[ScenarioOut]


class ValidationOut(BaseModel):
    valid: bool
    problems: list[Problem]


def text_problem(value: str) -> str:
    """``value`` unchanged; ValueError when it cannot be stored or shown as UTF-8 text (a lone
    surrogate) or holds NUL, which no store keeps."""
    if "\x00" in value:
        raise ValueError("holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not UTF-8 text (it holds a lone surrogate)") from None
    return value


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
