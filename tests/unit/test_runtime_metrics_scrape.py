"""Reading one value from Prometheus text, by name and labels."""

import pytest

from support.canned_http import canned_server, http_answer
from test_coordinator.runtime.metrics_scrape import (
    MetricsScrapeError,
    metric_value,
    scrape_metric,
)
from test_coordinator.runtime.ports_alloc import free_port

TEXT = """\
# HELP requests_total Requests received.
# TYPE requests_total counter
requests_total{path="/health",code="200"} 3
requests_total{path="/health",code="503"} 2
requests_total{path="/",code="200"} 5
# TYPE uptime_seconds gauge
uptime_seconds 12.5
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 4
latency_seconds_bucket{le="+Inf"} 6
latency_seconds_sum 0.9
latency_seconds_count 6
"""


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        ("requests_total", {}, 10.0),
        ("requests", {}, 10.0),
        ("requests_total", {"path": "/health"}, 5.0),
        ("requests_total", {"path": "/health", "code": "503"}, 2.0),
        ("uptime_seconds", {}, 12.5),
        ("latency_seconds_count", {}, 6.0),
        ("latency_seconds_bucket", {"le": "0.1"}, 4.0),
    ],
)
def test_matching_samples_are_summed(name: str, labels: dict[str, str], expected: float) -> None:
    """Every sample with the name and (at least) the labels counts."""
    assert metric_value(TEXT, name, labels) == expected


@pytest.mark.parametrize(
    ("name", "labels"),
    [("missing_total", {}), ("requests_total", {"path": "/nope"}), ("latency_seconds", {})],
)
def test_nothing_matching_is_none_not_zero(name: str, labels: dict[str, str]) -> None:
    assert metric_value(TEXT, name, labels) is None


def test_text_that_is_not_prometheus_is_an_error() -> None:
    with pytest.raises(MetricsScrapeError, match="not Prometheus text"):
        metric_value("requests_total{path=oops 1\n", "requests_total")


async def test_scrape_reads_the_body_of_a_200() -> None:
    """The body of a 200 answer is parsed; the scrape asks for its own connection."""
    answer = http_answer(200, TEXT, content_type="text/plain")
    async with canned_server(lambda _: answer) as server:
        value = await scrape_metric(f"{server.url}/metrics", "requests", {"code": "200"})

    assert value == 8.0
    assert b"Connection: close" in server.requests[0]


async def test_scrape_of_an_error_status_is_an_error() -> None:
    async with canned_server(lambda _: http_answer(500, "boom")) as server:
        with pytest.raises(MetricsScrapeError, match=f"{server.url}/metrics: status 500"):
            await scrape_metric(f"{server.url}/metrics", "requests_total")


async def test_scrape_of_a_closed_port_names_the_url_and_reason() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(MetricsScrapeError, match="Connection refused") as caught:
        await scrape_metric(url, "requests_total", timeout_s=1.0)

    assert url in str(caught.value)
