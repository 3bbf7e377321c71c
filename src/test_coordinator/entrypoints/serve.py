"""Run the HTTP and gRPC servers in one process, and stop them cleanly.

Startup: logging, metrics, the data adapter (which never fails for a server
that is down), the gRPC server, the HTTP server, then registration and
readiness. Shutdown on SIGINT or SIGTERM, in the reverse order and within
SHUTDOWN_BUDGET_S: not ready, gRPC NOT_SERVING, deregistered, in-flight HTTP
requests and RPCs finished, pools closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from dataclasses import dataclass

import uvicorn

from test_coordinator.adapters.registry import registry_from_settings
from test_coordinator.adapters.storage import DataAdapter
from test_coordinator.config import Settings
from test_coordinator.entrypoints.grpc_runs import SERVER_OPTIONS, add_runs_service
from test_coordinator.entrypoints.grpc_server import GrpcServer
from test_coordinator.entrypoints.http.app import create_app
from test_coordinator.entrypoints.http.body_limit import BodyLimitMiddleware
from test_coordinator.entrypoints.http.runs import install_runs_api
from test_coordinator.infrastructure.grpc_metrics import GrpcMetricsInterceptor
from test_coordinator.infrastructure.http_metrics import HttpMetricsMiddleware
from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.ports.availability import DependencyUnavailable
from test_coordinator.ports.registry import ServiceRecord, ServiceRegistry
from test_coordinator.service.http_serving import (
    QuietSignalsServer,
    StartupError,
    listen,
    stop_on_signals,
    wait_for_stop,
    wait_started,
)
from test_coordinator.service.runs.manager import RunManager
from test_coordinator.service.runs.wiring import build_run_manager
from test_coordinator.service.state import ServiceState, utc_now_iso

SHUTDOWN_BUDGET_S = 9.0
GRPC_GRACE_S = 4.0
RECOVERY_DEADLINE_S = 30.0
RUNS_CLOSE_BUDGET_S = 4.0
"""At shutdown, how long running runs may take to undo; their guards finish what remains."""

log = get_logger("test_coordinator.service")


@dataclass(frozen=True, slots=True)
class BoundPorts:
    http: int
    grpc: int


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set or SIGINT/SIGTERM arrives."""
    stop = stop or asyncio.Event()
    async with stop_on_signals(stop):
        await _serve_until(settings, stop)


async def _serve_until(settings: Settings, stop: asyncio.Event) -> None:
    metrics = PrometheusMetrics(
        constant_labels={
            "service": settings.service_name,
            "instance": settings.service_instance_name,
            "version": settings.version,
        }
    )
    try:
        adapter = DataAdapter.from_settings(settings)
        await adapter.start()
    except (OSError, sqlite3.Error) as exc:
        # A server that is down is not one of these (the adapter buffers for it): this is
        # a DATA_DIR that cannot hold the store (the URLs' schemes are checked with the
        # settings).
        raise StartupError(f"the run store cannot be opened: {exc}") from None
    await _recover_leftovers(adapter)
    async with contextlib.AsyncExitStack() as resources:
        manager = await _run_manager(settings, adapter, metrics, resources)
        await _serve_with(settings, stop, metrics, adapter, manager)


async def _run_manager(
    settings: Settings,
    adapter: DataAdapter,
    metrics: PrometheusMetrics,
    resources: contextlib.AsyncExitStack,
) -> RunManager:
    """The runs service over the adapter's store, with leases in Redis when there is one."""
    from test_coordinator.engine.wiring import runtime_deps

    deps = await resources.enter_async_context(runtime_deps(adapter.runs))
    redis = None
    if settings.redis_url:
        from test_coordinator.adapters.redis_client import redis_client

        redis = redis_client(settings.redis_url)
        resources.push_async_callback(redis.aclose)
    manager = build_run_manager(
        settings, store=adapter.runs, deps=deps, metrics=metrics, redis=redis
    )
    manager.start()
    return manager


