"""Existing proxies: a network fault proxy that runs outside the run (``proxy: {control: ...}``).

The run never starts, stops or signals it: "starting" it checks that its control
socket answers and that no fault is set on it (a fault nobody healed belongs to
another run, or to one that died: faulting on top of it would measure both).
The run then sets and clears its faults through that socket, as on a proxy it
started; the undo records carry the socket's path, so the guard and ``recover``
heal them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.errors import NetfaultRejected, NetfaultUnavailable
from test_coordinator.targets.port import RunScope, TargetError, TargetSpec, TargetState


class ExistingProxyBackend:
    """Proxies reached through their control socket; nothing to start, stop or remove."""

    kind = "proxy"

    def __init__(self, specs: Mapping[str, TargetSpec], scope: RunScope) -> None:
        self._controls = {name: Path(str(spec.config["control"])) for name, spec in specs.items()}
        self._seen: dict[str, str] = {}

    def _control(self, name: str) -> Path:
        try:
            return self._controls[name]
        except KeyError:
            raise TargetError(f"{name} is not an existing proxy of this run") from None

    async def start(self, name: str) -> str:
        """See the proxy answer with no fault set; where it listens and forwards."""
        control = self._control(name)
        try:
            state = await NetfaultControl(control).state()
        except (NetfaultUnavailable, NetfaultRejected) as exc:
            raise TargetError(
                f"{name}: the existing proxy does not answer: {exc}", infrastructure=True
            ) from None
        faults = [str(f.get("id")) for f in state.get("faults") or () if isinstance(f, dict)]
        if faults:
            raise TargetError(
                f"{name}: the existing proxy already has faults set ({', '.join(faults)}): "
                "another run's, or left by one that died (`test-coordinator recover` heals "
                "what a run recorded)",
                infrastructure=True,
            )
        identity = f"proxy {state.get('listen')} -> {state.get('upstream')} (control {control})"
        self._seen[name] = identity
        return identity

    def _not_ours(self, name: str, what: str) -> TargetError:
        return TargetError(
            f"cannot {what} {name}: it is an existing proxy (control {self._control(name)}), "
            "started outside the run; its faults are set and healed, it is never "
            "started, stopped or signalled"
        )

    async def stop(
        self, name: str, grace_s: float | None = None, signum: int | None = None
    ) -> None:
        raise self._not_ours(name, "stop")

    async def restart(self, name: str) -> str:
        raise self._not_ours(name, "restart")

    async def signal(self, name: str, signum: int) -> None:
        raise self._not_ours(name, "signal")

    async def pause(self, name: str) -> None:
        raise self._not_ours(name, "pause")

    async def resume(self, name: str) -> None:
        raise self._not_ours(name, "resume")

    def state(self, name: str) -> TargetState:
        """Always running: the run neither starts nor stops it, and a heal must not take an
        unreachable control socket for a proxy that went away with its faults."""
        self._control(name)
        return TargetState.RUNNING

    async def exit_problem(self, name: str) -> str | None:
        return None

    def identity(self, name: str) -> str | None:
        self._control(name)
        return self._seen.get(name)

    def handle(self, name: str) -> dict[str, Any]:
        return {"control": str(self._control(name))}

    def adopt(self, name: str, handle: Mapping[str, Any]) -> None:
        self._seen[name] = f"proxy (control {self._control(name)})"

    def log_paths(self, name: str) -> list[Path]:
        return []

    async def sync_logs(self, name: str) -> None:
        return None

    def owns(self, name: str) -> bool:
        return False

    async def remove(self, name: str) -> str:
        return f"{name}: existing proxy left in place (control {self._control(name)})"

    async def close(self) -> None:
        return None
