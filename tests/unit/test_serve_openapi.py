"""The REST API of ``serve``: what /openapi.json documents is what each route answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from test_coordinator.config import Environment, Settings
from test_coordinator.entrypoints.http import health
from test_coordinator.entrypoints.http.app import create_app
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.service.state import ServiceState

METRICS_BODY = b"# TYPE up gauge\nup 1\n"
METRICS_TYPE = "text/plain; version=1.0.0; charset=utf-8"
# The component schemas the document may name, and the models they come from.
MODELS: dict[str, type[BaseModel]] = {
    "HealthPayload": health.HealthPayload,
    "ReadyPayload": health.ReadyPayload,
    "NotReadyPayload": health.NotReadyPayload,
}


class Dependencies:
    """A health source whose answer the test changes between requests."""

    def __init__(self) -> None:
        self.now: list[DependencyHealth] = []

    def dependency_health(self) -> list[DependencyHealth]:
        return list(self.now)


def settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        service_name="test-coordinator",
        service_instance_name="test-coordinator-Chaos1",
        environment=Environment.TESTING,
    )


@pytest.fixture
def dependencies() -> Dependencies:
    return Dependencies()


@pytest.fixture
def state(dependencies: Dependencies) -> ServiceState:
    return ServiceState(settings(), health_sources=[dependencies])


def client_for(state: ServiceState, routers: list[APIRouter] | None = None) -> httpx.AsyncClient:
    app = create_app(state, lambda: (METRICS_BODY, METRICS_TYPE), routers=routers or [])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def http(state: ServiceState) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(state) as client:
        yield client


async def openapi(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def conforms(http: httpx.AsyncClient, path: str) -> httpx.Response:
    """GET ``path``; assert its status, media type and body are the ones documented for it."""
    document = await openapi(http)
    response = await http.get(path)
    documented = document["paths"][path]["get"]["responses"]
    assert str(response.status_code) in documented, f"{path}: undocumented {response.status_code}"
    content = documented[str(response.status_code)]["content"]
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in content, f"{path}: {media_type} is not documented"
    schema = content[media_type]["schema"]
    if "$ref" in schema:
        model = MODELS[schema["$ref"].rsplit("/", 1)[1]]
        model.model_validate_json(response.content, strict=True)
    else:
        assert schema == {"type": "string"}
    return response


async def test_every_route_is_documented_with_its_statuses(http: httpx.AsyncClient) -> None:
    """Both health paths, readiness (200 and 503) and /metrics, each with a described answer."""
    document = await openapi(http)

    documented = {
        path: sorted(operation["get"]["responses"]) for path, operation in document["paths"].items()
    }
    assert {
        "/api/v1/health": ["200"],
        "/health": ["200"],
        "/api/v1/ready": ["200", "503"],
        "/metrics": ["200"],
    } == documented
    for path, operation in document["paths"].items():
        for status, response in operation["get"]["responses"].items():
            assert response["description"] != "Successful Response", (path, status)


async def test_metrics_are_documented_as_prometheus_text(http: httpx.AsyncClient) -> None:
    document = await openapi(http)

    [(media_type, content)] = document["paths"]["/metrics"]["get"]["responses"]["200"][
        "content"
    ].items()
    assert ("text/plain", {"type": "string"}) == (media_type, content["schema"])
    response = await conforms(http, "/metrics")
    assert (METRICS_BODY, METRICS_TYPE) == (response.content, response.headers["content-type"])


async def test_health_schema_names_the_payload_fields(http: httpx.AsyncClient) -> None:
    schema = (await openapi(http))["components"]["schemas"]["HealthPayload"]

    assert {"status", "service", "instance", "version", "environment", "timestamp"} == set(
        schema["required"]
    )
    assert {"dependencies", "failing"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", ["/api/v1/health", "/health"])
async def test_healthy_answer_conforms(http: httpx.AsyncClient, path: str) -> None:
    body = (await conforms(http, path)).json()

    assert {
        "status": "healthy",
        "service": "test-coordinator",
        "instance": "test-coordinator-Chaos1",
        "environment": "testing",
    }.items() <= body.items()
    assert "dependencies" not in body
    assert "failing" not in body


async def test_degraded_answer_conforms(
    http: httpx.AsyncClient, dependencies: Dependencies
) -> None:
    dependencies.now = [
        DependencyHealth("postgres", True),
        DependencyHealth("redis", False, "connection refused"),
    ]

    body = (await conforms(http, "/api/v1/health")).json()

    assert "degraded" == body["status"]
    assert {
        "postgres": {"healthy": True},
        "redis": {"healthy": False, "detail": "connection refused"},
    } == body["dependencies"]
    assert ["redis"] == body["failing"]


async def test_health_is_live_on_every_request(
    http: httpx.AsyncClient, dependencies: Dependencies
) -> None:
    """Dependency health and the timestamp are read per request, never kept."""
    before = datetime.now(UTC)
    first = (await http.get("/api/v1/health")).json()
    dependencies.now = [DependencyHealth("redis", False, "timed out")]
    second = (await http.get("/api/v1/health")).json()
    after = datetime.now(UTC)

    assert ("healthy", "degraded") == (first["status"], second["status"])
    for body in (first, second):
        stamp = datetime.fromisoformat(body["timestamp"])
        # Millisecond precision: truncated, so up to 1 ms before ``before``.
        assert before - timedelta(milliseconds=1) <= stamp <= after


async def test_health_payload_is_the_states_report(
    http: httpx.AsyncClient, state: ServiceState, dependencies: Dependencies
) -> None:
    """The handler's fast path says what ServiceState.health() says, timestamp aside."""
    dependencies.now = [DependencyHealth("redis", False, "timed out")]

    served = (await http.get("/api/v1/health")).json()
    expected = health.health_payload(state.health())

    served.pop("timestamp")
    expected.pop("timestamp")
    assert expected == served


