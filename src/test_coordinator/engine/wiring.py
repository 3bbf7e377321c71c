"""The engine's real dependencies: local processes, httpx probes, metrics scrapes, load."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from test_coordinator.engine.errors import InfrastructureError
from test_coordinator.engine.ports import EngineDeps, LoadRunner, Probe, ProcessBackend
from test_coordinator.ports.storage import RunStore
from test_coordinator.runtime.http_client import new_http_client
from test_coordinator.runtime.load import LoadGenerator
from test_coordinator.runtime.metrics_scrape import MetricsScrapeError, scrape_metric
from test_coordinator.runtime.polling import DEFAULT_POLL_INTERVAL_S
from test_coordinator.runtime.probes import CommandProbe, GrpcHealthProbe, HttpProbe, TcpProbe
from test_coordinator.runtime.processes import LocalProcessBackend
from test_coordinator.scenario.probes import ProbeSpec
from test_coordinator.scenario.steps import LoadSpec


class RuntimeProbes:
    """Builds runtime probes from scenario probe specs; HTTP ones share one client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    def probe(self, spec: ProbeSpec) -> Probe:
        if spec.http is not None:
            return HttpProbe(
                spec.http.url,
                method=spec.http.method,
                expect_status=spec.http.status,
                json_fields=spec.http.json_fields,
                timeout_s=spec.http.timeout,
                client=self._client,
            )
        if spec.tcp is not None:
            return TcpProbe(spec.tcp.host, spec.tcp.port, timeout_s=spec.tcp.timeout)
        if spec.grpc is not None:
            return GrpcHealthProbe(spec.grpc.target, spec.grpc.service, timeout_s=spec.grpc.timeout)
        assert spec.command is not None
        return CommandProbe(
            spec.command.argv, timeout_s=spec.command.timeout, expect_exit=spec.command.exit
        )


@asynccontextmanager
async def runtime_deps(
    store: RunStore, *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
) -> AsyncIterator[EngineDeps]:
    """Real dependencies for as long as the block runs; the HTTP client closes after it."""
    client = new_http_client()

    async def read_metric(url: str, name: str, labels: Mapping[str, str]) -> float | None:
        try:
            return await scrape_metric(url, name, labels, client=client)
        except MetricsScrapeError as exc:
            raise InfrastructureError(str(exc)) from exc

    def load_factory(spec: LoadSpec, origin_s: float) -> LoadRunner:
        return LoadGenerator(
            spec.url,
            spec.rate,
            method=spec.method,
            timeout_s=spec.timeout,
            origin_s=origin_s,
            max_duration_s=spec.duration or 900.0,
        )

    def backend_factory(log_dir: Path) -> ProcessBackend:
        return LocalProcessBackend(log_dir)

    try:
        yield EngineDeps(
            store=store,
            backend_factory=backend_factory,
            probes=RuntimeProbes(client),
            read_metric=read_metric,
            load_factory=load_factory,
            poll_interval_s=poll_interval_s,
        )
    finally:
        await client.aclose()
