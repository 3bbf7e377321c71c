"""An ended run's detail (from its journal.json) as the gRPC API's ``RunDetail``.

The journal is the run's own file: each field is taken only when it has the type the
message wants, so an unexpected file gives a thinner answer, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from test_coordinator.grpc_api.v1 import test_coordinator_pb2 as pb

VALUE_JSON_CHARS = 4096
M = TypeVar("M", pb.StepResult, pb.CheckResult, pb.Recovery, pb.UndoResult)


def detail_message(parts: Mapping[str, Any]) -> pb.RunDetail:
    """``parts`` as :func:`~test_coordinator.service.runs.run_files.journal_detail` gives it."""
    detail = pb.RunDetail()
    setup = parts.get("setup")
    if isinstance(setup, Mapping):
        detail.setup.CopyFrom(_step(setup))
    detail.steady_state.extend(_step(item) for item in parts.get("steady_state", ()))
    detail.steps.extend(_step(item) for item in parts.get("steps", ()))
    detail.checks.extend(_check(item) for item in parts.get("checks", ()))
    detail.recoveries.extend(_recovery(item) for item in parts.get("recoveries", ()))
    detail.undos.extend(_undo(item) for item in parts.get("undos", ()))
    return detail


def _step(item: Mapping[str, Any]) -> pb.StepResult:
    step = _with_texts(pb.StepResult(), item, "step_id", "name", "kind", "status", "detail")
    for name in ("started_at_ms", "ended_at_ms"):
        if _is_number(item.get(name)):
            setattr(step, name, float(item[name]))
    targets = item.get("targets")
    if isinstance(targets, list):
        step.targets.extend(str(target) for target in targets)
    step.value_json = _value_json(item.get("value"))
    return step


def _check(item: Mapping[str, Any]) -> pb.CheckResult:
    check = _with_texts(pb.CheckResult(), item, "name", "kind", "status", "detail")
    index = item.get("index")
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 2**31:
        check.index = index
    check.value_json = _value_json(item.get("value"))
    return check


def _recovery(item: Mapping[str, Any]) -> pb.Recovery:
    recovery = _with_texts(
        pb.Recovery(),
        item,
        *("service", "step_id", "step_name", "fault", "detail", "restore", "restored_by"),
    )
    for name in (
        "injected_at_ms",
        "recovered_at_ms",
        "restored_at_ms",
        "recovery_ms",
        "recovery_from_restore_ms",
    ):
        if _is_number(item.get(name)):
            setattr(recovery, name, float(item[name]))
    return recovery


def _undo(item: Mapping[str, Any]) -> pb.UndoResult:
    return _with_texts(pb.UndoResult(), item, "undo_id", "service", "action", "status", "detail")


def _with_texts(message: M, item: Mapping[str, Any], *names: str) -> M:
    """``message`` with each of ``names`` that ``item`` holds as text."""
    for name in names:
        if isinstance(item.get(name), str):
            setattr(message, name, item[name])
    return message


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_json(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= VALUE_JSON_CHARS else text[: VALUE_JSON_CHARS - 3] + "..."
