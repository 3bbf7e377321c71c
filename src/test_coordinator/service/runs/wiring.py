"""Build the runs service from the settings: the library, the leases, the manager."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from test_coordinator.adapters.leases import LocalLeases
from test_coordinator.config import Settings
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.ports.leases import Leases
from test_coordinator.ports.metrics import Metrics
from test_coordinator.ports.storage import RunStore
from test_coordinator.scenario.discovery import DiscoveredValues
from test_coordinator.scenario.types import build_every_model
from test_coordinator.service.runs.events import RunEvents
from test_coordinator.service.runs.library import DOCUMENT_LABEL, ScenarioLibrary
from test_coordinator.service.runs.manager import RunManager
from test_coordinator.service.runs.metrics import RunMetrics

if TYPE_CHECKING:
    from redis.asyncio import Redis


def leases_for(redis: Redis | None) -> Leases:
    """Leases in Redis when the service has one (shared by every coordinator on it), else local."""
    if redis is None:
        return LocalLeases()
    from test_coordinator.adapters.leases.redis_leases import RedisLeases

    return RedisLeases(redis)


def build_run_manager(
    settings: Settings,
    *,
    store: RunStore,
    deps: EngineDeps,
    metrics: Metrics,
    redis: Redis | None,
) -> RunManager:
    async def discover(source: Path | str) -> DiscoveredValues:
        from test_coordinator.adapters.registry.discovery import discover_for

        return await discover_for(source, settings, label=DOCUMENT_LABEL, redis=redis)

    build_every_model()  # validation runs in threads: no model is built on first use there
    return RunManager(
        store=store,
        deps=deps,
        library=ScenarioLibrary(settings.scenario_dir),
        leases=leases_for(redis),
        events=RunEvents(),
        metrics=RunMetrics(metrics),
        holder=settings.service_instance_name,
        reports_dir=settings.reports_dir,
        max_running=settings.max_concurrent_runs,
        max_queued=settings.max_queued_runs,
        allow_remote_execution=settings.allow_remote_execution,
        discover=discover,
    )
