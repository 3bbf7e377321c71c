"""What a probe answers; kept apart from the probes so that importing it is cheap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check's outcome: ``value`` is what the target answered (None if nothing)."""

    ok: bool
    value: Any
    detail: str
    latency_ms: float
    refused: bool = False
    """The target saw the probe and said no (an unexpected HTTP status, NOT_SERVING, a
    command that ran and failed), as opposed to not answering at all. Polling backs
    off on refusals: each one costs the target work, while a refused connection or
    a timeout costs it nothing."""
