"""Judging conditions: run the probe (or the services' health probes) and compare its value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from test_coordinator.domain.compare import mismatch
from test_coordinator.engine.ports import Probe, ProbeFactory, ProbeOutcome
from test_coordinator.runtime.json_path import JsonPathError, json_path
from test_coordinator.runtime.probes import ProbeResult
from test_coordinator.scenario.inventory import Service
from test_coordinator.scenario.probes import Condition

HealthObserver = Callable[[str, float, float], None]
"""``(service, probe started, probe completed)`` for every healthy answer (monotonic s)."""


class ConditionChecker:
    """Checks conditions; probe objects are built once per condition and kept (keep-alive).

    Every healthy answer of a service's health probe is reported to ``observer``
    (the recovery tracker), whichever step asked for it.
    """

    def __init__(
        self,
        services: Mapping[str, Service],
        probes: ProbeFactory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._services = services
        self._factory = probes
        self._clock = clock
        self._health: dict[str, Probe] = {}
        self._probes: dict[int, tuple[Condition, Probe]] = {}
        self.observer: HealthObserver | None = None

    def health_probe(self, service: str) -> Probe:
        """The service's health probe; its healthy answers are reported to the observer."""
        probe = self._health.get(service)
        if probe is None:
            raw = self._factory.probe(self._services[service].health)
            probe = self._health[service] = _ObservedProbe(service, raw, self)
        return probe

    async def close(self) -> None:
        """Close every probe built so far (their kept-alive connections)."""
        probes = list(self._health.values())
        probes += [probe for _, probe in self._probes.values()]
        self._health.clear()
        self._probes.clear()
        for probe in probes:
            await probe.aclose()

    def _observed(self, service: str, started_s: float, completed_s: float) -> None:
        if self.observer is not None:
            self.observer(service, started_s, completed_s)

    async def check(self, condition: Condition) -> ProbeResult:
        """One look; never raises for a target that is down or wrong."""
        if condition.healthy is not None:
            return await self._healthy(condition.healthy)
        cached = self._probes.get(id(condition))
        if cached is None:
            spec = condition.probe
            assert spec is not None
            cached = self._probes[id(condition)] = (condition, self._factory.probe(spec))
        outcome = await cached[1].check()
        if not outcome.ok:
            return ProbeResult(
                False, outcome.value, outcome.detail, outcome.latency_ms, outcome.refused
            )
        return judge(condition, outcome.value, outcome.detail, outcome.latency_ms)

    async def _healthy(self, services: tuple[str, ...]) -> ProbeResult:
        if len(services) == 1:
            outcome = await self.health_probe(services[0]).check()
            detail = f"{services[0]}: {outcome.detail}"
            return ProbeResult(outcome.ok, None, detail, outcome.latency_ms, outcome.refused)
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(self.health_probe(name).check() for name in services))
        latency = (time.perf_counter() - started) * 1000.0
        failed = [(n, o) for n, o in zip(services, outcomes, strict=True) if not o.ok]
        if failed:
            detail = "; ".join(f"{name}: {outcome.detail}" for name, outcome in failed)
            refused = all(outcome.refused for _, outcome in failed)
            return ProbeResult(False, None, detail, latency, refused)
        return ProbeResult(True, None, f"{', '.join(services)} healthy", latency)


class _ObservedProbe:
    def __init__(self, service: str, probe: Probe, checker: ConditionChecker) -> None:
        self.service = service
        self.probe = probe
        self.checker = checker

    async def check(self) -> ProbeOutcome:
        clock = self.checker._clock
        started = clock()
        outcome = await self.probe.check()
        if outcome.ok:
            self.checker._observed(self.service, started, clock())
        return outcome

    async def aclose(self) -> None:
        await self.probe.aclose()


def as_result(outcome: ProbeOutcome) -> ProbeResult:
    """A probe's outcome as the polling loop takes it."""
    return ProbeResult(
        outcome.ok, outcome.value, outcome.detail, outcome.latency_ms, outcome.refused
    )


def judge(condition: Condition, value: Any, detail: str, latency_ms: float = 0.0) -> ProbeResult:
    """Compare a successful probe's value with the condition's json_path, equals, min/max, regex."""
    if condition.json_path:
        try:
            value = json_path(value, condition.json_path)
        except JsonPathError as exc:
            return ProbeResult(False, None, str(exc), latency_ms)
    problems = mismatch(
        value,
        equals=condition.equals,
        min=condition.min,
        max=condition.max,
        regex=condition.regex,
    )
    if problems:
        return ProbeResult(False, value, "; ".join(problems), latency_ms, refused=True)
    return ProbeResult(True, value, detail, latency_ms)
