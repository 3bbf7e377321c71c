"""The engine's real dependencies: the target backends, probes, metrics scrapes, load,
and the audit correlator (a buffered reporter and a query client).

What only some scenarios use (the audit correlator's client, gRPC) is imported
when first used, so a run of HTTP probes starts quickly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from test_coordinator.engine.errors import InfrastructureError
from test_coordinator.engine.ports import (
    AuditLink,
    EngineDeps,
    LoadRunner,
    Probe,
)
from test_coordinator.guard.launcher import ProcessGuard
from test_coordinator.ports.storage import RunStore
from test_coordinator.runtime.http_wire import HttpWireClient, HttpWireError
from test_coordinator.runtime.load import (
    CommandTarget,
    LoadGenerator,
    LoadTarget,
    TcpTarget,
)
from test_coordinator.runtime.metrics_scrape import MetricsScrapeError, scrape_metric
from test_coordinator.runtime.polling import DEFAULT_POLL_INTERVAL_S
from test_coordinator.runtime.probes import CommandProbe, GrpcHealthProbe, HttpProbe, TcpProbe
from test_coordinator.scenario.probes import ProbeSpec
from test_coordinator.scenario.steps import LoadSpec
from test_coordinator.targets.wiring import build_targets

if TYPE_CHECKING:  # loaded when a scenario has audit: (with the correlator's client)
    from test_coordinator.ports.audit import AuditSink, Correlation


class RuntimeProbes:
    """Builds runtime probes from scenario probe specs.

    HTTP probes of the same request share one client, and so its kept-alive
    connections: fifty steps that probe one URL cost one connect, not fifty.
    """

    def __init__(self) -> None:
        self._http: dict[tuple[str, str], HttpWireClient] = {}

    def probe(self, spec: ProbeSpec) -> Probe:
        if spec.http is not None:
            return HttpProbe(
                spec.http.url,
                method=spec.http.method,
                expect_status=spec.http.status,
                json_fields=spec.http.json_fields,
                timeout_s=spec.http.timeout,
                client=self._http_client(spec.http.url, spec.http.method),
            )
        if spec.tcp is not None:
            return TcpProbe(spec.tcp.host, spec.tcp.port, timeout_s=spec.tcp.timeout)
        if spec.grpc is not None:
            return GrpcHealthProbe(spec.grpc.target, spec.grpc.service, timeout_s=spec.grpc.timeout)
        command = spec.command
        assert command is not None
        return CommandProbe(
            command.argv,
            timeout_s=command.timeout,
            expect_exit=command.exit,
            env=command.env,
            cwd=Path(command.cwd) if command.cwd else None,
            expect_stdout=command.stdout,
            expect_stderr=command.stderr,
        )

    def _http_client(self, url: str, method: str) -> HttpWireClient | None:
        client = self._http.get((url, method))
        if client is None:
            try:
                client = self._http[(url, method)] = HttpWireClient(url, method=method)
            except HttpWireError:
                return None  # the probe reports the bad URL on each check
        return client

    def close(self) -> None:
        for client in self._http.values():
            client.close()
        self._http.clear()


AUDIT_SPILL_FILE = "audit-undelivered.jsonl"
AUDIT_LINGER_S = 0.05
AUDIT_CLOSE_GRACE_S = 2.0


class HttpAuditLink:
    """A run's link to the audit correlator: an HttpAuditReporter (events are buffered,
    retried behind a circuit breaker; what is undeliverable at the end goes to
    ``run_dir/audit-undelivered.jsonl``) and an AuditClient for correlations."""

    def __init__(self, url: str, run_dir: Path) -> None:
        from test_coordinator.adapters.audit import AuditClient, HttpAuditReporter

        self._reporter = HttpAuditReporter(
            url, spill_path=run_dir / AUDIT_SPILL_FILE, linger_s=AUDIT_LINGER_S
        )
        self._client = AuditClient(url)

    @property
    def sink(self) -> AuditSink:
        return self._reporter

    async def correlate(
        self,
        correlation_id: str,
        from_ms: int,
        to_ms: int,
        *,
        slack_ms: int,
        in_flight_ms: int,
    ) -> Correlation:
        return await self._client.correlate(
            correlation_id, from_ms, to_ms, slack_ms=slack_ms, in_flight_ms=in_flight_ms
        )

    def stats(self) -> Mapping[str, Any]:
        stats = dataclasses.asdict(self._reporter.stats)
        stats["breaker"] = str(stats["breaker"])
        return stats

    async def close(self) -> None:
        try:
            await self._reporter.close(AUDIT_CLOSE_GRACE_S)
        finally:
            await self._client.close()


def audit_link(url: str, run_dir: Path) -> AuditLink:
    return HttpAuditLink(url, run_dir)


@asynccontextmanager
async def runtime_deps(
    store: RunStore, *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S, guard: bool = True
) -> AsyncIterator[EngineDeps]:
    """Real dependencies for as long as the block runs.

    ``guard``: each run starts a watchdog process that undoes it if this process dies.
    """

    async def read_metric(url: str, name: str, labels: Mapping[str, str]) -> float | None:
        try:
            return await scrape_metric(url, name, labels)
        except MetricsScrapeError as exc:
            raise InfrastructureError(str(exc)) from exc

    def load_factory(spec: LoadSpec, origin_s: float) -> LoadRunner:
        target: str | LoadTarget
        if spec.tcp is not None:
            target = TcpTarget(spec.tcp.host, spec.tcp.port)
        elif spec.command is not None:
            command = spec.command
            target = CommandTarget(
                command.argv, env=command.env, cwd=Path(command.cwd) if command.cwd else None
            )
        else:
            assert spec.url is not None
            target = spec.url
        return LoadGenerator(
            target,
            spec.rate,
            method=spec.method,
            timeout_s=spec.timeout,
            origin_s=origin_s,
            max_duration_s=spec.duration or 900.0,
        )

    probes = RuntimeProbes()
    try:
        yield EngineDeps(
            store=store,
            targets_factory=build_targets,
            probes=probes,
            read_metric=read_metric,
            load_factory=load_factory,
            poll_interval_s=poll_interval_s,
            audit_link=audit_link,
            guard=ProcessGuard if guard else None,
        )
    finally:
        probes.close()
