"""Run ``test-coordinator serve`` as a child process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_DEADLINE_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=5.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL past the deadline)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise


def start_service(tmp_path: Path, env: Mapping[str, str] = {}) -> ServiceProcess:
    """Start the service on free ports and wait until /api/v1/ready answers 200."""
    http_port, grpc_port = free_port(), free_port()
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("POSTGRES_URL", "REDIS_URL", "SERVICE_INSTANCE_NAME", "LOG_LEVEL")
    }
    full_env = {
        **base_env,
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "DATA_DIR": str(tmp_path / "data"),
        "ENVIRONMENT": "testing",
        **env,
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / f"service-{http_port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "test_coordinator", "serve"],
            env=full_env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(process, http_port, grpc_port, log_path)
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{service.log()}")
        try:
            if service.get("/api/v1/ready").status_code == 200:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    service.stop()
    raise RuntimeError(f"service not ready within {READY_DEADLINE_S}s:\n{service.log()}")


def wait_for(predicate, *, deadline_s: float, interval_s: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value; fail after the deadline."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {deadline_s}s (last: {last!r})")
