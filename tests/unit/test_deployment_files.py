"""The deployment files keep the ecosystem's contract: addresses, ports, labels, health."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _yaml(relative: str) -> Any:
    return yaml.safe_load((ROOT / relative).read_text())


def test_compose_runs_the_coordinator_at_its_ecosystem_address() -> None:
    compose = _yaml("deploy/docker-compose.yml")
    coordinator = compose["services"]["test-coordinator"]

    # The seeds' host ports, as variables so that a busy host can move them.
    assert {"${TC_HTTP_HOST_PORT:-8087}:8080", "${TC_GRPC_HOST_PORT:-50055}:50051"} == set(
        coordinator["ports"]
    )
    assert "172.20.0.87" == coordinator["networks"]["trading-ecosystem"]["ipv4_address"]
    assert "test-coordinator" == coordinator["environment"]["SERVICE_NAME"]
    assert "SERVICE_INSTANCE_NAME" in coordinator["environment"]
    # Named volumes: writable by the image's unprivileged user on Docker and Podman alike.
    assert {"coordinator-data:/app/data", "coordinator-logs:/app/logs"} <= set(
        coordinator["volumes"]
    )
    assert {"coordinator-data", "coordinator-logs"} <= set(compose["volumes"])
    assert {"postgres", "redis", "prometheus", "grafana"} <= set(compose["services"])
    assert {"audit-correlator", "exchange-okx", "trading-system-engine"} <= set(compose["services"])
    # The host's own PostgreSQL and Redis keep their ports: nothing published by default.
    assert "ports" not in compose["services"]["postgres"]
    assert "ports" not in compose["services"]["redis"]


def test_prometheus_scrapes_the_coordinator_with_instance_labels() -> None:
    config = _yaml("deploy/prometheus/prometheus.yml")
    targets = [
        target
        for job in config["scrape_configs"]
        for target in job["static_configs"]
        if target.get("labels", {}).get("service") == "test-coordinator"
    ]

    assert {"singleton", "multi-instance"} == {t["labels"]["service_type"] for t in targets}
    assert {"test-coordinator", "test-coordinator-Chaos1"} == {
        t["labels"]["instance_name"] for t in targets
    }
    assert "172.20.0.87:8080" in [addr for t in targets for addr in t["targets"]]


def test_dockerfile_runs_unprivileged_and_checks_its_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^FROM python:3\.1[1-9]-slim", dockerfile, re.M)
    assert re.search(r"^EXPOSE 8080 50051$", dockerfile, re.M)
    user = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/api/v1/health", dockerfile, re.M)
