"""Token bucket for the bandwidth fault."""

from __future__ import annotations

# A bandwidth-limited chunk is cut into slices of about 20 ms worth of bytes, so
# that a slow link delivers a steady trickle rather than one late lump.
_SLICE_S = 0.02
_SLICE_MIN = 512
_SLICE_MAX = 16384


def slice_size(bytes_per_s: int) -> int:
    """How many bytes leave together at ``bytes_per_s``; also the bucket's burst."""
    return max(_SLICE_MIN, min(_SLICE_MAX, int(bytes_per_s * _SLICE_S)))


class TokenBucket:
    """Bytes may leave at ``rate`` a second after a burst of up to ``burst``.

    A reservation larger than the tokens at hand is not refused: the bucket goes
    into debt and answers *when* the bytes may leave, which is what a delay
    queue needs. Times are the event loop's clock, in seconds.
    """

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def reserve(self, size: int, at: float) -> float:
        """Take ``size`` tokens for bytes ready to leave at ``at``; the time they may leave."""
        if at > self._stamp:
            self._tokens = min(self.burst, self._tokens + (at - self._stamp) * self.rate)
            self._stamp = at
        self._tokens -= size
        if self._tokens >= 0:
            return at
        return self._stamp - self._tokens / self.rate
