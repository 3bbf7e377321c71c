"""Everything one run's steps share: the scenario, the targets, the journal, the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from test_coordinator.engine.audit_trail import RunAudit
from test_coordinator.engine.background import BackgroundTasks
from test_coordinator.engine.conditions import ConditionChecker
from test_coordinator.engine.journal import Journal, RunClock
from test_coordinator.engine.log_marks import LogMark
from test_coordinator.engine.ports import EngineDeps, LoadRunner
from test_coordinator.engine.recovery_watch import RecoveryTracker
from test_coordinator.engine.results import StepResult
from test_coordinator.engine.undo import UndoLedger
from test_coordinator.engine.undo_actions import UndoAction, UndoKind
from test_coordinator.scenario.loader import LoadedScenario
from test_coordinator.scenario.model import Scenario
from test_coordinator.scenario.types import Strict
from test_coordinator.scenario.variables import model_has_references, substitute_model
from test_coordinator.targets.port import TargetSpec
from test_coordinator.targets.router import RunTargets


@dataclass(slots=True)
class RunContext:
    run_id: str
    loaded: LoadedScenario
    deps: EngineDeps
    targets: RunTargets
    clock: RunClock
    journal: Journal
    ledger: UndoLedger
    checker: ConditionChecker
    recoveries: RecoveryTracker
    background: BackgroundTasks
    log_dir: Path
    chosen: Mapping[str, tuple[str, ...]]
    step_names: Mapping[str, str]
    audit: RunAudit
    started_epoch_ms: int = 0
    captured: dict[str, Any] = field(default_factory=dict)
    step_results: list[StepResult] = field(default_factory=list)
    step_starts_ms: dict[str, float] = field(default_factory=dict)
    log_marks_wanted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The services whose log positions to record, by the name of the step they are for."""
    log_marks: dict[tuple[str, str], LogMark] = field(default_factory=dict)
    """Where a service's log stood when a step started, by (step name, service)."""
    loads: dict[str, LoadRunner] = field(default_factory=dict)
    current_step: str = "setup"
    network_faults: dict[str, Any] = field(default_factory=dict)
    """Network faults set and not yet healed, by fault id (faults.network_acting.NetworkFault)."""
    untouched_faults: list[str] = field(default_factory=list)
    """Network faults that touched nothing when healed: the run fails on them."""

    def undo_action(self, kind: UndoKind, service: str) -> UndoAction:
        """The undo of a fault on ``service`` (or of its creation), as it is now."""
        model = self.loaded.model.services[service]
        return UndoAction(
            kind=kind,
            service=service,
            target=target_specs(self.loaded.model)[service],
            handle=self.targets.handle(service) if kind is UndoKind.RESUME else {},
            health=model.health.model_dump(mode="json", by_alias=True, exclude_none=True),
            start_timeout_s=model.start_timeout,
            log_dir=str(self.log_dir),
        )

    def resolve(self, model: Strict) -> Strict:
        """``model`` with captured variables substituted, if the scenario captures any."""
        if not self.loaded.captures or not model_has_references(model):
            return model
        return substitute_model(model, self.captured)


def target_specs(model: Scenario) -> dict[str, TargetSpec]:
    """Every service the coordinator acts on (``process`` or ``docker``), for the backends."""
    return {
        name: TargetSpec(name, service.kind, service.run_config)
        for name, service in model.services.items()
        if service.kind is not None
    }
