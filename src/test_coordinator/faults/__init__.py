"""Faults, and the steps that revert them: one module per kind, registered once here.

Each module holds everything about its kind: the scenario model of its step,
its plan text, how it is injected, which undo it records before injecting and
how that undo is verified (the undo actions themselves, shared by every kind,
are in :mod:`test_coordinator.engine.undo_actions`). ``validate``, ``plan``,
``run``, ``recover`` and the reports find the kinds through :data:`ACTIONS`.

Adding a fault kind: a module beside these (model, ``describe``, ``inject``,
``ACTION``), one line in :data:`ACTIONS`, its tests, a line in docs/scenarios.md.
Modules import only what validation needs; what injection needs (asyncio, the
engine) is imported when a fault is injected, so ``validate`` stays fast.
"""

from __future__ import annotations

from test_coordinator.faults import heal, kill, network, pause, restart, resume, start, stop
from test_coordinator.faults.base import TargetAction

ACTIONS: dict[str, TargetAction] = {
    action.key: action
    for action in (
        start.ACTION,
        stop.ACTION,
        restart.ACTION,
        kill.ACTION,
        pause.ACTION,
        resume.ACTION,
        network.ACTION,
        heal.ACTION,
    )
}
"""Every step kind that acts on targets, by its key in a scenario."""

FAULT_KINDS = frozenset(key for key, action in ACTIONS.items() if action.is_fault)
"""The kinds that break something: their undo is recorded first, their recovery measured."""

RESTORING_KINDS = frozenset({resume.ACTION.key, start.ACTION.key})
"""The kinds that restore what a fault broke (a pause, a stop, a kill): a recovery is also
measured from the moment they act (``max_from_restore``)."""
