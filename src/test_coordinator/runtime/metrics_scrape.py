"""Read one value from a Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from test_coordinator.runtime.http_wire import HttpWireClient, HttpWireError

MAX_EXPOSITION_BYTES = 32 * 1024 * 1024


class MetricsScrapeError(Exception):
    """The endpoint could not be read, or its text is not Prometheus exposition format."""


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The sum of every sample called ``name`` whose labels include ``labels``.

    A counter may be named with or without its ``_total`` suffix. None when no
    sample matches (not 0: a missing metric is not a zero one).
    """
    from prometheus_client.parser import text_string_to_metric_families

    wanted = dict(labels or {})
    total = 0.0
    matched = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                counter_alias = (
                    family.type == "counter"
                    and family.name == name
                    and sample.name == f"{name}_total"
                )
                if sample.name != name and not counter_alias:
                    continue
                if all(sample.labels.get(k) == v for k, v in wanted.items()):
                    total += sample.value
                    matched = True
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MetricsScrapeError(f"not Prometheus text format: {exc}") from exc
    return total if matched else None


async def scrape_metric(
    url: str,
    name: str,
    labels: Mapping[str, str] | None = None,
    timeout_s: float = 2.0,
) -> float | None:
    """GET ``url`` and return :func:`metric_value` of its body.

    Raises MetricsScrapeError (naming the URL) when the endpoint does not answer
    within ``timeout_s``, answers other than 200, or is not Prometheus text.
    """
    try:
        client = HttpWireClient(url, headers={"Connection": "close"}, max_body=MAX_EXPOSITION_BYTES)
        try:
            async with asyncio.timeout(timeout_s):
                answer = await client.request()
        finally:
            client.close()
    except TimeoutError as exc:
        raise MetricsScrapeError(f"{url}: no answer within {timeout_s:g} s") from exc
    except HttpWireError as exc:
        raise MetricsScrapeError(f"{url}: {exc}") from exc
    if answer.status != 200:
        raise MetricsScrapeError(f"{url}: status {answer.status}, expected 200")
    try:
        return metric_value(answer.body.decode("utf-8", errors="replace"), name, labels)
    except MetricsScrapeError as exc:
        raise MetricsScrapeError(f"{url}: {exc}") from exc
