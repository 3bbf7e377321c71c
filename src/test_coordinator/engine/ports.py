"""What the engine needs from the outside: targets, probes, metrics, load and storage.

The real implementations live in :mod:`test_coordinator.targets` and
:mod:`test_coordinator.runtime` and are wired by :mod:`test_coordinator.engine.wiring`;
tests pass fakes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from test_coordinator.ports.storage import RunStore
from test_coordinator.scenario.probes import ProbeSpec
from test_coordinator.scenario.steps import LoadSpec
from test_coordinator.targets.port import RunScope, TargetSpec
from test_coordinator.targets.router import RunTargets

if TYPE_CHECKING:  # loaded when a scenario has audit: (a run without it never needs them)
    from test_coordinator.ports.audit import AuditSink, Correlation


class ProbeOutcome(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def value(self) -> Any: ...
    @property
    def detail(self) -> str: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def refused(self) -> bool: ...


class Probe(Protocol):
    async def check(self) -> ProbeOutcome:
        """Look once; never raises for a target that is down (ok=False instead)."""

    async def aclose(self) -> None:
        """Let go of what the probe keeps between looks (a connection, a channel)."""


class ProbeFactory(Protocol):
    def probe(self, spec: ProbeSpec) -> Probe: ...


class LoadStats(Protocol):
    @property
    def count(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def error_rate(self) -> float: ...
    @property
    def p50_ms(self) -> float | None: ...
    @property
    def p95_ms(self) -> float | None: ...
    @property
    def p99_ms(self) -> float | None: ...
    @property
    def max_ms(self) -> float | None: ...
    @property
    def reasons(self) -> Mapping[str, int]:
        """The failed attempts by reason (``timeout``, ``refused``, ``status 503`` ...)."""

    @property
    def skipped(self) -> int:
        """Sends the generator itself missed (it fell behind); neither requests nor errors."""


class LoadRunner(Protocol):
    def start(self) -> None: ...
    async def stop(self) -> None: ...
    def summary(self, start_ms: float | None = None, end_ms: float | None = None) -> LoadStats: ...


MetricReader = Callable[[str, str, Mapping[str, str]], Awaitable[float | None]]
"""``(url, name, labels) -> value`` of a Prometheus sample, None when absent; raises
:class:`InfrastructureError`-worthy errors as exceptions with a readable message."""

LoadFactory = Callable[[LoadSpec, float], LoadRunner]
"""``(spec, origin_s)``: a load generator whose sample times are relative to ``origin_s``."""

TargetsFactory = Callable[[Mapping[str, TargetSpec], RunScope], RunTargets]
"""``(specs, scope)``: one run's targets, every service on the backend of its kind."""


class AuditLink(Protocol):
    """One run's connection to the audit correlator: a sink for its events and the queries.

    ``correlate`` raises :class:`~test_coordinator.ports.audit.AuditUnavailable` when
    the correlator does not answer and ``AuditQueryFailed`` for an answer that is
    not a correlation.
    """

    @property
    def sink(self) -> AuditSink: ...

    async def correlate(
        self,
        correlation_id: str,
        from_ms: int,
        to_ms: int,
        *,
        slack_ms: int,
        in_flight_ms: int,
    ) -> Correlation: ...

    def stats(self) -> Mapping[str, Any]:
        """The sink's delivery counts (delivered, pending, dropped...), for the journal."""

    async def close(self) -> None:
        """Deliver what can be delivered within a short grace period; idempotent."""


AuditLinkFactory = Callable[[str, Path], AuditLink]
"""``(url, run_dir)``: the link to the audit correlator at ``url`` for one run."""


class RunGuard(Protocol):
    """A watchdog outside the coordinator that undoes the run if the coordinator dies."""

    def arm(self, lifetime_s: float) -> Mapping[str, Any]:
        """Start watching; the guard's identity (host, pid, start time) for the run record.
        ``lifetime_s`` is the longest the run may last (its timeout and its undo budget):
        past it, a coordinator that is stopped cannot end the run, and the guard ends it."""

    def disarm(self) -> None:
        """The run ended and undid everything itself: stand down (bounded wait)."""


GuardFactory = Callable[[str, Path], RunGuard]
"""``(run_id, run_dir)``: the guard of one run."""


@dataclass(frozen=True, slots=True)
class EngineDeps:
    """Everything :func:`run_scenario` touches, so tests can replace any of it."""

    store: RunStore
    targets_factory: TargetsFactory
    probes: ProbeFactory
    read_metric: MetricReader
    load_factory: LoadFactory
    poll_interval_s: float
    clock: Callable[[], float] = time.monotonic
    wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    audit_link: AuditLinkFactory | None = None
    """None: scenarios with ``audit:`` run without reporting, and audit checks fail."""
    guard: GuardFactory | None = None
    """None: no watchdog; after a crash, ``recover`` (or the next run) undoes the run."""
