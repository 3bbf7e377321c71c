"""Leases on shared targets: while a run holds a key, no other run may take it.

``try_acquire`` takes every key or none, and never waits: the caller decides what
to do with a run whose targets are busy. A lease held elsewhere (another
coordinator sharing the store of leases) expires unless its holder renews it, so
a coordinator killed with its leases frees them within the lease's time to live.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from test_coordinator.ports.availability import DependencyUnavailable


class LeaseUnavailable(DependencyUnavailable):
    """The store of leases cannot be reached: nothing was taken."""


class Leases(Protocol):
    async def try_acquire(self, keys: Collection[str], holder: str) -> bool:
        """Take all ``keys`` for ``holder``, or none (False) when one is held by another."""

    async def renew(self, keys: Collection[str], holder: str) -> list[str]:
        """Extend ``holder``'s leases; the keys it no longer holds (expired, taken)."""

    async def release(self, keys: Collection[str], holder: str) -> None:
        """Give back the keys ``holder`` holds; others' are left alone."""

    async def holders(self, keys: Collection[str]) -> dict[str, str]:
        """Who holds each of ``keys`` that is held."""
