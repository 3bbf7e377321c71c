"""The FastAPI application: routers, middleware and the /metrics endpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response

from test_coordinator.entrypoints.http import health
from test_coordinator.service.state import ServiceState

MetricsRenderer = Callable[[], tuple[bytes, str]]

DESCRIPTION = """\
The REST API of a test-coordinator instance: its health and readiness, in the
Trading Ecosystem's common payload, and its Prometheus metrics. The same
process serves gRPC health (`grpc.health.v1.Health`) on GRPC_PORT.
"""

TAGS: list[dict[str, Any]] = [
    {"name": "health", "description": "Liveness, dependency health and readiness"},
    {"name": "metrics", "description": "Prometheus metrics of the instance"},
]

METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "Every series in the Prometheus text exposition format: RED metrics for HTTP "
            "(by method, route template, status) and gRPC (by method, code), process and "
            "Python runtime metrics; each with the constant labels service, instance, version"
        ),
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


def create_app(
    state: ServiceState,
    render_metrics: MetricsRenderer,
    *,
    middleware: Callable[[FastAPI], None] | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """Build the REST API over ``state``.

    ``routers`` are included after the health and metrics routes; ``middleware`` installs
    cross-cutting layers. There are no /docs or /redoc pages: they load their
    assets from a CDN, so they would be blank offline; /openapi.json is served.
    """
    app = FastAPI(
        title="test-coordinator",
        version=state.settings.version,
        summary="Resilience testing for the Trading Ecosystem",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = state
    app.include_router(health.router)

    @app.get(
        "/metrics",
        tags=["metrics"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses=METRICS_RESPONSES,
    )
    async def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    # After the service's own endpoints, so that no router can shadow them.
    for router in routers:
        app.include_router(router)
    if middleware is not None:
        middleware(app)
    return app
