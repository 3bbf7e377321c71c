"""Probes (how to look at a service) and conditions (what the look must show)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from test_coordinator.domain.compare import impossible
from test_coordinator.scenario.types import Duration, ServiceList, Strict, Text, checked_regex

PROBE_KINDS = ("http", "tcp", "grpc", "command")
COMMAND_MIN_EVERY_S = 0.05
"""A command probe spawns a process each time: it is polled at most every 50 ms."""
COMMAND_BACKOFF_FACTOR = 4
"""A command probe refused (it ran and failed) backs off to this many times its every."""
DEFAULT_PROBE_TIMEOUT_S = 1.0
DEFAULT_COMMAND_TIMEOUT_S = 5.0


class HttpProbeSpec(Strict):
    """An HTTP request whose status, and optionally JSON fields, must match."""

    url: Text
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE"] = "GET"
    status: int = Field(200, ge=100, le=599)
    json_fields: dict[str, JsonValue] = Field(default_factory=dict, alias="json")
    timeout: Duration = DEFAULT_PROBE_TIMEOUT_S


class TcpProbeSpec(Strict):
    """A TCP connection that must be accepted."""

    host: Text = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    timeout: Duration = DEFAULT_PROBE_TIMEOUT_S


class GrpcProbeSpec(Strict):
    """The standard gRPC health check, which must answer SERVING."""

    target: Text
    service: Text = ""
    timeout: Duration = DEFAULT_PROBE_TIMEOUT_S


class CommandProbeSpec(Strict):
    """A command (no shell) that must exit with ``exit``, its stdout and stderr matching
    the ``stdout`` and ``stderr`` regexes when given; its stdout (stripped) is the value.

    ``env`` is added to the coordinator's environment; ``cwd`` is where it runs.
    """

    argv: tuple[Text, ...] = Field(min_length=1)
    env: dict[str, Text] = Field(default_factory=dict)
    cwd: Text | None = None
    exit: int = 0
    stdout: Text | None = None
    stderr: Text | None = None
    timeout: Duration = DEFAULT_COMMAND_TIMEOUT_S

    @field_validator("stdout", "stderr")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return checked_regex(value)


class ProbeSpec(Strict):
    """Exactly one of ``http``, ``tcp``, ``grpc`` or ``command``."""

    http: HttpProbeSpec | None = None
    tcp: TcpProbeSpec | None = None
    grpc: GrpcProbeSpec | None = None
    command: CommandProbeSpec | None = None
    every: Duration | None = None
    """How often it is polled while waiting for the service (setup, recovery, undo);
    default: the engine's interval (3 ms), and 50 ms for a command."""
    max_every: Duration | None = None
    """While the target refuses (answers, but not healthy), polling backs off, doubling
    the gap up to this; default: no back-off for HTTP, TCP and gRPC (a 5 ms bound on
    the recovery moment), four times ``every`` for a command."""

    @model_validator(mode="after")
    def _exactly_one_probe(self) -> ProbeSpec:
        _require_one(self, PROBE_KINDS, "a probe")
        if self.command is not None and self.every is not None and self.every < COMMAND_MIN_EVERY_S:
            raise ValueError(
                "every: a command probe starts a process each time; allowed: 50ms or more"
            )
        if self.every is not None and self.every <= 0:
            raise ValueError("every: allowed: a duration above 0")
        if self.max_every is not None and self.max_every < (self.every or 0.0):
            raise ValueError("max_every: allowed: a duration no shorter than every")
        return self

    def interval(self, default_s: float) -> float:
        """The polling interval: ``every``, else ``default_s`` (at least 50 ms for a command)."""
        if self.every is not None:
            return self.every
        if self.command is not None:
            return max(default_s, COMMAND_MIN_EVERY_S)
        return default_s

    def max_interval(self, default_s: float) -> float:
        """The longest gap while the target refuses (see :meth:`interval`)."""
        if self.max_every is not None:
            return max(self.max_every, self.interval(default_s))
        if self.command is not None:
            return COMMAND_BACKOFF_FACTOR * self.interval(default_s)
        return self.interval(default_s)

    @property
    def kind(self) -> str:
        return next(kind for kind in PROBE_KINDS if getattr(self, kind) is not None)


class Condition(Strict):
    """What must be true: services healthy, or a probe that succeeds (and whose value matches).

    With a probe, ``json_path`` picks a part of its value (``data.items[0].id``)
    and ``equals``, ``min``/``max`` or ``regex`` compare it.
    """

    healthy: ServiceList | None = None
    http: HttpProbeSpec | None = None
    tcp: TcpProbeSpec | None = None
    grpc: GrpcProbeSpec | None = None
    command: CommandProbeSpec | None = None
    json_path: Text | None = None
    equals: JsonValue = None
    min: float | None = None
    max: float | None = None
    regex: Text | None = None

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return checked_regex(value)

    @model_validator(mode="after")
    def _exactly_one_subject(self) -> Condition:
        kind = _require_one(self, ("healthy", *PROBE_KINDS), "a condition")
        compares = [
            name
            for name in ("json_path", "equals", "min", "max", "regex")
            if getattr(self, name) is not None
        ]
        if kind == "healthy" and compares:
            raise ValueError(
                f"{', '.join(compares)} compare a probe's value, and 'healthy' has none; "
                "allowed with healthy: nothing else"
            )
        never = impossible(equals=self.equals, min=self.min, max=self.max, regex=self.regex)
        if never is not None:
            raise ValueError(never)
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in ("healthy", *PROBE_KINDS) if getattr(self, kind) is not None)

    @property
    def probe(self) -> ProbeSpec | None:
        """The probe part as a ProbeSpec, or None for ``healthy``."""
        if self.healthy is not None:
            return None
        return ProbeSpec.model_validate({self.kind: getattr(self, self.kind)})

    @property
    def compares(self) -> bool:
        return any(getattr(self, name) is not None for name in ("equals", "min", "max", "regex"))

    def describe(self) -> str:
        if self.healthy is not None:
            return f"{', '.join(self.healthy)} healthy"
        text = _describe_probe(self)
        if self.json_path:
            text += f" .{self.json_path}"
        if self.equals is not None:
            text += f" == {self.equals!r}"
        if self.min is not None:
            text += f" >= {self.min:g}"
        if self.max is not None:
            text += f" <= {self.max:g}"
        if self.regex is not None:
            text += f" ~ /{self.regex}/"
        return text


def _describe_probe(spec: Any) -> str:
    if spec.http is not None:
        return f"http {spec.http.method} {spec.http.url} -> {spec.http.status}"
    if spec.tcp is not None:
        return f"tcp {spec.tcp.host}:{spec.tcp.port}"
    if spec.grpc is not None:
        return f"grpc {spec.grpc.target} {spec.grpc.service}".rstrip()
    return "command " + " ".join(spec.command.argv)


def describe_probe(spec: ProbeSpec) -> str:
    return _describe_probe(spec)


def _require_one(model: Strict, names: tuple[str, ...], what: str) -> str:
    present = [name for name in names if getattr(model, name) is not None]
    if len(present) != 1:
        found = f"found {', '.join(present)}" if present else "found none"
        raise ValueError(f"{what} needs exactly one of {', '.join(names)}; {found}")
    return present[0]
