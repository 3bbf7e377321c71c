"""Every series the Grafana dashboard queries is one the service exposes: a renamed metric
breaks this test, not a panel nobody looks at."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_coordinator.infrastructure.grpc_metrics import GrpcMetricsInterceptor
from test_coordinator.infrastructure.http_metrics import HttpMetricsMiddleware
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.service.runs.metrics import RunMetrics

DASHBOARD = Path(__file__).parents[2] / "deploy/grafana/dashboards/test-coordinator.json"
SERIES = re.compile(r"\btest_coordinator_[a-z_]+")


def exposed_names() -> set[str]:
    metrics = PrometheusMetrics(
        constant_labels={"service": "test-coordinator", "instance": "tc", "version": "0"}
    )
    RunMetrics(metrics)
    HttpMetricsMiddleware(lambda scope, receive, send: None, metrics)  # type: ignore[arg-type,return-value]
    GrpcMetricsInterceptor(metrics)
    body, _ = metrics.render()
    return {
        line.split("{")[0].split(" ")[2]
        if line.startswith("# TYPE")
        else line.split("{")[0].split(" ")[0]
        for line in body.decode().splitlines()
        if line and (line.startswith("# TYPE") or not line.startswith("#"))
    }


def test_every_series_of_the_dashboard_is_exposed() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queried = {
        name
        for panel in panels
        for target in panel.get("targets", ())
        for name in SERIES.findall(target["expr"])
    }
    exposed = exposed_names()
    families = {re.sub(r"_(bucket|sum|count|total|created)$", "", name) for name in exposed}

    missing = sorted(
        name
        for name in queried
        if name not in exposed and re.sub(r"_(bucket|sum|count|total)$", "", name) not in families
    )
    assert {"test_coordinator_runs_total", "test_coordinator_recovery_seconds_bucket"} <= queried
    assert not missing, f"the dashboard queries series the service does not expose: {missing}"
