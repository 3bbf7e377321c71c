"""What every sample service shares: HTTP with health and /metrics, registration, audit
reporting, optional gRPC health, and a clean stop on SIGTERM or SIGINT.

A service is a :class:`SampleService`: it adds its routes, says how its
dependencies are, and starts and stops its own work. :func:`serve_sample`
does the rest, in this order: metrics, audit reporter, the service, gRPC (when
asked), HTTP, registration, ready. Stopping, within ``SHUTDOWN_BUDGET_S``:
not ready, deregistered, HTTP requests in progress finished, the service's own
work, gRPC, and last the audit reporter; events it could not deliver by then
are kept in ``DATA_DIR/<instance>/audit-spill.jsonl`` for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import uvicorn
from fastapi import FastAPI

from test_coordinator.adapters.audit import HttpAuditReporter, audit_sink
from test_coordinator.config import Settings
from test_coordinator.entrypoints.http.app import create_app
from test_coordinator.infrastructure.http_metrics import HttpMetricsMiddleware
from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.ports.audit import AuditSink
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.ports.metrics import Metrics
from test_coordinator.sample.observations import Observations
from test_coordinator.sample.options import env_text
from test_coordinator.service.http_serving import (
    QuietSignalsServer,
    listen,
    stop_on_signals,
    wait_for_stop,
    wait_started,
)
from test_coordinator.service.state import ServiceState

if TYPE_CHECKING:
    from test_coordinator.entrypoints.grpc_server import GrpcServer
    from test_coordinator.ports.registry import ServiceRecord, ServiceRegistry

SHUTDOWN_BUDGET_S = 6.0
STOP_GRACE_S = 2.0
AUDIT_CLOSE_GRACE_S = 1.0
AUDIT_HEARTBEAT_S = 0.5
"""While a service reports no event, how often it tells the correlator it has none pending."""
STARTUP_DEADLINE_S = 10.0
METRICS_NAMESPACE = ""  # series are named as documented: orders_sent_total, not prefixed

log = get_logger("test_coordinator.sample")


class SampleService(Protocol):
    def install(self, app: FastAPI) -> None:
        """Add the service's routes."""

    def dependency_health(self) -> list[DependencyHealth]: ...

    async def start(self) -> None:
        """Begin the service's own work; called before HTTP accepts requests."""

    async def stop(self) -> None:
        """Finish or abandon the service's work within STOP_GRACE_S; idempotent."""


@dataclass(frozen=True, slots=True)
class SampleContext:
    """What a service is built from."""

    settings: Settings
    environ: Mapping[str, str]
    metrics: Metrics
    observations: Observations


ServiceFactory = Callable[[SampleContext], SampleService]


def audit_sink_from_env(settings: Settings, environ: Mapping[str, str]) -> AuditSink:
    """An HttpAuditReporter to AUDIT_URL (spilling under the instance's data dir), or nothing."""
    spill = settings.instance_data_dir / "audit-spill.jsonl"
    return audit_sink(
        env_text(environ, "AUDIT_URL", ""),
        spill_path=spill,
        linger_s=0.2,
        source=settings.service_instance_name,
        heartbeat_s=AUDIT_HEARTBEAT_S,
    )


def sample_app(state: ServiceState, service: SampleService, metrics: PrometheusMetrics) -> FastAPI:
    """The service's HTTP API: health, readiness, /metrics with RED metrics, its own routes."""
    app = create_app(
        state,
        metrics.render,
        middleware=lambda app: app.add_middleware(HttpMetricsMiddleware, metrics=metrics),
    )
    app.title = state.settings.service_name
    service.install(app)
    return app


