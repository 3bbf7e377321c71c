"""Leases in this process: enough when one coordinator serves the targets."""

from __future__ import annotations

from collections.abc import Collection


class LocalLeases:
    """The Leases port in memory. Nothing expires: the holder is this process."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}

    async def try_acquire(self, keys: Collection[str], holder: str) -> bool:
        if any(self._held.get(key, holder) != holder for key in keys):
            return False
        for key in keys:
            self._held[key] = holder
        return True

    async def renew(self, keys: Collection[str], holder: str) -> list[str]:
        return [key for key in keys if self._held.get(key) != holder]

    async def release(self, keys: Collection[str], holder: str) -> None:
        for key in keys:
            if self._held.get(key) == holder:
                del self._held[key]

    async def holders(self, keys: Collection[str]) -> dict[str, str]:
        return {key: self._held[key] for key in keys if key in self._held}
