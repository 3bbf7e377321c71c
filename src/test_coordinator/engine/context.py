"""Everything one run's steps share: the scenario, the backend, the journal, the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from test_coordinator.engine.audit_trail import RunAudit
from test_coordinator.engine.background import BackgroundTasks
from test_coordinator.engine.conditions import ConditionChecker
from test_coordinator.engine.journal import Journal, RunClock
from test_coordinator.engine.ports import EngineDeps, LoadRunner, ProcessBackend
from test_coordinator.engine.recovery_watch import RecoveryTracker
from test_coordinator.engine.results import StepResult
from test_coordinator.engine.undo import UndoLedger
from test_coordinator.runtime.processes import ProcessSpec
from test_coordinator.scenario.loader import LoadedScenario
from test_coordinator.scenario.types import Strict
from test_coordinator.scenario.variables import model_has_references, substitute_model


@dataclass(slots=True)
class RunContext:
    run_id: str
    loaded: LoadedScenario
    deps: EngineDeps
    backend: ProcessBackend
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
    loads: dict[str, LoadRunner] = field(default_factory=dict)
    current_step: str = "setup"

    def process_spec(self, service: str) -> ProcessSpec:
        run = self.loaded.model.services[service].process
        if run is None:
            raise ValueError(f"service {service!r} has no process")
        return ProcessSpec(
            name=service,
            command=run.argv,
            env=dict(run.env),
            cwd=Path(run.cwd) if run.cwd else None,
            stop_grace_s=run.stop_grace,
        )

    def start_undo_action(self, service: str) -> dict[str, Any]:
        spec = self.process_spec(service)
        return {
            "action": "start",
            "service": service,
            "command": list(spec.command),
            "env": dict(spec.env),
            "cwd": str(spec.cwd) if spec.cwd else None,
            "stop_grace_s": spec.stop_grace_s,
            "log_dir": str(self.log_dir),
        }

    def resolve(self, model: Strict) -> Strict:
        """``model`` with captured variables substituted, if the scenario captures any."""
        if not self.loaded.captures or not model_has_references(model):
            return model
        return substitute_model(model, self.captured)
