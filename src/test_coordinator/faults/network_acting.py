"""Setting network faults on proxy services and clearing them, with proof of what they did.

Imported only when a network fault is injected or healed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from test_coordinator.engine.context import RunContext, target_specs
from test_coordinator.engine.errors import InfrastructureError, StepFailed
from test_coordinator.engine.undo import UndoEntry
from test_coordinator.engine.undo_actions import (
    UndoAction,
    UndoFailed,
    UndoKind,
    heal_network_fault,
)
from test_coordinator.faults.acting import require_state
from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.errors import NetfaultBusy, NetfaultRejected, NetfaultUnavailable
from test_coordinator.netfault.heal import Healed
from test_coordinator.netfault.model import fault_from_json, pulse_from_json
from test_coordinator.netfault.paths import control_socket


@dataclass
class NetworkFault:
    """A fault set by a step, until healed: what the run knows of it."""

    fault_id: str
    service: str
    step_id: str
    kind: str
    allow_untouched: bool
    entry: UndoEntry


def proxy_control(ctx: RunContext, service: str) -> Path:
    """The control socket of ``service``'s proxy: its ``control:`` when it exists outside
    the run, else the one the run started it with."""
    proxy = ctx.loaded.model.services[service].proxy
    if proxy is not None and proxy.control is not None:
        return Path(proxy.control)
    return control_socket(ctx.run_id, service)


def heal_action(ctx: RunContext, service: str, fault_id: str) -> UndoAction:
    model = ctx.loaded.model.services[service]
    return UndoAction(
        kind=UndoKind.HEAL,
        service=service,
        target=target_specs(ctx.loaded.model)[service],
        handle={"control": str(proxy_control(ctx, service)), "fault_id": fault_id},
        health=model.health.model_dump(mode="json", by_alias=True, exclude_none=True),
        start_timeout_s=model.start_timeout,
        log_dir=str(ctx.log_dir),
    )


async def set_network_fault(
    ctx: RunContext,
    step_id: str,
    service: str,
    fault: dict[str, Any],
    *,
    pulse: dict[str, float] | None,
    allow_untouched: bool,
) -> None:
    """Record the heal, then set the fault on ``service``'s proxy and see it set."""
    if ctx.loaded.model.services[service].proxy is None:
        raise StepFailed(f"cannot set a network fault on {service}: it is not a proxy service")
    require_state(ctx, service, ("running",), "set a network fault on")
    # The run's id first: the proxy refuses a fault while another run's is set (an existing
    # proxy is shared by every run that names its control socket).
    fault_id = f"{ctx.run_id}-step{step_id}-{service}"
    entry = await ctx.ledger.register(heal_action(ctx, service, fault_id))
    ctx.audit.injected(entry, f"network {fault['kind']}", ctx.step_names[step_id])
    control = NetfaultControl(proxy_control(ctx, service))
    try:
        await control.set(
            fault_id,
            fault_from_json(fault),
            pulse=None if pulse is None else pulse_from_json(pulse),
            owner=ctx.run_id,
        )
        state = await control.state()
    except NetfaultBusy as exc:  # not the system under test: another run is faulting it
        raise InfrastructureError(f"{service}: cannot set the network fault: {exc}") from None
    except (NetfaultUnavailable, NetfaultRejected) as exc:
        raise StepFailed(f"{service}: cannot set the network fault: {exc}") from None
    if not any(f.get("id") == fault_id for f in state.get("faults") or ()):
        raise StepFailed(f"{service}: the network fault was accepted but is not set")
    ctx.network_faults[fault_id] = NetworkFault(
        fault_id, service, step_id, fault["kind"], allow_untouched, entry
    )
    ctx.journal.record(
        "network.fault_set", step=step_id, service=service, fault_id=fault_id, fault=fault
    )