async def test_ready_is_503_until_ready_then_200(
    http: httpx.AsyncClient, state: ServiceState
) -> None:
    starting = await conforms(http, "/api/v1/ready")
    state.ready = True
    ready = await conforms(http, "/api/v1/ready")
    state.ready = False
    stopping = await conforms(http, "/api/v1/ready")

    assert [503, 200, 503] == [r.status_code for r in (starting, ready, stopping)]
    assert {"ready": True, "instance": "test-coordinator-Chaos1"} == ready.json()
    assert {"ready": False, "instance": "test-coordinator-Chaos1"} == stopping.json()


async def test_answers_are_compact_json(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/health")

    assert response.headers["content-type"] == "application/json"
    assert response.content == json.dumps(response.json(), separators=(",", ":")).encode()


async def test_no_cdn_backed_pages_but_the_document(http: httpx.AsyncClient) -> None:
    """/docs and /redoc would be blank offline: they are off; /openapi.json stays."""
    assert [404, 404, 200] == [
        (await http.get(path)).status_code for path in ("/docs", "/redoc", "/openapi.json")
    ]


async def test_document_describes_the_service(http: httpx.AsyncClient) -> None:
    document = await openapi(http)

    assert document["info"]["title"] == "test-coordinator"
    assert document["info"]["description"]
    assert {"health", "metrics"} == {tag["name"] for tag in document["tags"]}
    assert all(op["get"]["tags"] for op in document["paths"].values())


async def test_routers_are_served_after_the_services_own_routes(state: ServiceState) -> None:
    """A router's routes are served and documented, and cannot shadow health or metrics."""
    runs = APIRouter(prefix="/api/v1/runs", tags=["runs"])

    @runs.get("/{run_id}")
    async def get_run(run_id: str) -> dict[str, str]:
        return {"run_id": run_id}

    shadow = APIRouter()

    @shadow.get("/api/v1/health")
    async def not_health() -> dict[str, str]:
        return {"shadowed": "yes"}

    async with client_for(state, routers=[runs, shadow]) as client:
        run = await client.get("/api/v1/runs/r-1")
        served_health = await client.get("/api/v1/health")
        document = await openapi(client)

    assert {"run_id": "r-1"} == run.json()
    assert "shadowed" not in served_health.json()
    assert "/api/v1/runs/{run_id}" in document["paths"]
