"""network: break the link through a proxy service (latency, bandwidth, reset, refuse,
blackhole, slow close, connection loss, cut), optionally pulsed.

Undo: ``heal``, the fault cleared from the proxy and seen gone (its control socket
and the fault's id are stored first). What the fault did (connections, bytes
delayed or dropped, resets) is journaled when it is cleared; a fault that touched
nothing fails the run, unless the step says ``allow_untouched: true``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import Duration, Strict, Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext

Direction = Literal["upstream", "downstream", "both"]
"""Seen from the client: upstream is client to server, downstream server to client."""


class LatencySpec(Strict):
    delay: Duration
    jitter: Duration = 0.0
    direction: Direction = "downstream"

    @model_validator(mode="after")
    def _jitter_within_delay(self) -> LatencySpec:
        if self.jitter > self.delay:
            raise ValueError("jitter: allowed: no more than delay")
        return self


class BandwidthSpec(Strict):
    bytes_per_s: int = Field(ge=1)
    direction: Direction = "downstream"


class DirectionSpec(Strict):
    direction: Direction = "both"


class SlowCloseSpec(Strict):
    delay: Duration
    direction: Direction = "both"


class ConnectionLossSpec(Strict):
    probability: float = Field(ge=0, le=1)
    how: Literal["reset", "close"] = "reset"


class Nothing(Strict):
    """A fault with no parameters: ``reset: {}``."""


class PulseSpec(Strict):
    on: Duration
    off: Duration

    @model_validator(mode="after")
    def _at_least_a_millisecond(self) -> PulseSpec:
        if self.on < 0.001 or self.off < 0.001:
            raise ValueError("on and off: allowed: 1ms or more")
        return self


NETWORK_FAULTS = (
    "latency",
    "bandwidth",
    "reset",
    "refuse",
    "blackhole",
    "slow_close",
    "connection_loss",
    "cut",
)


class NetworkStep(StepBase):
    """One network fault on the proxy services named (exactly one of the fault fields)."""

    network: Targets
    latency: LatencySpec | None = None
    bandwidth: BandwidthSpec | None = None
    reset: Nothing | None = None
    refuse: Nothing | None = None
    blackhole: DirectionSpec | None = None
    slow_close: SlowCloseSpec | None = None
    connection_loss: ConnectionLossSpec | None = None
    cut: DirectionSpec | None = None
    """Nothing crosses (the proxy stops reading); held bytes flow on when healed."""
    pulse: PulseSpec | None = None
    allow_untouched: bool = False

    @model_validator(mode="after")
    def _one_fault(self) -> NetworkStep:
        present = [name for name in NETWORK_FAULTS if getattr(self, name) is not None]
        if len(present) != 1:
            found = f"found {', '.join(present)}" if present else "found none"
            raise ValueError(
                f"a network step needs exactly one of {', '.join(NETWORK_FAULTS)}; {found}"
            )
        return self

    @property
    def fault_kind(self) -> str:
        return next(name for name in NETWORK_FAULTS if getattr(self, name) is not None)

    def fault_json(self) -> dict[str, Any]:
        """The fault as the proxy's control channel takes it."""
        kind = self.fault_kind
        if self.latency is not None:
            return {
                "kind": "latency",
                "ms": self.latency.delay * 1000.0,
                "jitter_ms": self.latency.jitter * 1000.0,
                "direction": self.latency.direction,
            }
        if self.bandwidth is not None:
            spec = self.bandwidth
            return {
                "kind": "bandwidth",
                "bytes_per_s": spec.bytes_per_s,
                "direction": spec.direction,
            }
        if self.slow_close is not None:
            return {
                "kind": "slow_close",
                "delay_ms": self.slow_close.delay * 1000.0,
                "direction": self.slow_close.direction,
            }
        if self.connection_loss is not None:
            spec_loss = self.connection_loss
            return {
                "kind": "connection_loss",
                "probability": spec_loss.probability,
                "how": spec_loss.how,
            }
        if self.blackhole is not None:
            return {"kind": "blackhole", "direction": self.blackhole.direction}
        if self.cut is not None:
            return {"kind": "partition", "direction": self.cut.direction}
        return {"kind": kind}

    def pulse_json(self) -> dict[str, float] | None:
        if self.pulse is None:
            return None
        return {"on_ms": self.pulse.on * 1000.0, "off_ms": self.pulse.off * 1000.0}


def describe(step: NetworkStep, names: str) -> str:
    pulsed = " (pulsed)" if step.pulse is not None else ""
    return f"network {step.fault_kind.replace('_', ' ')} on {names}{pulsed}"


async def inject(
    ctx: RunContext, step_id: str, step: NetworkStep, targets: tuple[str, ...]
) -> None:
    from test_coordinator.faults.acting import on_each
    from test_coordinator.faults.network_acting import set_network_fault

    async def each(service: str) -> None:
        await set_network_fault(
            ctx,
            step_id,
            service,
            step.fault_json(),
            pulse=step.pulse_json(),
            allow_untouched=step.allow_untouched,
        )

    await on_each(targets, each)


ACTION = TargetAction(
    key="network",
    model=NetworkStep,
    inject=inject,
    describe=describe,
    default_timeout_s=10.0,
    is_fault=True,
    undo="heal",
)
