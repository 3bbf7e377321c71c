"""Variables: defaults, overrides, free ports, and ``${name}`` substitution.

A variable's value comes from, in order of precedence: ``--var name=value``,
the environment variable ``TC_VAR_<NAME>`` (the name in upper case), and the
default under ``vars:``. An override takes the type of its default: a number
default makes ``--var max_recovery_ms=1`` the number 1.

``${name}`` is replaced anywhere in a string; a string that is exactly
``${name}`` takes the variable's value with its type, so ``port: ${api_port}``
is a number. ``$${`` writes a literal ``${``. Variables captured by a step are
known only while the run goes: their references stay in place until then.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

Scalar = str | int | float | bool
ENV_PREFIX = "TC_VAR_"
REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")

ModelT = TypeVar("ModelT", bound=BaseModel)


class OverrideError(ValueError):
    """An override's value does not fit its variable's type."""


def env_name(variable: str) -> str:
    return f"{ENV_PREFIX}{variable.upper()}"


def resolve_values(
    defaults: Mapping[str, Scalar],
    overrides: Mapping[str, str],
    environ: Mapping[str, str],
) -> tuple[dict[str, Scalar], dict[str, str]]:
    """The value of every declared variable, and where each came from (default, env, --var).

    Raises OverrideError naming the variable when an override does not fit its default's type.
    """
    values: dict[str, Scalar] = {}
    origins: dict[str, str] = {}
    for name, default in defaults.items():
        if name in overrides:
            values[name] = coerce(name, overrides[name], default, origin="--var")
            origins[name] = "--var"
        elif env_name(name) in environ:
            values[name] = coerce(name, environ[env_name(name)], default, origin=env_name(name))
            origins[name] = "env"
        else:
            values[name] = default
            origins[name] = "default"
    return values, origins


def coerce(name: str, text: str, default: Scalar, *, origin: str) -> Scalar:
    """``text`` as the type of ``default``."""
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[type(default)]
        raise OverrideError(
            f"{origin} {name}={text!r}: expected {kind}, like its default {as_text(default)}"
        ) from None
    return text


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple) or value is None:
        return json.dumps(value)
    return str(value)


def substitute(
    text: str,
    values: Mapping[str, Any],
    *,
    deferred: frozenset[str] = frozenset(),
    on_unknown: Callable[[str], None] | None = None,
) -> Any:
    """Replace ``${name}`` in ``text``; names in ``deferred`` stay as they are.

    An unknown name is reported through ``on_unknown`` (and left in place).
    """
    if "${" not in text:
        return text
    whole = REFERENCE.fullmatch(text)
    if whole is not None and not whole.group(1) and whole.group(2) in values:
        return values[whole.group(2)]

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        if name in values:
            return as_text(values[name])
        if name not in deferred and on_unknown is not None:
            on_unknown(name)
        return match.group(0)

    return REFERENCE.sub(replace, text)


def references(text: str) -> Iterator[str]:
    """The names ``text`` refers to (escaped ``$${...}`` excluded)."""
    for match in REFERENCE.finditer(text):
        if not match.group(1):
            yield match.group(2)


def unknown_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ";"
    allowed = ", ".join(sorted(known)) if known else "none declared"
    return f"unknown variable '${{{name}}}'{hint} allowed: {allowed}"


def model_has_references(model: BaseModel) -> bool:
    """True if any text in ``model`` still holds a ``${...}`` reference."""
    return any("${" in text for text in _texts(model))


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, BaseModel):
        for field_name in type(value).model_fields:
            yield from _texts(getattr(value, field_name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)


def substitute_model(model: ModelT, values: Mapping[str, Any]) -> ModelT:
    """A copy of ``model`` with ``${name}`` replaced by text in all its strings.

    Validation allows captured variables in text fields only, so no other field
    changes type; values that are not scalars are written as JSON.
    """
    result: ModelT = _substitute_value(model, values)
    return result


def _substitute_value(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value
        replaced = substitute(value, values)
        return replaced if isinstance(replaced, str) else as_text(replaced)
    if isinstance(value, BaseModel):
        changed = {}
        for field_name in type(value).model_fields:
            current = getattr(value, field_name)
            new = _substitute_value(current, values)
            if new is not current:
                changed[field_name] = new
        return value.model_copy(update=changed) if changed else value
    if isinstance(value, tuple):
        items = tuple(_substitute_value(item, values) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        mapped = {key: _substitute_value(item, values) for key, item in value.items()}
        return value if all(mapped[k] is value[k] for k in value) else mapped
    return value
