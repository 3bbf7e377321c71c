"""A fault set on a proxy under an id: what it is, whether it acts right now, what it did."""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass

from test_coordinator.netfault.model import Fault, Pulse, fault_to_json, pulse_to_json

_serials = itertools.count(1)


@dataclass(slots=True)
class FaultStats:
    """What one fault did since it was set; a fault that touched nothing reads all zeros."""

    connections: int = 0  # distinct connections it acted on
    bytes_delayed: int = 0  # bytes it held back (latency, bandwidth)
    bytes_dropped: int = 0  # bytes it discarded (blackhole)
    eofs_delayed: int = 0  # ends of stream it held back (slow_close)
    resets: int = 0  # connections it reset (reset, connection_loss)
    closes: int = 0  # connections it closed (connection_loss how=close)
    refusing_ms: int = 0  # how long it kept the proxy from listening (refuse): the kernel
    # refuses the connects then, and the proxy does not see them to count them

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class ActiveFault:
    """One entry of the proxy's fault table.

    ``active`` is False while a pulsed fault rests; ``cycles`` counts the pulse's
    on-phases begun. ``serial`` tells apart two faults set in turn under one id,
    so that a connection is counted once per fault (see :meth:`touch`).
    """

    __slots__ = ("active", "cycles", "fault", "fault_id", "pulse", "rng", "serial", "stats")

    def __init__(self, fault_id: str, fault: Fault, pulse: Pulse | None) -> None:
        self.fault_id = fault_id
        self.fault = fault
        self.pulse = pulse
        self.serial = next(_serials)
        self.stats = FaultStats()
        self.active = True
        self.cycles = 1 if pulse is not None else 0
        self.rng = random.Random(getattr(fault, "seed", None))

    def touch(self, touched: set[int]) -> None:
        """Count the connection whose set of touching faults is ``touched``, once."""
        if self.serial not in touched:
            touched.add(self.serial)
            self.stats.connections += 1

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.fault_id,
            "fault": fault_to_json(self.fault),
            "pulse": None if self.pulse is None else pulse_to_json(self.pulse),
            "active": self.active,
            "cycles": self.cycles,
            "stats": self.stats.to_json(),
        }
