"""The network faults a netfault proxy applies, and their JSON form.

Each fault is a frozen dataclass; its JSON form is a flat object with a
``kind`` and every field spelled out (``fault_to_json``), so that what the
control channel received, and what an undo journal stores, reads the same.
``fault_from_json`` is strict: unknown kinds and fields, wrong types and values
out of range are a :class:`FaultSpecError` naming the field.

Directions are seen from the client: ``upstream`` is client → server,
``downstream`` server → client, ``both`` either way. Faults that shape bytes
(latency, bandwidth) default to ``downstream``, the way toxiproxy does, so that
a 20 ms latency adds 20 ms to a round trip; the others default to ``both``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from test_coordinator.netfault.errors import FaultSpecError


class Direction(StrEnum):
    UPSTREAM = "upstream"  # client → server
    DOWNSTREAM = "downstream"  # server → client
    BOTH = "both"

    def covers(self, flow: Direction) -> bool:
        """Whether a fault in this direction acts on the bytes flowing ``flow``."""
        return self is Direction.BOTH or self is flow


FLOWS = (Direction.UPSTREAM, Direction.DOWNSTREAM)


class LossAction(StrEnum):
    RESET = "reset"  # RST: the client sees ECONNRESET
    CLOSE = "close"  # FIN: the client sees end of stream


def _check(kind: str, name: str, ok: bool, rule: str) -> None:
    if not ok:
        raise FaultSpecError(f"{kind}: {name} {rule}")


@dataclass(frozen=True, slots=True)
class Latency:
    """Each chunk is held ``ms`` (± up to ``jitter_ms``) after it arrives; order is kept."""

    KIND: ClassVar[str] = "latency"
    ms: float
    jitter_ms: float = 0.0
    direction: Direction = Direction.DOWNSTREAM
    seed: int | None = None

    def __post_init__(self) -> None:
        _check(self.KIND, "ms", self.ms >= 0, "must be >= 0")
        _check(self.KIND, "jitter_ms", 0 <= self.jitter_ms <= self.ms, "must be in [0, ms]")


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Each connection's bytes flow at most ``bytes_per_s`` each covered way (a token bucket)."""

    KIND: ClassVar[str] = "bandwidth"
    bytes_per_s: int
    direction: Direction = Direction.DOWNSTREAM

    def __post_init__(self) -> None:
        _check(self.KIND, "bytes_per_s", self.bytes_per_s > 0, "must be > 0")


@dataclass(frozen=True, slots=True)
class Reset:
    """Every connection, open or new, is reset (RST, SO_LINGER 0) on both sides."""

    KIND: ClassVar[str] = "reset"


@dataclass(frozen=True, slots=True)
class Refuse:
    """The proxy stops listening: new connections are refused by the kernel; open ones go on."""

    KIND: ClassVar[str] = "refuse"


@dataclass(frozen=True, slots=True)
class Blackhole:
    """Bytes are read and discarded, never forwarded; the connection stays open, nothing answers.

    An end of stream is held back too, and delivered when the fault is cleared.
    """

    KIND: ClassVar[str] = "blackhole"
    direction: Direction = Direction.BOTH


@dataclass(frozen=True, slots=True)
class SlowClose:
    """An end of stream (FIN) is propagated ``delay_ms`` after it arrives; data is not delayed."""

    KIND: ClassVar[str] = "slow_close"
    delay_ms: float
    direction: Direction = Direction.BOTH

    def __post_init__(self) -> None:
        _check(self.KIND, "delay_ms", self.delay_ms >= 0, "must be >= 0")


