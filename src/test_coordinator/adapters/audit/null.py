"""The audit sink used when no audit correlator is configured: it forgets everything."""

from __future__ import annotations

from test_coordinator.ports.audit import AuditEvent


class NullAuditSink:
    def emit(self, event: AuditEvent) -> None:
        return None

    async def flush(self, timeout_s: float) -> bool:
        return True

    async def close(self) -> None:
        return None


class RecordingAuditSink:
    """Keeps every event in ``events``: the test double of the AuditSink port."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.closed = False

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def flush(self, timeout_s: float) -> bool:
        return True

    async def close(self) -> None:
        self.closed = True

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]
