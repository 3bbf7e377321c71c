"""The report's network faults: what each set on which proxy (or container), when it was
cleared, and what it did, from the journal's ``network.fault_set`` and
``network.fault_cleared`` events (they have no recovery to time, so the recoveries
table does not show them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from test_coordinator.reporting.html_view import RunView


@dataclass(frozen=True, slots=True)
class NetworkFaultView:
    service: str
    step_id: str
    step_name: str
    fault: str
    set_ms: float
    cleared_ms: float | None
    did: str


def network_faults(view: RunView) -> tuple[NetworkFaultView, ...]:
    """Each network fault the run set, in the order it was set."""
    names = {step.step_id: step.name for step in view.all_steps}
    cleared = {
        str(e.data.get("fault_id")): e for e in view.events if e.kind == "network.fault_cleared"
    }
    found = []
    for event in view.events:
        if event.kind != "network.fault_set":
            continue
        data = event.data
        step_id = str(data.get("step") or "")
        end = cleared.get(str(data.get("fault_id")))
        found.append(
            NetworkFaultView(
                service=str(data.get("service") or ""),
                step_id=step_id,
                step_name=names.get(step_id, ""),
                fault=describe_fault(data.get("fault")),
                set_ms=event.at_ms,
                cleared_ms=end.at_ms if end is not None else None,
                did=str(end.data.get("detail") or "") if end is not None else "not cleared",
            )
        )
    return tuple(found)


def describe_fault(fault: Any) -> str:
    """``latency: delay 200 ms, jitter 0 ms`` from the journal's fault mapping."""
    if not isinstance(fault, Mapping):
        return ""
    kind = str(fault.get("kind") or "fault")
    rest = [f"{key} {value}" for key, value in fault.items() if key != "kind"]
    return kind + (": " + ", ".join(rest) if rest else "")


def network_faults_html(
    faults: tuple[NetworkFaultView, ...],
    escape: Callable[[object], str],
    ms: Callable[[float | None], str],
) -> str:
    if not faults:
        return ""
    head = (
        "<tr><th>Service</th><th>Fault</th><th>Step</th>"
        '<th class="num">Set</th><th class="num">Cleared</th><th>What it did</th></tr>'
    )
    rows = "".join(
        f'<tr class="row-{"passed" if f.cleared_ms is not None else "failed"}">'
        f"<td>{escape(f.service)}</td><td>{escape(f.fault)}</td>"
        f"<td>{escape(f.step_id)} {escape(f.step_name)}</td>"
        f'<td class="num">{ms(f.set_ms)}</td><td class="num">{ms(f.cleared_ms)}</td>'
        f'<td class="detail">{escape(f.did)}</td></tr>'
        for f in faults
    )
    return (
        f'<section id="network-faults"><h2>Network faults</h2><table>{head}{rows}</table></section>'
    )
