"""What a sample service tells the audit correlator about itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from test_coordinator.ports.audit import AuditEvent, AuditSink
from test_coordinator.sample.options import now_ms


class Observations:
    """Reports events under this instance's name; never blocks, never raises."""

    def __init__(self, sink: AuditSink, source: str, clock: Callable[[], int] = now_ms) -> None:
        self._sink = sink
        self.source = source
        self._clock = clock

    def report(self, kind: str, *, at_ms: int | None = None, **data: Any) -> None:
        at = self._clock() if at_ms is None else at_ms
        self._sink.emit(AuditEvent(kind, at, None, self.source, data))
