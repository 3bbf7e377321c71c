"""Reading a sample service's own environment variables, with one readable line per mistake."""

from __future__ import annotations

import time
from collections.abc import Mapping

from test_coordinator.config import SettingsError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_text(environ: Mapping[str, str], name: str, default: str) -> str:
    return environ.get(name, "").strip() or default


def env_float(
    environ: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0
) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if not value >= minimum or value == float("inf"):
        raise SettingsError(f"{name}: {raw!r} is out of range; allowed: a number >= {minimum:g}")
    return value


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name}: {raw!r} is not allowed; allowed: true, false")


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch: the audit events' time base."""
    return time.time_ns() // 1_000_000
