"""Durations as the scenario language writes them: ``250ms``, ``2s``, ``1.5m``, ``1h``."""

from __future__ import annotations

import math
import re

from test_coordinator.scenario.problems import shown

# ASCII digits and spaces only: ``\d`` alone takes other scripts' digits too.
DURATION_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)\s*$"
DURATION_RULE = "a number with a unit, such as 250ms, 2s, 1.5m or 1h"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION_S = 30 * 24 * 3600.0
"""30 days: longer is a typo (and past what event loops' timers take: uvloop's overflow)."""
_DURATION = re.compile(DURATION_PATTERN, re.ASCII)


def parse_duration(value: object) -> float:
    """Seconds from a duration such as ``"250ms"``; ValueError names what is allowed."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"{shown(value)} has no unit; allowed: {DURATION_RULE}")
        raise ValueError(f"expected a duration; allowed: {DURATION_RULE}")
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ValueError(f"{shown(value)} is not a duration; allowed: {DURATION_RULE}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise ValueError(
            f"{shown(value)} is too long a duration; allowed: {DURATION_RULE}, at most 720h"
        )
    return seconds


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
