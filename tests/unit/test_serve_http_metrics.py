"""HTTP metrics on the service's own app: every route it serves is labelled with its
path template, FastAPI's /openapi.json included; only URLs no route serves are
``<unmatched>``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_coordinator.config import Settings
from test_coordinator.entrypoints.http.app import create_app
from test_coordinator.infrastructure.http_metrics import UNMATCHED_ROUTE, HttpMetricsMiddleware
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.service.state import ServiceState

REQUESTS = "test_coordinator_http_requests_total"


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics()


@pytest.fixture
async def http(metrics: PrometheusMetrics) -> AsyncIterator[httpx.AsyncClient]:
    state = ServiceState(Settings(_env_file=None))  # type: ignore[call-arg]
    app = create_app(
        state,
        metrics.render,
        middleware=lambda app: app.add_middleware(HttpMetricsMiddleware, metrics=metrics),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def requests_by_label(metrics: PrometheusMetrics) -> dict[tuple[str, str, str], float]:
    """{(method, route, status): count} of the HTTP request counter."""
    body, _ = metrics.render()
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == REQUESTS
    }


async def test_openapi_document_is_labelled_with_its_path(
    http: httpx.AsyncClient, metrics: PrometheusMetrics
) -> None:
    assert (await http.get("/openapi.json")).status_code == 200

    assert {("GET", "/openapi.json", "200"): 1.0} == requests_by_label(metrics)


async def test_wrong_method_on_a_framework_route_keeps_its_path(
    http: httpx.AsyncClient, metrics: PrometheusMetrics
) -> None:
    """A 405 is still a request to that route, as for the service's own routes."""
    assert (await http.post("/openapi.json")).status_code == 405
    assert (await http.post("/api/v1/health")).status_code == 405

    assert {
        ("POST", "/openapi.json", "405"): 1.0,
        ("POST", "/api/v1/health", "405"): 1.0,
    } == requests_by_label(metrics)


async def test_service_routes_keep_their_templates(
    http: httpx.AsyncClient, metrics: PrometheusMetrics
) -> None:
    for path in ("/api/v1/health", "/health", "/api/v1/ready", "/metrics"):
        await http.get(path)

    assert {
        ("GET", "/api/v1/health", "200"): 1.0,
        ("GET", "/health", "200"): 1.0,
        ("GET", "/api/v1/ready", "503"): 1.0,
        ("GET", "/metrics", "200"): 1.0,
    } == requests_by_label(metrics)


async def test_urls_no_route_serves_stay_unmatched(
    http: httpx.AsyncClient, metrics: PrometheusMetrics
) -> None:
    """Unknown paths, the pages that are off, and a near miss redirected by slash."""
    statuses = [
        (await http.get(path)).status_code
        for path in ("/nope", "/docs", "/redoc", "/openapi.json/x")
    ]
    redirected = await http.get("/api/v1/health/")

    assert [404, 404, 404, 404] == statuses
    assert redirected.status_code == 307
    assert {
        ("GET", UNMATCHED_ROUTE, "404"): 4.0,
        ("GET", UNMATCHED_ROUTE, "307"): 1.0,
    } == requests_by_label(metrics)


async def test_health_and_readiness_answer_head_without_a_body(
    http: httpx.AsyncClient, metrics: PrometheusMetrics
) -> None:
    """Load balancers and uptime monitors ask with HEAD: GET's status, no body."""
    for path, status in (("/api/v1/health", 200), ("/health", 200), ("/api/v1/ready", 503)):
        answer = await http.head(path)
        assert (status, b"") == (answer.status_code, answer.content), path
        assert status == (await http.get(path)).status_code

    assert {
        ("HEAD", "/api/v1/health", "200"): 1.0,
        ("HEAD", "/health", "200"): 1.0,
        ("HEAD", "/api/v1/ready", "503"): 1.0,
    }.items() <= requests_by_label(metrics).items()
