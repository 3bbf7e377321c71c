"""The discovery record: its key, its JSON, and how this process describes itself."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

from test_coordinator.config import Settings
from test_coordinator.ports.registry import ServiceRecord

KEY_PREFIX = "services"
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
T = TypeVar("T", str, int)


class MalformedRecord(ValueError):
    """A value under ``services:*`` is not a discovery record."""


def service_key(service: str, instance: str) -> str:
    """``services:{service}:{instance}``: the ecosystem's contract, not namespaced."""
    return f"{KEY_PREFIX}:{service}:{instance}"


def service_pattern(service: str) -> str:
    """The SCAN pattern for every instance of ``service`` (names hold no glob characters)."""
    return f"{KEY_PREFIX}:{service}:*"


def record_to_json(record: ServiceRecord) -> str:
    return json.dumps(asdict(record), separators=(",", ":"))


def record_from_json(text: str) -> ServiceRecord:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedRecord(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedRecord("not a JSON object")
    return ServiceRecord(
        service=_field(data, "service", str),
        instance=_field(data, "instance", str),
        host=_field(data, "host", str),
        http_port=_field(data, "http_port", int),
        grpc_port=_field(data, "grpc_port", int),
        version=_field(data, "version", str),
        environment=_field(data, "environment", str),
        status=_field(data, "status", str),
        timestamp=_field(data, "timestamp", str),
    )


def _field(data: dict[str, Any], name: str, kind: type[T]) -> T:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedRecord(f"{name} is missing or not a {kind.__name__}")
    return value


def record_from_settings(
    settings: Settings, *, host: str | None = None, status: str = "healthy"
) -> ServiceRecord:
    """This instance's record; a wildcard bind address is advertised as the host name."""
    advertised = host or settings.http_host
    if advertised in _WILDCARD_HOSTS:
        advertised = socket.gethostname()
    return ServiceRecord(
        service=settings.service_name,
        instance=settings.service_instance_name,
        host=advertised,
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        version=settings.version,
        environment=settings.environment.value,
        status=status,
        timestamp=utc_now_iso(),
    )


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
