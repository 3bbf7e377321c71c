"""A circuit breaker and an exponential backoff, both driven by an injectable clock.

The breaker is closed while calls succeed. After ``failure_threshold``
consecutive failures it opens: no call is allowed for ``cooldown_s``. Then it
is half-open: one probe call is allowed; its success closes the breaker, its
failure opens it again for another cooldown.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open state, only the one probe may."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until :meth:`allow` may say yes (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        if self._probing:
            return self.cooldown_s
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probing = False


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """``base_s * factor ** (attempt - 1)``, capped at ``max_s``, with up to ``jitter`` of it
    taken off at random so that many clients do not retry in step."""

    base_s: float = 0.05
    factor: float = 2.0
    max_s: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The pause before retry number ``attempt`` (1 for the first retry)."""
        exponent = max(0, attempt - 1)
        raw = self.max_s if exponent > 64 else min(self.max_s, self.base_s * self.factor**exponent)
        return raw * (1.0 - self.jitter * rand())
