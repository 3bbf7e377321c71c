"""The FastAPI application: routers, middleware and the /metrics endpoint."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import Response

from test_coordinator.entrypoints.http import health
from test_coordinator.service.state import ServiceState

MetricsRenderer = Callable[[], tuple[bytes, str]]


def create_app(
    state: ServiceState,
    render_metrics: MetricsRenderer,
    *,
    middleware: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """Build the REST API over ``state``; ``middleware`` installs cross-cutting layers."""
    app = FastAPI(
        title="test-coordinator",
        version=state.settings.version,
        summary="Resilience testing for the Trading Ecosystem",
    )
    app.state.service = state
    app.include_router(health.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    if middleware is not None:
        middleware(app)
    return app
