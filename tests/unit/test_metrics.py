"""Metrics: the Prometheus adapter, and RED metrics for HTTP and gRPC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from test_coordinator.infrastructure.grpc_metrics import GrpcMetricsInterceptor
from test_coordinator.infrastructure.http_metrics import HttpMetricsMiddleware
from test_coordinator.infrastructure.prometheus import InvalidMetric, PrometheusMetrics

CONSTANT = {
    "service": "test-coordinator",
    "instance": "test-coordinator-Chaos1",
    "version": "9.9.9",
}
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"


def samples(metrics: PrometheusMetrics) -> list[Sample]:
    body, _ = metrics.render()
    families = text_string_to_metric_families(body.decode())
    return [sample for family in families for sample in family.samples]


async def settled(read: Callable[[], float], timeout_s: float = 5.0) -> None:
    """Until ``read()`` is non-zero (a recording made just after the client's answer)."""
    async with asyncio.timeout(timeout_s):
        while not read():  # noqa: ASYNC110 - polling a counter, with a deadline
            await asyncio.sleep(0.001)


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    """The one sample named ``name`` whose labels include ``labels``; 0 if there is none."""
    found = [
        s.value for s in samples(metrics) if s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0] if found else 0.0


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics(constant_labels=CONSTANT)


class TestPrometheusMetrics:
    def test_instruments_render_with_namespace_and_labels(self, metrics: PrometheusMetrics) -> None:
        """Counters, gauges and histograms appear under the namespace with their labels."""
        runs = metrics.counter("runs_total", "Runs finished", ["outcome"])
        active = metrics.gauge("active_runs", "Runs in progress")
        duration = metrics.histogram("run_seconds", "Run duration", buckets=[1.0, 10.0])

        runs.inc(outcome="passed")
        runs.inc(2, outcome="failed")
        active.set(3)
        duration.observe(4.0)

        assert value(metrics, "test_coordinator_runs_total", outcome="passed") == 1
        assert value(metrics, "test_coordinator_runs_total", outcome="failed") == 2
        assert value(metrics, "test_coordinator_active_runs") == 3
        assert value(metrics, "test_coordinator_run_seconds_bucket", le="1.0") == 0
        assert value(metrics, "test_coordinator_run_seconds_bucket", le="10.0") == 1

    def test_every_series_carries_the_constant_labels(self, metrics: PrometheusMetrics) -> None:
        """Ours and the runtime collectors' series (process, python, gc) all name the instance."""
        metrics.counter("runs_total", "Runs finished", ["outcome"]).inc(outcome="passed")

        rendered = samples(metrics)

        names = {s.name for s in rendered}
        assert {"python_info", "python_gc_collections_total", "process_cpu_seconds_total"} <= names
        assert [s for s in rendered if not CONSTANT.items() <= s.labels.items()] == []

    def test_clashing_labels_are_kept_as_exported(self, metrics: PrometheusMetrics) -> None:
        """python_info's own "version" survives as exported_version beside ours."""
        [python_info] = [s for s in samples(metrics) if s.name == "python_info"]

        assert python_info.labels["version"] == "9.9.9"
        assert python_info.labels["exported_version"].startswith("3.")

    def test_render_returns_prometheus_text(self, metrics: PrometheusMetrics) -> None:
        """render() gives the body and the content type /metrics must answer with."""
        body, content_type = metrics.render()

        assert content_type.startswith("text/plain; version=")
        assert b"# TYPE python_info gauge" in body

    def test_two_instances_keep_separate_series(self) -> None:
        """Each adapter has its own registry: the same name in two of them does not clash."""
        first, second = PrometheusMetrics(), PrometheusMetrics()

        first.counter("runs_total", "Runs").inc()
        second.counter("runs_total", "Runs").inc(5)

        assert (
            value(first, "test_coordinator_runs_total"),
            value(second, "test_coordinator_runs_total"),
        ) == (1, 5)

    def test_declaring_an_instrument_again_returns_it(self, metrics: PrometheusMetrics) -> None:
        """Two components asking for the same instrument count into one series."""
        metrics.counter("runs_total", "Runs", ["outcome"]).inc(outcome="passed")
        metrics.counter("runs_total", "Runs", ["outcome"]).inc(outcome="passed")

        assert value(metrics, "test_coordinator_runs_total", outcome="passed") == 2

    def test_declaring_a_name_differently_is_refused(self, metrics: PrometheusMetrics) -> None:
        """The same name as another kind or with other labels raises InvalidMetric."""
        metrics.counter("runs_total", "Runs", ["outcome"])

        with pytest.raises(InvalidMetric):
            metrics.counter("runs_total", "Runs", ["scenario"])
        with pytest.raises(InvalidMetric):
            metrics.gauge("runs_total", "Runs", ["outcome"])

    @pytest.mark.parametrize("labels", [{}, {"scenario": "x"}, {"outcome": "ok", "extra": "y"}])
    def test_wrong_labels_are_refused(
        self, metrics: PrometheusMetrics, labels: dict[str, str]
    ) -> None:
        """Missing, unknown or extra label names raise InvalidMetric rather than mislabel."""
        runs = metrics.counter("runs_total", "Runs", ["outcome"])

        with pytest.raises(InvalidMetric):
            runs.inc(1.0, **labels)

    def test_constant_label_names_are_reserved(self, metrics: PrometheusMetrics) -> None:
        """An instrument may not declare a label that every series already has."""
        with pytest.raises(InvalidMetric):
            metrics.counter("runs_total", "Runs", ["instance"])


def http_app(metrics: PrometheusMetrics) -> FastAPI:
    runs = APIRouter(prefix="/api/v1/runs")

    @runs.get("/{run_id}")
    async def get_run(run_id: str) -> dict[str, str]:
        return {"run_id": run_id}

    app = FastAPI()
    app.include_router(runs)

    @app.get("/health")
    async def health_check() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler failed")

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app


@pytest.fixture
async def http(metrics: PrometheusMetrics) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=http_app(metrics), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


class TestHttpMetrics:
    async def test_requests_are_labelled_by_route_template(
        self, http: httpx.AsyncClient, metrics: PrometheusMetrics
    ) -> None:
        """Two run ids make one series for the template, never one per raw path."""
        for run_id in ("run-a", "run-b"):
            assert (await http.get(f"/api/v1/runs/{run_id}")).status_code == 200

        route = {"method": "GET", "route": "/api/v1/runs/{run_id}", "status": "200"}
        assert value(metrics, "test_coordinator_http_requests_total", **route) == 2
        assert value(metrics, "test_coordinator_http_request_duration_seconds_count", **route) == 2
        assert [s for s in samples(metrics) if "run-a" in str(s.labels)] == []

    async def test_series_carry_the_constant_labels(
        self, http: httpx.AsyncClient, metrics: PrometheusMetrics
    ) -> None:
        """HTTP series name the service, instance and version like every other series."""
        await http.get("/health")

        labels = {"route": "/health", "status": "200", **CONSTANT}
        assert value(metrics, "test_coordinator_http_requests_total", **labels) == 1

    async def test_unrouted_paths_share_one_series(
        self, http: httpx.AsyncClient, metrics: PrometheusMetrics
    ) -> None:
        """404s without a route are counted under <unmatched>, whatever the path."""
        for path in ("/nope", "/wp-admin/install.php"):
            assert (await http.get(path)).status_code == 404

        unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
        assert value(metrics, "test_coordinator_http_requests_total", **unmatched) == 2

    async def test_handler_errors_count_as_500(
        self, http: httpx.AsyncClient, metrics: PrometheusMetrics
    ) -> None:
        """An exception in a handler is recorded with status 500 and its route."""
        assert (await http.get("/boom")).status_code == 500

        failed = {"route": "/boom", "status": "500"}
        assert value(metrics, "test_coordinator_http_requests_total", **failed) == 1

    async def test_unknown_methods_share_one_label(
        self, http: httpx.AsyncClient, metrics: PrometheusMetrics
    ) -> None:
        """Made-up HTTP methods are labelled OTHER so they cannot add series."""
        assert (await http.request("BREW", "/health")).status_code == 405

        other = {"method": "OTHER", "route": "/health", "status": "405"}
        assert value(metrics, "test_coordinator_http_requests_total", **other) == 1


def probe_handlers() -> grpc.GenericRpcHandler:
    """A tiny service whose methods end with a code set on the context, or an exception."""

    async def precondition(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        return b""

    async def crash(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise RuntimeError("handler failed")

    return grpc.method_handlers_generic_handler(
        "test.Probe",
        {
            "Precondition": grpc.unary_unary_rpc_method_handler(precondition),
            "Crash": grpc.unary_unary_rpc_method_handler(crash),
        },
    )


@pytest.fixture
async def grpc_channel(metrics: PrometheusMetrics) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[GrpcMetricsInterceptor(metrics)])
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_generic_rpc_handlers([probe_handlers()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


class TestGrpcMetrics:
    async def test_unary_calls_by_method_and_code(
        self, grpc_channel: grpc.aio.Channel, metrics: PrometheusMetrics
    ) -> None:
        """Health checks are counted and timed as OK, or NOT_FOUND for an unknown service."""
        stub = health_pb2_grpc.HealthStub(grpc_channel)
        for _ in range(2):
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Check(health_pb2.HealthCheckRequest(service="missing"), timeout=5)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND

        handled = "test_coordinator_grpc_server_handled_total"
        timed = "test_coordinator_grpc_server_handling_seconds_count"
        assert value(metrics, handled, grpc_method=HEALTH_CHECK, grpc_code="OK") == 2
        # context.abort() sends the status before the server-side handler unwinds, so
        # the client can see NOT_FOUND a moment before the interceptor records it.
        await settled(
            lambda: value(metrics, handled, grpc_method=HEALTH_CHECK, grpc_code="NOT_FOUND")
        )
        assert value(metrics, handled, grpc_method=HEALTH_CHECK, grpc_code="NOT_FOUND") == 1
        assert value(metrics, timed, grpc_method=HEALTH_CHECK, grpc_code="OK", **CONSTANT) == 2

    async def test_code_set_on_context_or_raised(
        self, grpc_channel: grpc.aio.Channel, metrics: PrometheusMetrics
    ) -> None:
        """A code set without raising is recorded as is; an unhandled exception as UNKNOWN."""
        for method in ("/test.Probe/Precondition", "/test.Probe/Crash"):
            with pytest.raises(grpc.aio.AioRpcError):
                await grpc_channel.unary_unary(method)(b"", timeout=5)

        handled = "test_coordinator_grpc_server_handled_total"
        assert (
            value(
                metrics,
                handled,
                grpc_method="/test.Probe/Precondition",
                grpc_code="FAILED_PRECONDITION",
            )
            == 1
        )
        assert value(metrics, handled, grpc_method="/test.Probe/Crash", grpc_code="UNKNOWN") == 1

    async def test_unknown_methods_share_one_label(
        self, grpc_channel: grpc.aio.Channel, metrics: PrometheusMetrics
    ) -> None:
        """Calls to methods the server lacks are UNIMPLEMENTED under one method label."""
        with pytest.raises(grpc.aio.AioRpcError):
            await grpc_channel.unary_unary("/no.Such/Method")(b"", timeout=5)

        unknown = {"grpc_method": "<unknown>", "grpc_code": "UNIMPLEMENTED"}
        assert value(metrics, "test_coordinator_grpc_server_handled_total", **unknown) == 1

    async def test_streaming_call_cancelled_by_client(
        self, grpc_channel: grpc.aio.Channel, metrics: PrometheusMetrics
    ) -> None:
        """A Watch stream is recorded when it ends, here CANCELLED by the client."""
        watch = health_pb2_grpc.HealthStub(grpc_channel).Watch(health_pb2.HealthCheckRequest())
        first = await asyncio.wait_for(watch.read(), timeout=5)
        assert first.status == health_pb2.HealthCheckResponse.SERVING

        watch.cancel()

        cancelled = {"grpc_method": HEALTH_WATCH, "grpc_code": "CANCELLED"}
        deadline = time.monotonic() + 5
        while value(metrics, "test_coordinator_grpc_server_handled_total", **cancelled) != 1:
            assert time.monotonic() < deadline, "the cancelled stream was not recorded in 5 s"
            await asyncio.sleep(0.005)
