"""What the service knows about itself while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from test_coordinator.config import Settings
from test_coordinator.ports.health import DependencyHealth, HealthSource


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: HealthStatus
    service: str
    instance: str
    version: str
    environment: str
    timestamp: str
    dependencies: tuple[DependencyHealth, ...] = ()

    @property
    def failing(self) -> tuple[DependencyHealth, ...]:
        return tuple(d for d in self.dependencies if not d.healthy)


@dataclass
class ServiceState:
    """Identity, readiness and the sources of dependency health."""

    settings: Settings
    health_sources: list[HealthSource] = field(default_factory=list)
    ready: bool = False

    def health(self) -> HealthReport:
        dependencies = tuple(
            d for source in self.health_sources for d in source.dependency_health()
        )
        degraded = any(not d.healthy for d in dependencies)
        return HealthReport(
            status=HealthStatus.DEGRADED if degraded else HealthStatus.HEALTHY,
            service=self.settings.service_name,
            instance=self.settings.service_instance_name,
            version=self.settings.version,
            environment=self.settings.environment.value,
            timestamp=utc_now_iso(),
            dependencies=dependencies,
        )


def utc_now_iso() -> str:
    """Now, ISO 8601 in UTC with milliseconds and a Z suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
