"""The Redis client as our adapters use it: short timeouts, no hidden retry storms,
and redis-py's errors translated at the edge."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from test_coordinator.adapters.redact import redact_text
from test_coordinator.ports.availability import DependencyUnavailable, StorageRejected

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


def redis_client(url: str, *, timeout_s: float = 2.0) -> Redis:
    """A pooled client for ``url``; connects lazily, so building it never fails for a down server.

    One immediate retry lets a command recover from a pooled connection that died
    during an outage; our own monitors do the patient reconnecting.
    """
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
    )


@contextlib.contextmanager
def redis_errors(
    name: str, unavailable: type[DependencyUnavailable] = DependencyUnavailable
) -> Iterator[None]:
    """Translate redis-py errors: unreachable → ``unavailable``, refused → StorageRejected."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise unavailable(f"{name}: {_describe(exc)}") from exc
    except RedisError as exc:
        raise StorageRejected(f"{name}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact_text(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
