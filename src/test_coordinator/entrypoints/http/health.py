"""Health and readiness: the ecosystem's health payload.

The payload is described by pydantic models (the OpenAPI document), but served
as ``json.dumps`` into a plain Response: health is the hottest path of the
service, and FastAPI's response-model validation would cost more than the rest
of the handler. A test keeps the two in step.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from test_coordinator.config import Environment
from test_coordinator.service.state import HealthReport, HealthStatus, ServiceState

router = APIRouter(tags=["health"])


class DependencyStatus(BaseModel):
    """Whether one configured dependency answers."""

    model_config = ConfigDict(extra="forbid")

    healthy: bool
    detail: str | SkipJsonSchema[None] = Field(
        default=None, description="Why it is unhealthy; absent when there is nothing to say"
    )


class HealthPayload(BaseModel):
    """The ecosystem's health payload."""

    model_config = ConfigDict(extra="forbid")

    status: HealthStatus = Field(
        description="`degraded` when a configured dependency does not answer"
    )
    service: str = Field(description="The service's name in the ecosystem")
    instance: str = Field(description="The instance's name")
    version: str
    environment: Environment
    timestamp: str = Field(
        description="Now, ISO 8601 in UTC with milliseconds",
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
    )
    dependencies: dict[str, DependencyStatus] | SkipJsonSchema[None] = Field(
        default=None, description="Each configured dependency; absent when there is none"
    )
    failing: list[str] | SkipJsonSchema[None] = Field(
        default=None, description="The dependencies that do not answer; absent when none"
    )


class ReadyPayload(BaseModel):
    """The instance accepts work."""

    model_config = ConfigDict(extra="forbid")

    ready: Literal[True]
    instance: str


class NotReadyPayload(BaseModel):
    """The instance is starting or shutting down."""

    model_config = ConfigDict(extra="forbid")

    ready: Literal[False]
    instance: str


HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": HealthPayload,
        "description": "The service answers; `status` says whether its dependencies do too",
    }
}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ReadyPayload, "description": "Startup is complete"},
    503: {"model": NotReadyPayload, "description": "Still starting, or shutting down"},
}


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


_encode = json.JSONEncoder(separators=(",", ":")).encode


def _json(payload: dict[str, Any], status_code: int = 200) -> Response:
    # A plain Response: the health check is the hottest path of the service.
    return Response(_encode(payload).encode(), status_code, media_type="application/json")


# HEAD too (load balancers and uptime monitors ask with it): the same status, no body.
@router.head("/health", include_in_schema=False)
@router.head("/api/v1/health", include_in_schema=False)
@router.get(
    "/health",
    summary="Service health with dependency status (the ecosystem's common path)",
    responses=HEALTH_RESPONSES,
)
@router.get(
    "/api/v1/health",
    summary="Service health with dependency status",
    responses=HEALTH_RESPONSES,
)
async def health(request: Request) -> Response:
    return _json(health_payload(_state(request).health()))


@router.head("/api/v1/ready", include_in_schema=False)
@router.get(
    "/api/v1/ready",
    summary="200 once startup is complete, 503 before and during shutdown",
    responses=READY_RESPONSES,
)
async def ready(request: Request) -> Response:
    state = _state(request)
    instance = state.settings.service_instance_name
    if not state.ready:
        return _json({"ready": False, "instance": instance}, 503)
    return _json({"ready": True, "instance": instance})
