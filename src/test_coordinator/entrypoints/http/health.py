"""Health and readiness: the ecosystem's health payload."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from test_coordinator.service.state import HealthReport, ServiceState

router = APIRouter(tags=["health"])


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def health_payload(report: HealthReport) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "status": report.status.value,
        "service": report.service,
        "instance": report.instance,
        "version": report.version,
        "environment": report.environment,
        "timestamp": report.timestamp,
    }
    if report.dependencies:
        payload["dependencies"] = {
            d.name: {"healthy": d.healthy, **({"detail": d.detail} if d.detail else {})}
            for d in report.dependencies
        }
    if report.failing:
        payload["failing"] = [d.name for d in report.failing]
    return payload


def _json(payload: dict[str, Any], status_code: int = 200) -> Response:
    # A plain Response: the health check is the hottest path of the service.
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status_code=status_code, media_type="application/json")


@router.get("/api/v1/health", summary="Service health with dependency status")
@router.get("/health", include_in_schema=False)
async def health(request: Request) -> Response:
    return _json(health_payload(_state(request).health()))


@router.get("/api/v1/ready", summary="200 once startup is complete, 503 before and during shutdown")
async def ready(request: Request) -> Response:
    state = _state(request)
    if not state.ready:
        return _json({"ready": False, "instance": state.settings.service_instance_name}, 503)
    return _json({"ready": True, "instance": state.settings.service_instance_name})
