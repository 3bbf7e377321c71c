"""Durations as the scenario language writes them: ``250ms``, ``2s``, ``1.5m``, ``1h``."""

from __future__ import annotations

import re

DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$"
DURATION_RULE = "a number with a unit, such as 250ms, 2s, 1.5m or 1h"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration(value: object) -> float:
    """Seconds from a duration such as ``"250ms"``; ValueError names what is allowed."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"{value!r} has no unit; allowed: {DURATION_RULE}")
        raise ValueError(f"expected a duration; allowed: {DURATION_RULE}")
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; allowed: {DURATION_RULE}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: ``0.25`` → ``250ms``, ``2.0`` → ``2s``, ``90.0`` → ``90s``."""
    millis = round(seconds * 1000, 3)
    if millis < 1000 or millis % 1000:
        return f"{millis:g}ms"
    whole = int(millis // 1000)
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0 and whole >= 60:
        return f"{whole // 60}m"
    return f"{whole}s"
