"""The metrics port over prometheus_client.

Each :class:`PrometheusMetrics` owns its registry, so two instances in one
process (tests, or two apps) never collide, and adds its constant labels
(service, instance, version) to every series it exposes, the process and
Python runtime series included.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import Counter as _PromCounter
from prometheus_client import Gauge as _PromGauge
from prometheus_client import Histogram as _PromHistogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from test_coordinator.ports.metrics import Counter, Gauge, Histogram

DEFAULT_NAMESPACE = "test_coordinator"


class InvalidMetric(ValueError):
    """An instrument was declared or used inconsistently (name, labels, kind)."""


class _Instrument:
    """Resolves label values to a prometheus child once, then reuses it."""

    __slots__ = ("_children", "_label_names", "_metric", "_name")

    def __init__(self, name: str, metric: Any, label_names: tuple[str, ...]) -> None:
        self._name = name
        self._metric = metric
        self._label_names = label_names
        self._children: dict[tuple[str, ...], Any] = {}

    @property
    def label_names(self) -> tuple[str, ...]:
        return self._label_names

    def _child(self, labels: Mapping[str, str]) -> Any:
        if not labels and not self._label_names:
            return self._metric
        try:
            key: tuple[str, ...] | None = tuple([labels[name] for name in self._label_names])
        except KeyError:
            key = None
        if key is None or len(key) != len(labels):
            raise InvalidMetric(
                f"{self._name} takes labels {list(self._label_names)}, got {sorted(labels)}"
            )
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*key)
        return child


_I = TypeVar("_I", bound=_Instrument)


class _PrometheusCounter(_Instrument):
    __slots__ = ()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._child(labels).inc(amount)


class _PrometheusHistogram(_Instrument):
    __slots__ = ()

    def observe(self, value: float, **labels: str) -> None:
        self._child(labels).observe(value)


class _PrometheusGauge(_Instrument):
    __slots__ = ()

    def set(self, value: float, **labels: str) -> None:
        self._child(labels).set(value)


class _WithConstantLabels:
    """A read-only view of a registry whose samples all carry the constant labels."""

    def __init__(self, registry: CollectorRegistry, labels: Mapping[str, str]) -> None:
        self._registry = registry
        self._labels = dict(labels)

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            labelled = copy.copy(family)
            labelled.samples = [
                sample._replace(labels=self._with_constant_labels(sample.labels))
                for sample in family.samples
            ]
            yield labelled

    def _with_constant_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        # A clashing label (python_info's "version") is kept as exported_<name>, as
        # Prometheus itself does when target labels clash with scraped ones.
        merged = dict(self._labels)
        for name, value in labels.items():
            merged[f"exported_{name}" if name in self._labels else name] = value
        return merged


class PrometheusMetrics:
    """Instruments named ``{namespace}_{name}``, labelled with ``constant_labels`` too."""

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        constant_labels: Mapping[str, str] | None = None,
        *,
        runtime_collectors: bool = True,
    ) -> None:
        self._namespace = namespace
        self._constant_labels = dict(constant_labels or {})
        self._registry = CollectorRegistry(auto_describe=True)
        self._instruments: dict[str, _Instrument] = {}
        if runtime_collectors:
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)
        self._exposed = _WithConstantLabels(self._registry, self._constant_labels)

    def counter(self, name: str, description: str, labels: Sequence[str] = ()) -> Counter:
        return self._instrument(_PrometheusCounter, _PromCounter, name, description, labels)

    def histogram(
        self,
        name: str,
        description: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> Histogram:
        extra = {"buckets": tuple(buckets)} if buckets is not None else {}
        return self._instrument(
            _PrometheusHistogram, _PromHistogram, name, description, labels, **extra
        )

    def gauge(self, name: str, description: str, labels: Sequence[str] = ()) -> Gauge:
        return self._instrument(_PrometheusGauge, _PromGauge, name, description, labels)

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every series, and its content type."""
        return generate_latest(self._exposed), CONTENT_TYPE_LATEST

    def _instrument(
        self,
        wrapper: type[_I],
        factory: type[MetricWrapperBase],
        name: str,
        description: str,
        labels: Sequence[str],
        **options: Any,
    ) -> _I:
        label_names = tuple(labels)
        known = self._instruments.get(name)
        if known is not None:
            if isinstance(known, wrapper) and known.label_names == label_names:
                return known
            raise InvalidMetric(
                f"{name} is already a {type(known).__name__} with labels "
                f"{list(known.label_names)}; asked for a {wrapper.__name__} with labels "
                f"{list(label_names)}"
            )
        clashing = sorted(set(label_names) & set(self._constant_labels))
        if clashing:
            raise InvalidMetric(f"{name}: labels {clashing} are constant labels of every series")
        try:
            metric = factory(
                name,
                description,
                labelnames=label_names,
                namespace=self._namespace,
                registry=self._registry,
                **options,
            )
        except ValueError as exc:
            raise InvalidMetric(f"{name}: {exc}") from exc
        instrument = wrapper(name, metric, label_names)
        self._instruments[name] = instrument
        return instrument
