"""The metrics port: counters and histograms with labels, nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Counter(Protocol):
    def inc(self, amount: float = 1.0, **labels: str) -> None: ...


class Histogram(Protocol):
    def observe(self, value: float, **labels: str) -> None: ...


class Gauge(Protocol):
    def set(self, value: float, **labels: str) -> None: ...


class Metrics(Protocol):
    """Creates instruments; names are snake_case without the namespace prefix."""

    def counter(self, name: str, description: str, labels: Sequence[str] = ()) -> Counter: ...

    def histogram(
        self,
        name: str,
        description: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> Histogram: ...

    def gauge(self, name: str, description: str, labels: Sequence[str] = ()) -> Gauge: ...
