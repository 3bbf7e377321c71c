"""Clearing one network fault and seeing it gone: the undo of a ``network`` step.

The same code runs in the run's cleanup, a ``heal`` step, the guard and
``recover``: it needs only the proxy's control socket and the fault's id, both
stored with the undo record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.errors import NetfaultRejected, NetfaultUnavailable


class HealFailed(Exception):
    """The fault was not seen cleared; the message says what was seen instead."""


@dataclass(frozen=True, slots=True)
class Healed:
    detail: str
    stats: Mapping[str, int] | None
    """What the fault did while set (None: it was no longer there, or the proxy is gone)."""

    @property
    def untouched(self) -> bool:
        return self.stats is not None and not any(self.stats.values())


def describe_stats(stats: Mapping[str, int]) -> str:
    """``acted on 3 connections: 4500 bytes delayed``, ``refused new connections for
    1200 ms`` or ``touched nothing``."""
    if not any(stats.values()):
        return "touched nothing"
    said = []
    if stats.get("connections") or not stats.get("refusing_ms"):
        rest = [
            f"{value} {name.replace('_', ' ')}"
            for name, value in stats.items()
            if value and name not in ("connections", "refusing_ms")
        ]
        said.append(
            f"acted on {stats.get('connections', 0)} connections"
            + (f": {', '.join(rest)}" if rest else "")
        )
    if stats.get("refusing_ms"):
        said.append(f"refused new connections for {stats['refusing_ms']} ms")
    return "; ".join(said)


async def heal(control: Path, fault_id: str, *, proxy_gone: bool) -> Healed:
    """Clear ``fault_id`` and verify the proxy no longer has it.

    ``proxy_gone``: the proxy's process is known to have exited, so an unreachable
    control socket means the fault went with it.
    """
    client = NetfaultControl(control)
    try:
        stats = await client.clear(fault_id)
        state = await client.state()
    except NetfaultUnavailable as exc:
        if proxy_gone:
            return Healed("the proxy is gone, and its fault with it", None)
        raise HealFailed(f"cannot clear network fault {fault_id}: {exc}") from None
    except NetfaultRejected as exc:
        raise HealFailed(f"the proxy refused to clear network fault {fault_id}: {exc}") from None
    faults = state.get("faults") or ()
    if any(_id_of(fault) == fault_id for fault in faults):
        raise HealFailed(f"network fault {fault_id} is still set after clearing it")
    if state.get("listening") is False and not any(_kind_of(f) == "refuse" for f in faults):
        reason = state.get("listen_error") or "no reason given"
        raise HealFailed(
            f"network fault {fault_id} is cleared, but the proxy does not listen: {reason}"
        )
    if stats is None:
        return Healed(f"network fault {fault_id} was already cleared", None)
    return Healed(f"network fault {fault_id} cleared; it {describe_stats(stats)}", stats)


def _id_of(fault: Any) -> object:
    return fault.get("id") if isinstance(fault, Mapping) else None


def _kind_of(fault: Any) -> object:
    spec = fault.get("fault") if isinstance(fault, Mapping) else None
    return spec.get("kind") if isinstance(spec, Mapping) else None
