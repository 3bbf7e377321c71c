"""Read one value from a Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from test_coordinator.runtime.http_client import describe_http_error, new_http_client


class MetricsScrapeError(Exception):
    """The endpoint could not be read, or its text is not Prometheus exposition format."""


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The sum of every sample called ``name`` whose labels include ``labels``.

    A counter may be named with or without its ``_total`` suffix. None when no
    sample matches (not 0: a missing metric is not a zero one).
    """
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
    client: httpx.AsyncClient | None = None,
    timeout_s: float = 2.0,
) -> float | None:
    """GET ``url`` and return :func:`metric_value` of its body.

    Raises MetricsScrapeError (naming the URL) when the endpoint does not answer
    within ``timeout_s``, answers other than 200, or is not Prometheus text.
    """
    owned = client is None
    http = client if client is not None else new_http_client(max_connections=1)
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.get(url, timeout=timeout_s)
    except TimeoutError as exc:
        raise MetricsScrapeError(f"{url}: no answer within {timeout_s:g} s") from exc
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        raise MetricsScrapeError(f"{url}: {describe_http_error(exc)}") from exc
    finally:
        if owned:
            await http.aclose()
    if response.status_code != 200:
        raise MetricsScrapeError(f"{url}: status {response.status_code}, expected 200")
    try:
        return metric_value(response.text, name, labels)
    except MetricsScrapeError as exc:
        raise MetricsScrapeError(f"{url}: {exc}") from exc