async def serve_sample(
    settings: Settings,
    factory: ServiceFactory,
    environ: Mapping[str, str],
    *,
    grpc: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGINT/SIGTERM arrives."""
    stop = stop or asyncio.Event()
    async with stop_on_signals(stop):
        await _serve_until(settings, factory, environ, grpc, stop)


async def _serve_until(
    settings: Settings,
    factory: ServiceFactory,
    environ: Mapping[str, str],
    grpc: bool,
    stop: asyncio.Event,
) -> None:
    metrics = PrometheusMetrics(
        METRICS_NAMESPACE,
        constant_labels={
            "service": settings.service_name,
            "instance": settings.service_instance_name,
        },
    )
    audit = audit_sink_from_env(settings, environ)
    service = factory(
        SampleContext(
            settings, environ, metrics, Observations(audit, settings.service_instance_name)
        )
    )
    state = ServiceState(settings, health_sources=[service])
    registry = _registry(settings, state)
    app = sample_app(state, service, metrics)
    http_server = QuietSignalsServer(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
            lifespan="off",
        )
    )
    grpc_server: GrpcServer | None = None
    listener: socket.socket | None = None
    http_task: asyncio.Task[None] | None = None
    try:
        await service.start()
        if grpc:
            grpc_server = await _start_grpc(settings)
        listener = listen(settings.http_host, settings.http_port)
        http_port = int(listener.getsockname()[1])
        http_task = asyncio.create_task(http_server.serve([listener]), name="http-server")
        await wait_started(http_server, http_task, STARTUP_DEADLINE_S)
        await registry.register(_record(settings, http_port, grpc_server))
        if grpc_server is not None:
            await grpc_server.set_serving(True)
        state.ready = True
        log.info(
            "service started",
            http=f"http://{settings.http_host}:{http_port}",
            **({"grpc": f"{settings.http_host}:{grpc_server.port}"} if grpc_server else {}),
        )
        await wait_for_stop(stop, http_task)
        log.info("service stopping")
    finally:
        state.ready = False
        try:
            async with asyncio.timeout(SHUTDOWN_BUDGET_S):
                await _shutdown(service, registry, http_server, http_task, grpc_server, audit)
        finally:
            if listener is not None:
                listener.close()
        log.info("service stopped")


async def _shutdown(
    service: SampleService,
    registry: ServiceRegistry,
    http_server: uvicorn.Server,
    http_task: asyncio.Task[None] | None,
    grpc_server: GrpcServer | None,
    audit: AuditSink,
) -> None:
    if grpc_server is not None:
        with contextlib.suppress(Exception):
            await grpc_server.set_serving(False)
    with contextlib.suppress(Exception):
        await registry.close()
    # HTTP first: requests in progress finish while the service can still serve them.
    http_server.should_exit = True
    if http_task is not None:
        with contextlib.suppress(SystemExit, asyncio.CancelledError):
            await http_task
    try:
        async with asyncio.timeout(STOP_GRACE_S + 0.5):
            await service.stop()
    except Exception as exc:
        log.warning("service stop incomplete", problem=repr(exc))
    if grpc_server is not None:
        await grpc_server.stop(0.5)
    if isinstance(audit, HttpAuditReporter):
        await audit.close(AUDIT_CLOSE_GRACE_S)
    else:
        await audit.close()


async def _start_grpc(settings: Settings) -> GrpcServer:
    # Imported here: only the engine serves gRPC, and the others start faster without it.
    from test_coordinator.entrypoints.grpc_server import GrpcServer

    server = GrpcServer(settings.http_host, settings.grpc_port)
    await server.start()
    return server


def _registry(settings: Settings, state: ServiceState) -> ServiceRegistry:
    if not settings.redis_url:
        from test_coordinator.adapters.registry.in_process import InProcessServiceRegistry

        return InProcessServiceRegistry()
    from test_coordinator.adapters.registry import registry_from_settings

    return registry_from_settings(settings, status=lambda: state.health().status.value)


def _record(settings: Settings, http_port: int, grpc_server: GrpcServer | None) -> ServiceRecord:
    from test_coordinator.adapters.registry.records import record_from_settings

    record = record_from_settings(settings)
    grpc_port = grpc_server.port if grpc_server is not None else 0
    return dataclasses.replace(record, http_port=http_port, grpc_port=grpc_port)
