"""RED metrics for HTTP: a pure ASGI middleware over the metrics port.

Requests are labelled with their route template (``/api/v1/runs/{run_id}``),
never the raw path, so a scan of random URLs adds one series, ``<unmatched>``,
rather than one per URL.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.routing import Match

from test_coordinator.ports.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED_ROUTE = "<unmatched>"
OTHER_METHOD = "OTHER"
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
HTTP_LABELS = ("method", "route", "status")
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request, or ``<unmatched>``.

    Routes declared through FastAPI put themselves in the scope; the plain
    Starlette routes FastAPI adds by itself (``/openapi.json``) do not, so when
    the scope names no route, the app's routes are asked, once the request is
    done, which of them matches its path (or only its path, for a 405). A URL no
    route matches stays ``<unmatched>``.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    return _matching_route(scope) or UNMATCHED_ROUTE


def _matching_route(scope: Scope) -> str | None:
    for route in getattr(scope.get("router"), "routes", ()):
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path:
            continue  # included routers and the like: FastAPI's routes name themselves
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return path
    return None


class HttpMetricsMiddleware:
    """Counts requests and times them by method, route template and status code."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._requests = metrics.counter(
            "http_requests_total", "HTTP requests handled", HTTP_LABELS
        )
        self._duration = metrics.histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, response body included",
            HTTP_LABELS,
            buckets=LATENCY_BUCKETS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        # An exception before the response starts becomes a 500 further out.
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self._app(scope, receive, send_and_note_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            labels = {
                "method": method if method in _METHODS else OTHER_METHOD,
                "route": route_template(scope),
                "status": str(status),
            }
            self._requests.inc(1.0, **labels)
            self._duration.observe(elapsed, **labels)
