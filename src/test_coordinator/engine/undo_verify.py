"""How an undone ``start`` is verified: the service's own health probe, within its start timeout."""

from __future__ import annotations

from test_coordinator.engine.conditions import as_result
from test_coordinator.engine.health_wait import ExitedBeforeHealthy, wait_healthy
from test_coordinator.engine.ports import ProbeFactory
from test_coordinator.engine.undo_actions import HealthCheck, Targets, UndoAction, UndoFailed
from test_coordinator.runtime.polling import DeadlineExceeded
from test_coordinator.runtime.probes import ProbeResult
from test_coordinator.scenario.durations import format_duration
from test_coordinator.scenario.probes import ProbeSpec


def health_verifier(probes: ProbeFactory, interval_s: float) -> HealthCheck:
    async def healthy(action: UndoAction, targets: Targets) -> str:
        if action.health is None:
            raise UndoFailed(f"{action.service}: no health probe was recorded; cannot verify it")
        spec = ProbeSpec.model_validate(action.health)
        probe = probes.probe(spec)

        async def once() -> ProbeResult:
            return as_result(await probe.check())

        try:
            await wait_healthy(
                targets,
                action.service,
                once,
                timeout_s=action.start_timeout_s,
                interval_s=spec.interval(interval_s),
                max_interval_s=spec.max_interval(interval_s),
            )
        except ExitedBeforeHealthy as exc:
            raise UndoFailed(str(exc)) from None
        except DeadlineExceeded as exc:
            last = exc.last.detail if exc.last is not None else "no answer"
            raise UndoFailed(
                f"{action.service} not healthy within "
                f"{format_duration(action.start_timeout_s)}; last: {last}"
            ) from None
        finally:
            await probe.aclose()
        return "healthy"

    return healthy
