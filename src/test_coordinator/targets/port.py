"""The target port: everything the engine does to a service, whatever runs it.

A *backend* runs one kind of service (``process``: local processes,
``docker``: containers through the Docker Engine API). The engine talks only to
:class:`TargetBackend`; which backend serves a service is decided once, by the
service's kind, in :mod:`test_coordinator.targets.wiring`.

Every backend is built from the services' specs as written in the scenario
(plain data, see :class:`TargetSpec`), so the very same backend can be built
again after a crash from what the undo log recorded, and undo through the same
code. A *handle* is a backend's JSON-able description of one incarnation of a
service (a pid and its start time, a container id): enough to find exactly that
incarnation again, never another one that reused its pid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class TargetState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"
    NOT_STARTED = "not-started"


class TargetError(Exception):
    """A target could not be started, signalled, stopped or restored; the message names it.

    ``infrastructure`` is True when the coordinator could not act at all (a
    spawn failed, the engine did not answer) rather than the service misbehaving.
    """

    def __init__(self, message: str, *, infrastructure: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One service as a backend needs it: its kind and its section of the scenario.

    ``config`` is the service's ``process:`` or ``docker:`` mapping with every
    variable resolved: plain JSON, stored with each undo record.
    """

    name: str
    kind: str
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunScope:
    """What a backend knows of the run it serves: its id (marks everything it creates),
    where service logs go, and when it started (epoch ms; None when not known, as in a
    recovery): the logs of a service that outlives runs are kept from there on."""

    run_id: str
    log_dir: Path
    extra: Mapping[str, Any] = field(default_factory=dict)
    started_at_ms: int | None = None


class TargetBackend(Protocol):
    """One kind of target. State queries are synchronous and cheap (cached by the backend)."""

    kind: str

    async def start(self, name: str) -> str:
        """Start the service (create it first if the run owns it); its identity, e.g. ``pid 42``."""

    async def stop(
        self, name: str, grace_s: float | None = None, signum: int | None = None
    ) -> None:
        """Ask it to stop (with ``signum``, default SIGTERM or the engine's stop), wait
        ``grace_s`` (default: the spec's), then kill it."""

    async def restart(self, name: str) -> str:
        """Stop then start; the new identity."""

    async def signal(self, name: str, signum: int) -> None:
        """Send a signal; after a terminating one, return once it is gone (bounded)."""

    async def pause(self, name: str) -> None:
        """Freeze it; return once every part of it is seen frozen."""

    async def resume(self, name: str) -> None:
        """Unfreeze it; return once no part of it is seen frozen (raises otherwise)."""

    def state(self, name: str) -> TargetState: ...

    async def exit_problem(self, name: str) -> str | None:
        """Why the service is not running (None while it runs): one sentence with its exit
        status and the tail of its error output, for a start that did not come up."""

    def identity(self, name: str) -> str | None:
        """Which incarnation runs now (changes on every start), None when not running."""

    def handle(self, name: str) -> dict[str, Any]:
        """JSON that finds this very incarnation again after a crash (for undo records)."""

    def adopt(self, name: str, handle: Mapping[str, Any]) -> None:
        """Take over an incarnation described by ``handle`` (recovery after a crash)."""

    def log_paths(self, name: str) -> list[Path]:
        """Files holding the service's output (stdout, then stderr), current on return."""

    async def sync_logs(self, name: str) -> None:
        """Bring :meth:`log_paths` up to date (containers keep their logs in the engine)."""

    def owns(self, name: str) -> bool:
        """True when the run creates the service (and so must remove it at the end)."""

    async def remove(self, name: str) -> str:
        """Remove everything the run created for the service, verified gone; what was done."""

    async def close(self) -> None:
        """Release what the backend holds; stops whatever the run still has running."""