async def _serve_with(
    settings: Settings,
    stop: asyncio.Event,
    metrics: PrometheusMetrics,
    adapter: DataAdapter,
    manager: RunManager,
) -> None:
    state = ServiceState(settings, health_sources=[adapter])
    registry = registry_from_settings(settings, status=lambda: state.health().status.value)
    grpc_server = GrpcServer(
        settings.http_host,
        settings.grpc_port,
        [GrpcMetricsInterceptor(metrics)],
        health_names=(settings.service_name, settings.service_instance_name),
        options=SERVER_OPTIONS,
    )
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    grpc_server.add_service(lambda server: add_runs_service(server, manager, token))
    app = create_app(
        state,
        metrics.render,
        middleware=lambda app: app.add_middleware(HttpMetricsMiddleware, metrics=metrics),
    )
    install_runs_api(app, manager)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    http_server = QuietSignalsServer(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(SHUTDOWN_BUDGET_S - GRPC_GRACE_S - 1),
            lifespan="off",
        )
    )
    http_task: asyncio.Task[None] | None = None
    listener: socket.socket | None = None
    try:
        await grpc_server.start()
        listener = listen(settings.http_host, settings.http_port)
        http_task = asyncio.create_task(http_server.serve([listener]), name="http-server")
        await wait_started(http_server, http_task)
        ports = BoundPorts(http=int(listener.getsockname()[1]), grpc=grpc_server.port)
        await registry.register(_record(settings, ports))
        await grpc_server.set_serving(True)
        state.ready = True
        log.info(
            "service started",
            http=f"http://{settings.http_host}:{ports.http}",
            grpc=f"{settings.http_host}:{ports.grpc}",
            storage=adapter.description,
        )
        await wait_for_stop(stop, http_task)
        log.info("service stopping")
    finally:
        state.ready = False
        try:
            async with asyncio.timeout(SHUTDOWN_BUDGET_S):
                await manager.close(RUNS_CLOSE_BUDGET_S)
                await _shutdown(grpc_server, http_server, http_task, registry, adapter)
        finally:
            if listener is not None:
                listener.close()
        log.info("service stopped")


async def _recover_leftovers(adapter: DataAdapter) -> None:
    """Undo what a killed coordinator left behind; never stops the service from starting."""
    from test_coordinator.engine.wiring import runtime_deps
    from test_coordinator.entrypoints.recovery_session import recover_and_report

    try:
        async with asyncio.timeout(RECOVERY_DEADLINE_S), runtime_deps(adapter.runs) as deps:
            report = await recover_and_report(adapter.runs, deps)
    except (DependencyUnavailable, TimeoutError) as exc:
        log.warning("leftover faults not checked", reason=str(exc) or type(exc).__name__)
        return
    if not report.empty:
        log.warning(
            "undid what a killed coordinator left behind",
            aborted_runs=list(report.aborted_runs),
            undos=[f"{u.service}: {u.action} {u.status.value}" for u in report.undos],
        )


async def _shutdown(
    grpc_server: GrpcServer,
    http_server: uvicorn.Server,
    http_task: asyncio.Task[None] | None,
    registry: ServiceRegistry,
    adapter: DataAdapter,
) -> None:
    with contextlib.suppress(Exception):
        await grpc_server.set_serving(False)
    with contextlib.suppress(Exception):
        await registry.close()
    http_server.should_exit = True
    await grpc_server.stop(GRPC_GRACE_S)
    if http_task is not None:
        with contextlib.suppress(SystemExit, asyncio.CancelledError):
            await http_task
    await adapter.close()


def _record(settings: Settings, ports: BoundPorts) -> ServiceRecord:
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return ServiceRecord(
        service=settings.service_name,
        instance=settings.service_instance_name,
        host=host,
        http_port=ports.http,
        grpc_port=ports.grpc,
        version=settings.version,
        environment=settings.environment.value,
        status="healthy",
        timestamp=utc_now_iso(),
    )
