"""Dependency health as the service reports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DependencyHealth:
    """One configured dependency (``postgres``, ``redis``) and whether it answers."""

    name: str
    healthy: bool
    detail: str = ""


class HealthSource(Protocol):
    """Anything that can say how its dependencies are; must be cheap (cached state)."""

    def dependency_health(self) -> list[DependencyHealth]: ...
