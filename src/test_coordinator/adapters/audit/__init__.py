"""The coordinator's side of the audit correlator: a buffered reporter and a query client."""

from pathlib import Path

from test_coordinator.adapters.audit.circuit_breaker import (
    BreakerState,
    CircuitBreaker,
    ExponentialBackoff,
)
from test_coordinator.adapters.audit.client import AuditClient
from test_coordinator.adapters.audit.http_reporter import HttpAuditReporter, ReporterStats
from test_coordinator.adapters.audit.null import NullAuditSink, RecordingAuditSink
from test_coordinator.ports.audit import AuditSink


def audit_sink(
    url: str | None,
    *,
    spill_path: Path | None = None,
    linger_s: float = 0.1,
    source: str | None = None,
    heartbeat_s: float | None = None,
) -> AuditSink:
    """An HttpAuditReporter to the audit correlator at ``url``; a NullAuditSink without one.
    With ``source``, its batches say how far that source's events are delivered."""
    if not url:
        return NullAuditSink()
    return HttpAuditReporter(
        url, spill_path=spill_path, linger_s=linger_s, source=source, heartbeat_s=heartbeat_s
    )


__all__ = [
    "AuditClient",
    "BreakerState",
    "CircuitBreaker",
    "ExponentialBackoff",
    "HttpAuditReporter",
    "NullAuditSink",
    "RecordingAuditSink",
    "ReporterStats",
    "audit_sink",
]
