"""Field types shared by the scenario models: text, durations, names, targets, signals."""

from __future__ import annotations

import re
import signal
import warnings
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from test_coordinator.scenario.durations import DURATION_PATTERN, format_duration, parse_duration
from test_coordinator.scenario.problems import shown

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,62}$"
NAME_RULE = "letters, digits, '_' and '-', starting with a letter"
VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    """Every scenario model: unknown keys are errors and values never change.

    Validators are built on first use (``defer_build``), not when the class is defined:
    validating a :class:`~test_coordinator.scenario.model.Scenario` builds the whole
    format at once, which costs a command's start-up less than building each of the
    sixty-odd models on its own first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, defer_build=True)


def build_every_model() -> None:
    """Build every scenario model's validator now, not on first use: for a process that
    validates from several threads (``serve``), where two first uses must not race."""
    pending: list[type[Strict]] = [Strict]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not Strict:
            cls.model_rebuild()


def _to_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_to_text)]
"""Text; numbers and booleans written without quotes are taken as their text."""

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["250ms", "2s"]}),
]
"""Seconds, written with a unit: ``250ms``, ``2s``, ``1m`` (and dumped to JSON the same way)."""

ServiceName = Annotated[str, Field(pattern=NAME_PATTERN)]
VarName = Annotated[str, Field(pattern=VAR_PATTERN)]
Scalar = str | int | float | bool


def _signal_name(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return signal.Signals(value).name
        except ValueError:
            pass
    elif isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name in signal.Signals.__members__:
            return name
    raise ValueError(
        f"{value!r} is not a signal; allowed: a name such as SIGKILL, SIGTERM, SIGINT, SIGHUP, "
        "SIGUSR1, or its number"
    )


SignalName = Annotated[
    str,
    BeforeValidator(_signal_name),
    WithJsonSchema({"type": ["string", "integer"], "examples": ["SIGKILL", "SIGTERM"]}),
]

_NAME = re.compile(NAME_PATTERN)
_TARGETS_RULE = "a service name, a list of names, or {random: [names], pick: N}"


class Targets(Strict):
    """The services a step acts on: ``api``, ``[api, db]`` or ``{random: [api, db]}``.

    A random target picks ``pick`` of the names with the run's seed, so a run
    can be replayed exactly with ``--seed``.
    """

    services: tuple[str, ...]
    random: bool = False
    pick: int = 1

    _allowed_random_keys: ClassVar[frozenset[str]] = frozenset({"random", "pick"})

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, value: Any) -> Any:
        if isinstance(value, Targets):
            return value
        if isinstance(value, str):
            names: Any = [value]
            return {"services": _names(names)}
        if isinstance(value, list | tuple):
            return {"services": _names(value)}
        if isinstance(value, dict) and "services" not in value:
            unknown = sorted(set(value) - cls._allowed_random_keys)
            if unknown or "random" not in value:
                raise ValueError(f"expected {_TARGETS_RULE}; got keys {sorted(value)}")
            names = _names(value["random"])
            pick = value.get("pick", 1)
            if isinstance(pick, bool) or not isinstance(pick, int) or not 1 <= pick <= len(names):
                raise ValueError(f"pick must be a whole number from 1 to {len(names)}")
            return {"services": names, "random": True, "pick": pick}
        if isinstance(value, dict):
            return value
        raise ValueError(f"expected {_TARGETS_RULE}")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        names = {"type": "array", "items": {"type": "string"}, "minItems": 1}
        return {
            "description": cls.__doc__.split("\n")[0] if cls.__doc__ else "",
            "anyOf": [
                {"type": "string"},
                names,
                {
                    "type": "object",
                    "properties": {"random": names, "pick": {"type": "integer", "minimum": 1}},
                    "required": ["random"],
                    "additionalProperties": False,
                },
            ],
        }

    def describe(self) -> str:
        names = ", ".join(self.services)
        if not self.random:
            return names
        return f"random {self.pick} of [{names}]"


def _names(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"expected {_TARGETS_RULE}")
    names = []
    for item in value:
        if not isinstance(item, str) or not _NAME.fullmatch(item):
            raise ValueError(f"{shown(item)} is not a service name; allowed: {NAME_RULE}")
        if item in names:
            raise ValueError(f"{shown(item)} is listed twice")
        names.append(item)
    return names


def _service_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


ServiceList = Annotated[
    tuple[ServiceName, ...],
    BeforeValidator(_service_list),
    Field(min_length=1),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]
"""One service name or a list of them."""


def checked_regex(value: str | None) -> str | None:
    """``value`` if it compiles as a regular expression (or still holds a ``${var}``)."""
    if value is not None and "${" not in value:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "possible nested set" and the like
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
            except RecursionError:
                raise ValueError("not a valid regular expression: nested too deep") from None
            except Warning as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def kind_of(value: object, types: Mapping[str, type]) -> str:
    """The key under which ``value``'s exact type is registered in ``types``."""
    for kind, kind_type in types.items():
        if type(value) is kind_type:
            return kind
    raise TypeError(f"not one of {', '.join(types)}: {value!r}")


def key_discriminator(
    prefix: str, base: type, types: Mapping[str, type]
) -> Callable[[Any], str | None]:
    """A pydantic discriminator for a union told apart by which one kind key a mapping has."""

    def discriminate(value: Any) -> str | None:
        if isinstance(value, base):
            return f"{prefix}:{kind_of(value, types)}"
        if isinstance(value, dict):
            kinds = [key for key in value if key in types]
            if len(kinds) == 1:
                return f"{prefix}:{kinds[0]}"
        return None

    return discriminate