async def heal_service(ctx: RunContext, step_id: str, service: str) -> list[str]:
    """Clear every network fault the run set on ``service``; what each did."""
    healed = [f for f in ctx.network_faults.values() if f.service == service]
    details = []
    for fault in healed:
        try:
            outcome = await heal_network_fault(fault.entry.undo, ctx.targets)
        except UndoFailed as exc:  # the fault stays pending: the run's cleanup tries again
            raise InfrastructureError(f"cannot clear the network fault: {exc}") from None
        note_healed(ctx, fault.entry.undo, outcome)
        await ctx.ledger.settle_entry(fault.entry, f"healed by step {step_id}: {outcome.detail}")
        details.append(f"{service}: {outcome.detail}")
    return details


def note_healed(ctx: RunContext, action: UndoAction, outcome: Healed) -> None:
    """Journal what a fault did; remember one that touched nothing (the run fails on it)."""
    fault_id = str(action.handle.get("fault_id"))
    fault = ctx.network_faults.pop(fault_id, None)
    ctx.journal.record(
        "network.fault_cleared",
        service=action.service,
        fault_id=fault_id,
        step=fault.step_id if fault is not None else None,
        stats=dict(outcome.stats) if outcome.stats is not None else None,
        detail=outcome.detail,
    )
    if fault is not None and outcome.untouched and not fault.allow_untouched:
        ctx.untouched_faults.append(
            f"step {fault.step_id} ({ctx.step_names[fault.step_id]}): the network "
            f"{fault.kind.replace('_', ' ')} on {fault.service} touched nothing "
            "(no connection went through the proxy while it was set)"
        )


async def disconnect_containers(
    ctx: RunContext, step_id: str, side: tuple[str, ...], other: tuple[str, ...]
) -> list[str]:
    """Cut the containers of ``side`` from the networks they share with ``other``'s (every
    network, if ``other`` has no container): a disconnect through the engine, its
    reconnect (same address, same aliases) stored first. What was disconnected."""
    import asyncio

    from test_coordinator.targets.docker.networks import (
        Attachment,
        NetworkPartitionError,
        attached,
        attachments,
        disconnect,
    )

    services = ctx.loaded.model.services

    def containers(names: tuple[str, ...]) -> list[tuple[str, str]]:
        found = []
        for name in names:
            if services[name].docker is not None:
                container = ctx.targets.handle(name).get("id")
                if container:
                    found.append((name, str(container)))
        return found

    try:
        theirs = {
            a.network
            for _, container in containers(other)
            for a in await asyncio.to_thread(attachments, container)
        }
        cut: list[tuple[str, Attachment]] = []
        for service, container in containers(side):
            for attachment in await asyncio.to_thread(attachments, container):
                if not theirs or attachment.network in theirs:
                    cut.append((service, attachment))
    except NetworkPartitionError as exc:
        raise StepFailed(str(exc)) from None
    if not cut:
        raise StepFailed("the containers of the two sides share no network to cut")
    done = []
    for service, attachment in cut:
        fault_id = f"step{step_id}-{service}-{attachment.network}"
        model = services[service]
        action = UndoAction(
            kind=UndoKind.HEAL,
            service=service,
            target=target_specs(ctx.loaded.model)[service],
            handle=attachment.to_json(),
            health=model.health.model_dump(mode="json", by_alias=True, exclude_none=True),
            start_timeout_s=model.start_timeout,
            log_dir=str(ctx.log_dir),
        )
        entry = await ctx.ledger.register(action)
        ctx.audit.injected(entry, "network partition", ctx.step_names[step_id])
        try:
            await asyncio.to_thread(disconnect, attachment)
            still = await asyncio.to_thread(attached, attachment)
        except NetworkPartitionError as exc:
            raise StepFailed(str(exc)) from None
        if still:
            raise StepFailed(f"{service}: still on {attachment.network} after the disconnect")
        ctx.network_faults[fault_id] = NetworkFault(
            fault_id, service, step_id, "disconnect", True, entry
        )
        ctx.journal.record(
            "network.fault_set",
            step=step_id,
            service=service,
            fault_id=fault_id,
            fault={"kind": "disconnect", "network": attachment.network},
        )
        done.append(f"{service} from {attachment.network}")
    return done
