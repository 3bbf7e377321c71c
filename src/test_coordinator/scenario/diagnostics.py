"""Turn pydantic's validation errors into problems at a line and column, in plain words."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from test_coordinator.scenario.checks import CHECK_KINDS, CHECK_TYPES
from test_coordinator.scenario.problems import ScenarioProblem, format_path, shown
from test_coordinator.scenario.source import Path, SourceTree
from test_coordinator.scenario.steps import STEP_KINDS, STEP_TYPES
from test_coordinator.scenario.types import NAME_RULE

_TAGGED: dict[str, Mapping[str, type[BaseModel]]] = {"step": STEP_TYPES, "check": CHECK_TYPES}


def problems_from(
    exc: ValidationError, tree: SourceTree, root: type[BaseModel]
) -> list[ScenarioProblem]:
    errors = exc.errors()
    return [_problem(error, tree, root) for error in errors if not _echo(error, errors)]


def _echo(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """A list "too short" only because its items are invalid: those errors say it better."""
    if error["type"] != "too_short":
        return False
    loc = tuple(error["loc"])
    return any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _problem(error: ErrorDetails, tree: SourceTree, root: type[BaseModel]) -> ScenarioProblem:
    loc = tuple(error["loc"])
    path = _source_path(loc, tree)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1], root)
        return tree.problem(path, _unknown_key(key, allowed), at_key=True)
    if kind == "missing":
        parent = path[:-1] if path and path[-1] == loc[-1] else path
        return ScenarioProblem(
            tree.file,
            tree.value_position(parent),
            format_path(parent),
            f"missing required key '{loc[-1]}'",
        )
    if path and path[-1] == "[key]":
        path = path[:-1]
        return tree.problem(
            path, f"{shown(path[-1])} is not a valid name; allowed: {NAME_RULE}", at_key=True
        )
    return tree.problem(path, _message(error))


def _source_path(loc: tuple[Any, ...], tree: SourceTree) -> Path:
    """The part of ``loc`` that exists in the file: tags and union member names are skipped."""
    path: Path = ()
    for part in loc:
        if isinstance(part, str) and part.split(":", 1)[0] in _TAGGED and ":" in part:
            continue
        candidate = (*path, part)
        if candidate in tree.values:
            path = candidate
        elif part == "[key]":
            return (*path, "[key]")
    return path


def _unknown_key(key: str, allowed: list[str] | None) -> str:
    message = f"unknown key {shown(key)}"
    if allowed:
        close = difflib.get_close_matches(key, allowed, n=1)
        message += f"; did you mean '{close[0]}'?" if close else ";"
        message += f" allowed: {', '.join(allowed)}"
    return message


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    deferred = isinstance(value, str) and "${" in value
    if deferred and kind.endswith(("_parsing", "_type")):
        return (
            f"{shown(value)} refers to a captured variable, known only while the run goes; "
            "captured variables may be used in text only"
        )
    if kind == "step_kind":
        return _kind_message(value, STEP_KINDS, "step", "{restart: api}")
    if kind == "check_kind":
        return _kind_message(
            value, CHECK_KINDS, "check", "{recovery_time: {service: api, max: 2s}}"
        )
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {_show(value)}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {_show(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {_show(value)}"
    if kind == "string_type":
        return f"expected text, got {_show(value)}"
    if kind == "literal_error":
        return f"{_show(value)} is not allowed; allowed: {ctx.get('expected')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {_show(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list, got {_show(value)}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"{_show(value)} is not a valid name; allowed: {NAME_RULE}"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = str(error["msg"]).removeprefix("Input should be ")
        return f"{_show(value)} is out of range; allowed: {bound}"
    return str(error["msg"])


def _kind_message(value: Any, kinds: tuple[str, ...], what: str, example: str) -> str:
    allowed = ", ".join(kinds)
    if not isinstance(value, dict):
        got = _show(value)
        return f"expected a {what} mapping such as {example}, got {got}; allowed keys: {allowed}"
    present = [key for key in value if key in kinds]
    if len(present) > 1:
        return f"a {what} has exactly one kind key; found {', '.join(present)}"
    for key in value:
        close = difflib.get_close_matches(str(key), kinds, n=1)
        if close and key not in ("name", "timeout"):
            return f"unknown {what} '{key}'; did you mean '{close[0]}'? allowed: {allowed}"
    return f"a {what} needs one of: {allowed}; found keys {', '.join(map(str, value)) or 'none'}"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return shown(value)


def _allowed_keys(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str] | None:
    current: Any = root
    for part in loc:
        current = _descend(current, part)
        if current is None:
            return None
    model = _as_model(current)
    if model is None:
        return None
    return [field.alias or name for name, field in model.model_fields.items()]


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _as_model(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        return _as_model(members[0]) if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _descend(annotation: Any, part: Any) -> Any:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        if isinstance(part, str) and ":" in part and part.split(":", 1)[0] in _TAGGED:
            family, kind = part.split(":", 1)
            return _TAGGED[family].get(kind)
        members = [m for m in get_args(annotation) if m is not type(None)]
        return _descend(members[0], part) if len(members) == 1 else None
    if origin in (tuple, list):
        return get_args(annotation)[0] if isinstance(part, int) else None
    if origin is dict:
        return get_args(annotation)[1] if isinstance(part, str) else None
    model = _as_model(annotation)
    if model is not None:
        for name, field in model.model_fields.items():
            if (field.alias or name) == part:
                return field.annotation
    return None
