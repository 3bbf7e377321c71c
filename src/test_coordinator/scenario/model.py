"""The scenario document: version, variables, inventory, steady state, steps and checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from test_coordinator.scenario.audit import AuditSettings
from test_coordinator.scenario.checks import Check
from test_coordinator.scenario.inventory import Service
from test_coordinator.scenario.probes import Condition
from test_coordinator.scenario.steps import Step
from test_coordinator.scenario.types import Duration, Scalar, ServiceName, Strict, Text, VarName

DEFAULT_RUN_TIMEOUT_S = 600.0


class Scenario(Strict):
    """A resilience scenario (format version 1)."""

    version: Literal[1]
    name: Text | None = None
    description: Text = ""
    timeout: Duration = DEFAULT_RUN_TIMEOUT_S
    vars: dict[VarName, Scalar] = Field(default_factory=dict)
    ports: tuple[VarName, ...] = ()
    services: dict[ServiceName, Service] = Field(min_length=1)
    audit: AuditSettings | None = None
    steady_state: tuple[Condition, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)
    checks: tuple[Check, ...] = ()