@dataclass(frozen=True, slots=True)
class ConnectionLoss:
    """Each new connection is accepted, then reset (or closed) with ``probability``."""

    KIND: ClassVar[str] = "connection_loss"
    probability: float
    how: LossAction = LossAction.RESET
    seed: int | None = None

    def __post_init__(self) -> None:
        _check(self.KIND, "probability", 0 <= self.probability <= 1, "must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class Partition:
    """Nothing crosses: the proxy stops reading the covered way, so senders stall.

    Open connections stay open and silent (their bytes wait in the kernel's
    buffers); new ones are accepted but not connected upstream (``upstream`` or
    ``both``). When cleared, everything held flows on, in order, with no byte
    lost: a partition healed before TCP gave up.
    """

    KIND: ClassVar[str] = "partition"
    direction: Direction = Direction.BOTH


Fault: TypeAlias = (
    Latency | Bandwidth | Reset | Refuse | Blackhole | SlowClose | ConnectionLoss | Partition
)

FAULT_KINDS: dict[str, type[Fault]] = {
    cls.KIND: cls
    for cls in (Latency, Bandwidth, Reset, Refuse, Blackhole, SlowClose, ConnectionLoss, Partition)
}


@dataclass(frozen=True, slots=True)
class Pulse:
    """The fault acts for ``on_ms``, rests for ``off_ms``, and again, until cleared."""

    on_ms: float
    off_ms: float

    def __post_init__(self) -> None:
        _check("pulse", "on_ms", self.on_ms >= 1, "must be >= 1")
        _check("pulse", "off_ms", self.off_ms >= 1, "must be >= 1")


# --- JSON ------------------------------------------------------------------------


def _number(kind: str, name: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise FaultSpecError(f"{kind}: {name} must be a finite number, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def _integer(kind: str, name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FaultSpecError(f"{kind}: {name} must be an integer, not {value!r}")
    return value


def _optional_integer(kind: str, name: str, value: object) -> int | None:
    return None if value is None else _integer(kind, name, value)


def _choice(enum: type[StrEnum]) -> Callable[[str, str, object], object]:
    def convert(kind: str, name: str, value: object) -> object:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise FaultSpecError(
                f"{kind}: {name} must be one of {allowed}, not {value!r}"
            ) from None

    return convert


# Fields are named alike across faults, so their JSON type follows from the name.
_FIELD_TYPES: dict[str, Callable[[str, str, object], object]] = {
    "ms": _number,
    "jitter_ms": _number,
    "delay_ms": _number,
    "probability": _number,
    "on_ms": _number,
    "off_ms": _number,
    "bytes_per_s": _integer,
    "seed": _optional_integer,
    "direction": _choice(Direction),
    "how": _choice(LossAction),
}


def _build(cls: type[Fault] | type[Pulse], kind: str, data: Mapping[str, object]) -> object:
    known = {field.name: field for field in fields(cls)}
    unknown = sorted(set(data) - set(known) - ({"kind"} if cls is not Pulse else set()))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise FaultSpecError(
            f"{kind}: unknown field(s) {', '.join(unknown)} (accepted: {accepted})"
        )
    values: dict[str, Any] = {}
    for name, field in known.items():
        if name in data:
            values[name] = _FIELD_TYPES[name](kind, name, data[name])
        elif field.default is MISSING:
            raise FaultSpecError(f"{kind}: missing field {name}")
    return cls(**values)


def fault_from_json(data: object) -> Fault:
    """The fault a JSON object describes; :class:`FaultSpecError` if it describes none."""
    if not isinstance(data, Mapping):
        raise FaultSpecError('a fault is a JSON object with a "kind"')
    kind = data.get("kind")
    cls = FAULT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise FaultSpecError(f"unknown fault kind {kind!r} (one of: {', '.join(FAULT_KINDS)})")
    fault = _build(cls, cls.KIND, data)
    assert isinstance(fault, cls)
    return fault


def fault_to_json(fault: Fault) -> dict[str, object]:
    """The JSON object of ``fault``, every field spelled out."""
    out: dict[str, object] = {"kind": fault.KIND}
    for field in fields(fault):
        value = getattr(fault, field.name)
        out[field.name] = value.value if isinstance(value, StrEnum) else value
    return out


def pulse_from_json(data: object) -> Pulse:
    if not isinstance(data, Mapping):
        raise FaultSpecError('a pulse is a JSON object {"on_ms": ..., "off_ms": ...}')
    pulse = _build(Pulse, "pulse", data)
    assert isinstance(pulse, Pulse)
    return pulse


def pulse_to_json(pulse: Pulse) -> dict[str, object]:
    return {"on_ms": pulse.on_ms, "off_ms": pulse.off_ms}
