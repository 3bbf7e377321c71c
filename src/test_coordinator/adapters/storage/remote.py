"""What a BufferedWriter needs from a server, and how patiently it deals with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from test_coordinator.adapters.storage.writes import PendingWrite


class Remote(Protocol):
    """The server side. Both methods raise StorageUnavailable when it cannot be reached
    and StorageRejected when it refuses; ``apply`` is all-or-nothing."""

    async def ping(self) -> None: ...

    async def apply(self, writes: Sequence[PendingWrite]) -> None: ...


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How often to check a server, how long to wait for it, how patiently to retry."""

    check_interval_s: float = 1.0
    first_backoff_s: float = 0.25
    max_backoff_s: float = 4.0
    connect_timeout_s: float = 2.0
    operation_timeout_s: float = 5.0
    replay_batch_size: int = 200
