"""What the active faults mean for one flow of bytes, and for a new connection.

The proxy rebuilds these whenever a fault is set, cleared or pulses; the data
path reads them per chunk. A flow no fault touches has no plan (``None``): the
pass-through path tests that one reference and writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from test_coordinator.netfault.active import ActiveFault
from test_coordinator.netfault.model import (
    FLOWS,
    Bandwidth,
    Blackhole,
    ConnectionLoss,
    Direction,
    Latency,
    Partition,
    Refuse,
    Reset,
    SlowClose,
)


@dataclass(frozen=True, slots=True)
class FlowPlan:
    """The faults acting on one flow (client → server, or server → client)."""

    withhold: tuple[ActiveFault, ...] = ()  # partition: read nothing, release nothing
    drop: tuple[ActiveFault, ...] = ()  # blackhole: read and discard
    latency: tuple[tuple[ActiveFault, Latency], ...] = ()
    bandwidth: tuple[tuple[ActiveFault, Bandwidth], ...] = ()
    slow_close: tuple[tuple[ActiveFault, SlowClose], ...] = ()

    @property
    def delays(self) -> bool:
        """Whether bytes or ends of stream may be held for a time."""
        return bool(self.latency or self.bandwidth or self.slow_close)


@dataclass(frozen=True, slots=True)
class ConnectPlan:
    """The faults acting on connections as a whole."""

    reset: tuple[ActiveFault, ...] = ()
    loss: tuple[tuple[ActiveFault, ConnectionLoss], ...] = ()
    refuse: tuple[ActiveFault, ...] = ()
    hold_new: tuple[ActiveFault, ...] = ()  # partitions that keep new connections from upstream


@dataclass(frozen=True, slots=True)
class Plans:
    upstream: FlowPlan | None
    downstream: FlowPlan | None
    connect: ConnectPlan

    def flows(self) -> tuple[FlowPlan | None, FlowPlan | None]:
        """The flow plans indexed like the pipes: 0 upstream, 1 downstream."""
        return (self.upstream, self.downstream)


def _flow_plan(faults: list[ActiveFault], flow: Direction) -> FlowPlan | None:
    withhold: list[ActiveFault] = []
    drop: list[ActiveFault] = []
    latency: list[tuple[ActiveFault, Latency]] = []
    bandwidth: list[tuple[ActiveFault, Bandwidth]] = []
    slow_close: list[tuple[ActiveFault, SlowClose]] = []
    for entry in faults:
        fault = entry.fault
        if isinstance(fault, Partition) and fault.direction.covers(flow):
            withhold.append(entry)
        elif isinstance(fault, Blackhole) and fault.direction.covers(flow):
            drop.append(entry)
        elif isinstance(fault, Latency) and fault.direction.covers(flow):
            latency.append((entry, fault))
        elif isinstance(fault, Bandwidth) and fault.direction.covers(flow):
            bandwidth.append((entry, fault))
        elif isinstance(fault, SlowClose) and fault.direction.covers(flow):
            slow_close.append((entry, fault))
    if not (withhold or drop or latency or bandwidth or slow_close):
        return None
    return FlowPlan(
        tuple(withhold), tuple(drop), tuple(latency), tuple(bandwidth), tuple(slow_close)
    )


def build_plans(entries: Iterable[ActiveFault]) -> Plans:
    """The plans of the faults in ``entries`` that act now (pulsed faults at rest do not)."""
    active = [entry for entry in entries if entry.active]
    connect = ConnectPlan(
        reset=tuple(e for e in active if isinstance(e.fault, Reset)),
        loss=tuple((e, e.fault) for e in active if isinstance(e.fault, ConnectionLoss)),
        refuse=tuple(e for e in active if isinstance(e.fault, Refuse)),
        hold_new=tuple(
            e
            for e in active
            if isinstance(e.fault, Partition) and e.fault.direction.covers(Direction.UPSTREAM)
        ),
    )
    upstream, downstream = (_flow_plan(active, flow) for flow in FLOWS)
    return Plans(upstream, downstream, connect)
