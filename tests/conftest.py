"""Shared fixtures: where the real servers are, and whether a test may skip without them.

Integration tests take ``postgres_url`` / ``redis_url``. A server that does not
answer skips the test locally, but fails it when ``CI=true``: CI must not go
green by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

# As the package does (test_coordinator/__init__.py), before any test module imports grpc:
# tests run gRPC servers in this process and fork processes beside them.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest

DEFAULT_POSTGRES_TEST_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_server(what: str, url: str, default_port: int) -> str:
    """``url`` if its server accepts a TCP connection; else skip (or fail in CI)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return url
    except OSError as exc:
        message = f"{what} at {host}:{port} is unreachable ({exc})"
        if running_in_ci():
            pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("POSTGRES_TEST_URL") or DEFAULT_POSTGRES_TEST_URL
    return require_server("PostgreSQL (POSTGRES_TEST_URL)", url, 5432)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_TEST_URL") or DEFAULT_REDIS_TEST_URL
    return require_server("Redis (REDIS_TEST_URL)", url, 6379)


def docker_host_candidates() -> list[str]:
    """DOCKER_HOST if set; else the sockets of a local Docker or Podman engine."""
    if os.environ.get("DOCKER_HOST"):
        return [os.environ["DOCKER_HOST"]]
    return [
        "unix:///run/podman/podman.sock",
        "unix:///var/run/docker.sock",
    ]


def _unix_socket_refuses(url: str) -> str | None:
    """Why nothing answers on a ``unix://`` engine address, or None. Asked with a socket
    of our own: the Docker SDK leaves the socket of a failed connect unclosed, and its
    ResourceWarning would fail whichever test the collector happens to run in."""
    if not url.startswith("unix://"):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(url.removeprefix("unix://"))
        except OSError as exc:
            return exc.strerror or type(exc).__name__
    return None


@pytest.fixture(scope="session")
def docker_host() -> str:
    """A Docker Engine API that answers (``scripts/docker-engine.sh`` starts one); the
    environment's DOCKER_HOST is set to it for the session. Skips locally, fails in CI."""
    import docker

    problems = []
    for url in docker_host_candidates():
        refused = _unix_socket_refuses(url)
        if refused is not None:
            problems.append(f"{url}: {refused}")
            continue
        try:
            client = docker.DockerClient(base_url=url, timeout=5)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            problems.append(f"{url}: {exc}")
            continue
        os.environ["DOCKER_HOST"] = url
        return url
    message = "no Docker engine answers (" + "; ".join(problems) + ")"
    if running_in_ci():
        pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
    pytest.skip(message)
