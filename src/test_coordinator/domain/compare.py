"""One rule for comparing a value a probe or a metric produced with what a scenario expects.

``equals``, ``min``/``max`` and ``regex`` mean the same wherever they are written
(conditions, probe checks, metric checks, an HTTP probe's ``json`` fields):

* **equals** compares as JSON (``true`` is not ``1``; ``1`` is ``1.0``; objects and
  lists item by item), except that text is read as what it spells when the other
  side is not text: a command's output ``"5"`` equals ``5``, ``"true"`` equals
  ``true``, ``"null"`` equals ``null``; surrounding whitespace is ignored;
* **min** / **max** need a number, or text that reads as one (not a boolean);
* **regex** searches the value's text: the text itself, or its JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_SPELLED = {"true": True, "false": False, "null": None}


def as_number(value: Any) -> float | None:
    """The value as a finite number, or None (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def equal(expected: Any, actual: Any) -> bool:
    """``expected`` (from the scenario) equals ``actual`` (what was observed), by the rule above."""
    if isinstance(expected, str) != isinstance(actual, str):
        text, other = (expected, actual) if isinstance(expected, str) else (actual, expected)
        return _spelled_equal(text, other)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return expected.keys() == actual.keys() and all(
            equal(expected[k], actual[k]) for k in expected
        )
    if _is_list(expected) and _is_list(actual):
        return len(expected) == len(actual) and all(
            equal(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return bool(expected == actual)


def _spelled_equal(text: str, other: Any) -> bool:
    """Text against a non-text value: the text read as a number, boolean or null."""
    stripped = text.strip()
    if isinstance(other, bool) or other is None:
        return stripped in _SPELLED and _SPELLED[stripped] is other
    if isinstance(other, int | float):
        number = as_number(stripped)
        return number is not None and number == float(other)
    return False


def mismatch(
    value: Any,
    *,
    equals: Any = None,
    min: float | None = None,
    max: float | None = None,
    regex: str | None = None,
) -> list[str]:
    """Why ``value`` fails the comparisons given (empty: it passes), one phrase each."""
    problems = []
    if equals is not None and not equal(equals, value):
        problems.append(f"value {_shown(value)}, expected {_shown(equals)}")
    if min is not None or max is not None:
        number = as_number(value)
        if number is None:
            problems.append(f"value {_shown(value)} is not a number")
        else:
            if min is not None and number < min:
                problems.append(f"value {number:g} is below the minimum {min:g}")
            if max is not None and number > max:
                problems.append(f"value {number:g} is above the maximum {max:g}")
    if regex is not None and re.search(regex, as_text(value)) is None:
        problems.append(f"value {_shown(as_text(value)[:200])} does not match /{regex}/")
    return problems


def impossible(
    *,
    equals: Any = None,
    min: float | None = None,
    max: float | None = None,
    regex: str | None = None,
) -> str | None:
    """Why these comparisons can never all hold together, or None."""
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not math.isfinite(bound):
            return f"{name} {bound!r} is not a finite number: no value can satisfy it"
    if isinstance(equals, float) and not math.isfinite(equals):
        return f"equals {equals!r} is not a finite number: no value can equal it"
    if min is not None and max is not None and min > max:
        return f"min {min:g} is above max {max:g}: no value can satisfy both"
    if equals is not None and (min is not None or max is not None):
        number = as_number(equals) if not isinstance(equals, bool) else None
        if number is None:
            return f"equals {_shown(equals)} is not a number, so min/max can never hold"
        if (min is not None and number < min) or (max is not None and number > max):
            return f"equals {_shown(equals)} lies outside min/max: they can never hold together"
    if equals is not None and regex is not None and re.search(regex, as_text(equals)) is None:
        return f"equals {_shown(equals)} does not match regex /{regex}/: they can never both hold"
    return None


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else as_text(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
