"""The inventory: the services a scenario may touch (its blast radius) and how to run them."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from test_coordinator.scenario.probes import ProbeSpec
from test_coordinator.scenario.types import Duration, ServiceList, Strict, Text

DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_GRACE_S = 5.0


class ProcessRun(Strict):
    """A local process: the executable, its arguments, extra environment, working directory."""

    command: Text
    args: tuple[Text, ...] = ()
    env: dict[str, Text] = Field(default_factory=dict)
    cwd: Text | None = None
    stop_grace: Duration = DEFAULT_STOP_GRACE_S

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.command, *self.args)


class Service(Strict):
    """One service: how it runs (``process``), how to tell it is healthy, where its metrics are.

    A service without ``process`` is only observed: probes and checks may read
    it, but no step may start, stop or signal it. ``docker`` and ``kubernetes``
    are reserved for the backends that will follow.
    """

    process: ProcessRun | None = None
    docker: dict[str, Any] | None = None
    kubernetes: dict[str, Any] | None = None
    health: ProbeSpec
    metrics_url: Text | None = None
    log: Text | None = None
    autostart: bool = True
    start_timeout: Duration = DEFAULT_START_TIMEOUT_S
    depends_on: ServiceList | None = None
    """Setup starts this service once these services are healthy (others start at once)."""

    @field_validator("docker", "kubernetes", mode="before")
    @classmethod
    def _not_supported_yet(cls, value: Any, info: Any) -> Any:
        if value is not None:
            raise ValueError(f"{info.field_name} services are not supported yet; allowed: process")
        return value

    @property
    def managed(self) -> bool:
        """True when the coordinator runs this service (it has a ``process``)."""
        return self.process is not None
