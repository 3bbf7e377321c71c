"""Talk to a netfault proxy's control socket.

    control = NetfaultControl("/run/tc/exchange.sock")
    await control.set("slow", Latency(ms=50))
    stats = await control.clear("slow")         # what the fault did; None if never set

Each call opens the socket, sends one request, reads one reply and closes,
within ``timeout_s``: nothing to keep alive, and a call made after a crash
(the guard, ``recover``) works the same. A proxy that cannot be reached or does
not answer raises :class:`NetfaultUnavailable`; one that refuses the request
raises :class:`NetfaultRejected` with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from test_coordinator.netfault.errors import NetfaultBusy, NetfaultRejected, NetfaultUnavailable
from test_coordinator.netfault.model import Fault, Pulse, fault_to_json, pulse_to_json
from test_coordinator.runtime.os_errors import os_error_reason

_REPLY_LIMIT = 16 * 1024 * 1024


class NetfaultControl:
    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

    async def set(
        self, fault_id: str, fault: Fault, *, pulse: Pulse | None = None, owner: str | None = None
    ) -> bool:
        """Apply ``fault`` under ``fault_id``; whether it replaced a fault of that id.
        ``owner`` (a prefix of ``fault_id``): refused while another owner's fault is set."""
        request: dict[str, object] = {"op": "set", "id": fault_id, "fault": fault_to_json(fault)}
        if pulse is not None:
            request["pulse"] = pulse_to_json(pulse)
        if owner is not None:
            request["owner"] = owner
        replaced = (await self.request(request)).get("replaced")
        if not isinstance(replaced, bool):
            raise NetfaultUnavailable(
                f'netfault control socket {self.path}: a set answered without "replaced": '
                "not a netfault proxy?"
            )
        return replaced

    async def clear(self, fault_id: str) -> dict[str, int] | None:
        """Undo the fault; its stats, or None if no fault had that id. Clearing twice is
        fine: the second answer has the stats of the first, while the proxy keeps them."""
        reply = await self.request({"op": "clear", "id": fault_id})
        stats = reply.get("stats")
        return stats if isinstance(stats, dict) else None

    async def clear_all(self) -> list[str]:
        """Undo every fault; their ids."""
        cleared: list[str] = (await self.request({"op": "clear_all"}))["cleared"]
        return cleared

    async def state(self) -> dict[str, Any]:
        """Where it listens and forwards, and the faults set, each with its stats."""
        state = await self.request({"op": "state"})
        faults = state.get("faults")
        if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
            raise NetfaultUnavailable(
                f"netfault control socket {self.path}: its state has no list of faults: "
                "not a netfault proxy?"
            )
        return state

    async def stats(self) -> dict[str, Any]:
        """The proxy's counters, and each fault's stats by id."""
        return await self.request({"op": "stats"})

    async def request(self, request: dict[str, object]) -> dict[str, Any]:
        """Send one request; the reply (``ok`` true), else NetfaultRejected/NetfaultUnavailable."""
        where = f"netfault control socket {self.path}"
        try:
            async with asyncio.timeout(self.timeout_s):
                line = await self._exchange(json.dumps(request).encode() + b"\n")
        except TimeoutError:
            raise NetfaultUnavailable(f"{where}: no answer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise NetfaultUnavailable(f"{where}: {os_error_reason(exc)}") from None
        except (ValueError, asyncio.IncompleteReadError) as exc:
            raise NetfaultUnavailable(f"{where}: unreadable answer ({exc})") from None
        if not line:
            raise NetfaultUnavailable(f"{where}: closed without answering")
        try:
            reply = json.loads(line)
        except ValueError:
            raise NetfaultUnavailable(f"{where}: answered {line[:200]!r}, not JSON") from None
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            error = reply.get("error") if isinstance(reply, dict) else None
            refused = NetfaultBusy if isinstance(reply, dict) and reply.get("busy") else None
            raise (refused or NetfaultRejected)(str(error or f"unexpected answer {reply!r}"))
        return reply

    async def _exchange(self, payload: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(self.path), limit=_REPLY_LIMIT)
        try:
            writer.write(payload)
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
