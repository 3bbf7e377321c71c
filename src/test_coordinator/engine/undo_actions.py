"""Undo actions: what restores a target, recorded before the fault, performed and verified.

Four actions cover every fault and every service a run creates:

* ``resume``: unfreeze the incarnation that was paused (or stopped by a signal);
  done once no part of it is seen frozen;
* ``start``: start the service again; done once it runs and its health probe
  answers within its ``start_timeout``;
* ``remove``: remove what the run created for the service (its processes, its
  container); done once nothing of it is left;
* ``heal``: clear a network fault from the proxy it was set on (its control socket
  and the fault's id are the handle); done once the proxy no longer has it, or
  the proxy is gone.

An action carries everything needed to build the service's backend again (the
service's section of the scenario, the run's id and log folder) and the handle
of the incarnation it concerns, so the same :func:`perform` runs in the run's
own cleanup and, after a crash, in the guard, ``recover``, the next ``run`` or
``serve``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from test_coordinator.targets.port import TargetSpec, TargetState

if TYPE_CHECKING:
    from test_coordinator.netfault.heal import Healed


class UndoKind(StrEnum):
    RESUME = "resume"
    START = "start"
    REMOVE = "remove"
    HEAL = "heal"


class UndoFailed(Exception):
    """The target was not seen restored; the message says what was seen instead."""


@dataclass(frozen=True, slots=True)
class UndoAction:
    kind: UndoKind
    service: str
    target: TargetSpec
    handle: Mapping[str, Any] = field(default_factory=dict)
    """The incarnation the fault hit (pid and start time, container id)."""
    health: Mapping[str, Any] | None = None
    """The service's health probe as written (verifies a ``start``)."""
    start_timeout_s: float = 30.0
    log_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.kind.value,
            "service": self.service,
            "backend": self.target.kind,
            "config": dict(self.target.config),
            "handle": dict(self.handle),
            "health": dict(self.health) if self.health is not None else None,
            "start_timeout_s": self.start_timeout_s,
            "log_dir": self.log_dir,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UndoAction:
        """Raises ValueError naming what is missing (a record from an older version)."""
        try:
            kind = UndoKind(data["action"])
            service = str(data["service"])
            backend = str(data["backend"])
            config = data["config"]
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not an undo action this version can perform: {exc}") from None
        if not isinstance(config, Mapping):
            raise ValueError("not an undo action this version can perform: no target config")
        health = data.get("health")
        return cls(
            kind=kind,
            service=service,
            target=TargetSpec(service, backend, dict(config)),
            handle=dict(data.get("handle") or {}),
            health=dict(health) if isinstance(health, Mapping) else None,
            start_timeout_s=float(data.get("start_timeout_s") or 30.0),
            log_dir=str(data.get("log_dir") or ""),
        )


class Targets(Protocol):
    """What :func:`perform` needs of a run's targets (a RunTargets)."""

    def state(self, name: str) -> TargetState: ...
    async def exit_problem(self, name: str) -> str | None: ...
    async def start(self, name: str) -> str: ...
    async def resume(self, name: str) -> None: ...
    async def remove(self, name: str) -> str: ...


class HealthCheck(Protocol):
    async def __call__(self, action: UndoAction, targets: Targets) -> str:
        """Wait until the service answers its health probe (within its start timeout, and
        no longer than it runs); what was seen. Raises UndoFailed otherwise."""


async def perform(
    action: UndoAction,
    targets: Targets,
    healthy: HealthCheck,
    on_restore: Callable[[UndoAction], None] | None = None,
) -> str:
    """Restore one target and verify it; what was done. Raises UndoFailed (or the
    backend's error) when the target is not seen restored.

    ``on_restore`` hears of the moment just before a paused target is resumed or a
    stopped one started (the run notes it on the fault's recovery)."""
    service = action.service
    if action.kind is UndoKind.REMOVE:
        return await targets.remove(service)
    if action.kind is UndoKind.HEAL:
        return (await heal_network_fault(action, targets)).detail
    state = targets.state(service)
    if action.kind is UndoKind.RESUME:
        if state not in (TargetState.PAUSED, TargetState.RUNNING):
            return f"nothing to resume: {service} is {state.value}"
        if state is TargetState.PAUSED and on_restore is not None:
            on_restore(action)
        await targets.resume(service)
        return f"{service} resumed; nothing of it is stopped"
    if state is TargetState.PAUSED:
        await targets.resume(service)
        state = targets.state(service)
    if state is TargetState.RUNNING:
        seen = await healthy(action, targets)
        return f"{service} still runs; {seen}"
    if on_restore is not None:
        on_restore(action)
    identity = await targets.start(service)
    seen = await healthy(action, targets)
    return f"{service} started again ({identity}); {seen}"


def superseded(action: UndoAction, pending: list[UndoAction]) -> str | None:
    """Why ``action`` need not be performed, given every action still pending in its run.

    Starting a service again only to remove it is pointless, and after a crash
    it can fail for a reason that says nothing about the system (the previous
    incarnation still holding its port): a ``start`` of a service whose
    ``remove`` is pending is superseded by the remove.
    """
    if action.kind is UndoKind.START and any(
        other.kind is UndoKind.REMOVE and other.service == action.service for other in pending
    ):
        return f"superseded: {action.service} is removed with the run"
    return None


async def heal_network_fault(action: UndoAction, targets: Targets) -> Healed:
    """Clear the network fault ``action`` names: a proxy's fault (its handle: the control
    socket and the fault's id), or a container disconnected from a network (its handle:
    the container, the network, its address and aliases)."""
    from pathlib import Path

    from test_coordinator.netfault.heal import Healed, HealFailed, heal

    if "docker_container" in action.handle:
        import asyncio

        from test_coordinator.targets.docker.networks import (
            Attachment,
            NetworkPartitionError,
            reconnect,
        )

        try:
            attachment = Attachment.from_json(action.handle)
            return Healed(await asyncio.to_thread(reconnect, attachment), None)
        except (NetworkPartitionError, KeyError) as exc:
            raise UndoFailed(f"{action.service}: {exc}") from None

    gone = targets.state(action.service) in (TargetState.EXITED, TargetState.NOT_STARTED)
    try:
        return await heal(
            Path(str(action.handle["control"])), str(action.handle["fault_id"]), proxy_gone=gone
        )
    except HealFailed as exc:
        raise UndoFailed(f"{action.service}: {exc}") from None
    except KeyError as exc:
        raise UndoFailed(f"{action.service}: the undo record has no {exc}") from None
