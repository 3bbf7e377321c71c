"""netfault: network faults by a user-space TCP proxy (the kernel here has no ``tc netem``).

A proxy listens in front of one upstream service; the service's clients are
pointed at it. Faults (latency, bandwidth, reset, refuse, blackhole, slow close,
connection loss, partition) are set and cleared at run time through a Unix
control socket, optionally pulsed, each with its stats. The proxy runs as its
own process (``python -m test_coordinator.netfault``), so the faults it holds
can be cleared after the coordinator that set them died.

Modules: ``model`` (the faults and their JSON), ``proxy`` (the asyncio proxy),
``server`` and ``__main__`` (the process), ``control`` (the JSON-lines
requests), ``client`` (``NetfaultControl``).
"""

from test_coordinator.netfault.errors import (
    FaultSpecError,
    NetfaultError,
    NetfaultRejected,
    NetfaultStartError,
    NetfaultUnavailable,
)
from test_coordinator.netfault.model import (
    Bandwidth,
    Blackhole,
    ConnectionLoss,
    Direction,
    Fault,
    Latency,
    LossAction,
    Partition,
    Pulse,
    Refuse,
    Reset,
    SlowClose,
    fault_from_json,
    fault_to_json,
    pulse_from_json,
    pulse_to_json,
)

__all__ = [
    "Bandwidth",
    "Blackhole",
    "ConnectionLoss",
    "Direction",
    "Fault",
    "FaultSpecError",
    "Latency",
    "LossAction",
    "NetfaultError",
    "NetfaultRejected",
    "NetfaultStartError",
    "NetfaultUnavailable",
    "Partition",
    "Pulse",
    "Refuse",
    "Reset",
    "SlowClose",
    "fault_from_json",
    "fault_to_json",
    "pulse_from_json",
    "pulse_to_json",
]
