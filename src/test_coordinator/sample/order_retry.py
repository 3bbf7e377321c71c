"""The engine's decision after an order attempt fails: retry after a pause, or give up."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from test_coordinator.adapters.audit.circuit_breaker import ExponentialBackoff


class AttemptFailure(StrEnum):
    UNREACHABLE = "unreachable"  # no answer: refused, reset, timed out, or a 5xx
    REJECTED = "rejected"  # the exchange answered no (a 4xx): retrying won't change it


@dataclass(frozen=True, slots=True)
class OrderRetryPolicy:
    """Retry an unreachable exchange with exponential backoff, up to ``max_attempts``
    attempts in all (None: until it answers or the engine stops); never retry a refusal."""

    retry: bool = True
    backoff: ExponentialBackoff = field(
        default_factory=lambda: ExponentialBackoff(base_s=0.05, factor=2.0, max_s=1.0, jitter=0.2)
    )
    max_attempts: int | None = None

    def next_delay(self, failure: AttemptFailure, attempts: int) -> float | None:
        """Seconds to wait before attempt ``attempts + 1``, or None to give the order up."""
        if failure is AttemptFailure.REJECTED or not self.retry:
            return None
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        return self.backoff.delay(attempts)
