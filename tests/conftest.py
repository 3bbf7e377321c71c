"""Shared fixtures: where the real servers are, and whether a test may skip without them.

Integration tests take ``postgres_url`` / ``redis_url``. A server that does not
answer skips the test locally, but fails it when ``CI=true``: CI must not go
green by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

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
