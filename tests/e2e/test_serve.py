"""The service as an operator runs it: one process, HTTP and gRPC, clean stop."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from support.service_process import ServiceProcess, free_port, start_service

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    svc = start_service(tmp_path, {"SERVICE_INSTANCE_NAME": "test-coordinator-E2e"})
    yield svc
    svc.stop()


def test_health_payload_names_the_instance(service: ServiceProcess) -> None:
    """Both health paths return the ecosystem's payload with an ISO 8601 UTC timestamp."""
    for path in ("/api/v1/health", "/health"):
        body = service.get(path).json()

        assert body["status"] == "healthy"
        assert body["service"] == "test-coordinator"
        assert body["instance"] == "test-coordinator-E2e"
        assert body["environment"] == "testing"
        assert body["version"]
        assert datetime.fromisoformat(body["timestamp"]).utcoffset().total_seconds() == 0


def test_metrics_use_route_templates_and_constant_labels(service: ServiceProcess) -> None:
    service.get("/api/v1/health")
    service.get("/no/such/path")

    text = service.get("/metrics").text

    health_line = next(
        line
        for line in text.splitlines()
        if line.startswith("test_coordinator_http_requests_total{")
        and 'route="/api/v1/health"' in line
    )
    assert 'instance="test-coordinator-E2e"' in health_line
    assert 'service="test-coordinator"' in health_line
    assert 'status="200"' in health_line
    assert "/no/such/path" not in text
    assert "process_resident_memory_bytes" in text
    assert "python_info" in text


def test_grpc_health_and_reflection(service: ServiceProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        stream = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(reflection.ServerReflectionInfo(iter([request]), timeout=5))
        names = {s.name for s in response.list_services_response.service}
        assert "grpc.health.v1.Health" in names

    text = service.get("/metrics").text
    assert 'grpc_method="/grpc.health.v1.Health/Check"' in text


def test_sigterm_stops_both_servers_within_ten_seconds(tmp_path: Path) -> None:
    service = start_service(tmp_path)
    started = time.monotonic()

    code = service.stop(timeout_s=10)

    assert code == 0
    assert time.monotonic() - started < 10
    assert "service stopped" in service.log()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOG_LEVEL", "loud"),
        ("SERVICE_INSTANCE_NAME", "bad name!"),
        ("HTTP_PORT", "x"),
        ("POSTGRES_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
    ],
)
def test_invalid_setting_is_one_line_and_exit_code_2(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "test_coordinator", "serve"],
        env={"PATH": "/usr/bin:/bin", variable: value},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_json_logs_in_docker_environment_carry_identity(tmp_path: Path) -> None:
    service = start_service(tmp_path, {"ENVIRONMENT": "docker"})
    service.stop()

    records = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]

    assert any(r.get("event") == "service started" for r in records)
    for record in records:
        assert record["service_name"] == "test-coordinator"
        assert record["instance_name"] == "test-coordinator"
        assert record["environment"] == "docker"


def test_a_data_dir_that_cannot_hold_the_store_is_one_line_and_exit_code_3(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "test_coordinator", "serve"],
        env={
            "PATH": "/usr/bin:/bin",
            "HTTP_PORT": str(free_port()),
            "GRPC_PORT": str(free_port()),
            "DATA_DIR": str(tmp_path / "a-file" / "data"),
            "LOG_LEVEL": "ERROR",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 3, result.stderr
    assert "cannot start: the run store cannot be opened:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_taken_port_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    """A port already in use is an infrastructure error, said plainly."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "test_coordinator", "serve"],
            env={
                "PATH": "/usr/bin:/bin",
                "HTTP_PORT": str(port),
                "GRPC_PORT": str(free_port()),
                "DATA_DIR": str(tmp_path / "data"),
                "LOG_LEVEL": "ERROR",
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert result.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
