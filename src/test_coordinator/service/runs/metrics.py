"""The work of the runs service as Prometheus metrics: runs by verdict, faults injected by
kind, recovery time by target service (``target``: ``service`` is the coordinator's own
constant label), runs in progress and the queue's length."""

from __future__ import annotations

from test_coordinator.engine.results import RunResult, Status
from test_coordinator.ports.metrics import Metrics

FAULT_STEP_KINDS = frozenset({"restart", "kill", "pause", "stop", "network", "partition"})
RECOVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RunMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._runs = metrics.counter("runs_total", "Runs ended, by verdict", ("verdict",))
        self._faults = metrics.counter(
            "faults_injected_total", "Fault steps run, by kind", ("kind",)
        )
        self._recovery = metrics.histogram(
            "recovery_seconds",
            "Time from a fault's injection to the service's first healthy probe",
            ("target",),
            buckets=RECOVERY_BUCKETS,
        )
        self._in_progress = metrics.gauge("runs_in_progress", "Runs running now")
        self._queued = metrics.gauge("run_queue_length", "Runs waiting to start")

    def queue_length(self, count: int) -> None:
        self._queued.set(count)

    def in_progress(self, count: int) -> None:
        self._in_progress.set(count)

    def finished(self, verdict: str, result: RunResult | None) -> None:
        self._runs.inc(verdict=verdict)
        if result is None:
            return
        for kind in faults_of(result):
            self._faults.inc(kind=kind)
        for recovery in result.recoveries:
            if recovery.recovery_ms is not None:
                self._recovery.observe(recovery.recovery_ms / 1000.0, target=recovery.service)


def faults_of(result: RunResult) -> list[str]:
    """The kind of each fault step that ran."""
    return [
        s.kind
        for s in result.steps
        if s.kind in FAULT_STEP_KINDS and s.status is not Status.SKIPPED
    ]
