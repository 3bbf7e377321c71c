"""Settings from the environment (and an optional ``.env``), built on demand.

Nothing here runs at import time: entry points call :func:`load_settings`, which
turns every validation problem into one :class:`SettingsError` line naming the
variable and what it allows.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from test_coordinator import package_version
from test_coordinator.domain.identity import NAME_RULE, ServiceIdentity, check_name

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TESTING = "testing"
    PRODUCTION = "production"
    DOCKER = "docker"

    @property
    def wants_json_logs(self) -> bool:
        return self in (Environment.DOCKER, Environment.PRODUCTION)


class SettingsError(Exception):
    """Startup configuration is invalid; the message is one line for the operator."""


class Settings(BaseSettings):
    """The service's configuration; field names map to upper-case variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    service_name: str = "test-coordinator"
    service_instance_name: str = ""
    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    postgres_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("data")
    postgres_schema: str | None = None
    redis_namespace: str | None = None

    # The runs API (``serve``).
    api_token: SecretStr | None = None
    """Bearer token every call on runs and scenarios must carry; required off loopback."""
    max_concurrent_runs: int = Field(default=4, ge=1, le=64)
    max_queued_runs: int = Field(default=100, ge=0, le=100_000)
    scenario_dir: Path = Path("scenarios")
    """The scenario library: runs may name a scenario in it."""
    reports_dir: Path = Path("reports")
    allow_remote_execution: bool = False
    """Whether a scenario sent in a request may start local processes, containers or commands."""
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)

    @field_validator("service_name", "service_instance_name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value) if value else value

    @field_validator("service_instance_name")
    @classmethod
    def _not_reserved(cls, value: str, info: ValidationInfo) -> str:
        service = info.data.get("service_name")
        if value and service:
            ServiceIdentity.of(service, value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _normalise_log_level(cls, value: Any) -> str:
        level = str(value).strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; allowed: {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("postgres_url", "redis_url", "postgres_schema", "redis_namespace")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("postgres_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        return _with_scheme(value, _POSTGRES_SCHEMES, "postgresql://… or postgresql+asyncpg://…")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        return _with_scheme(value, _REDIS_SCHEMES, "redis://…, rediss://… or unix://…")

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("postgres_schema")
    @classmethod
    def _valid_schema(cls, value: str | None) -> str | None:
        if value is not None and not _is_identifier(value):
            raise ValueError(
                f"{value!r} is not a PostgreSQL identifier; allowed: lower-case letters, "
                "digits and underscores, starting with a letter, at most 63 characters"
            )
        return value

    @model_validator(mode="after")
    def _derive_instance(self) -> Settings:
        if not self.service_instance_name:
            object.__setattr__(self, "service_instance_name", self.service_name)
        return self

    @property
    def identity(self) -> ServiceIdentity:
        return ServiceIdentity.of(self.service_name, self.service_instance_name)

    @property
    def version(self) -> str:
        return package_version()

    @property
    def database_schema(self) -> str:
        """The PostgreSQL schema: POSTGRES_SCHEMA if set, else derived from the identity."""
        return self.postgres_schema or self.identity.postgres_schema

    @property
    def key_namespace(self) -> str:
        """The Redis key prefix: REDIS_NAMESPACE if set, else derived from the identity."""
        return self.redis_namespace or self.identity.redis_namespace

    @property
    def instance_data_dir(self) -> Path:
        return self.data_dir / self.service_instance_name

    @property
    def loopback_only(self) -> bool:
        """Whether HTTP_HOST reaches this machine only (127.0.0.0/8, ::1, localhost)."""
        return is_loopback(self.http_host)


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_identifier(value: str) -> bool:
    return (
        0 < len(value) <= 63
        and value[0].isascii()
        and value[0].isalpha()
        and value.islower() is not False
        and all(c.isascii() and (c.isdigit() or c == "_" or c.islower()) for c in value)
    )


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; raise SettingsError with one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        variable = "_".join(str(part) for part in error["loc"]).upper() or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "enum":
            message = f"{error.get('input')!r} is not allowed; allowed: " + ", ".join(
                e.value for e in Environment
            )
        elif variable in ("SERVICE_NAME", "SERVICE_INSTANCE_NAME") and NAME_RULE in message:
            message = message.replace("name ", "", 1)
        problems.append(f"{variable}: {message}")
    return "; ".join(problems)


def _with_scheme(value: str | None, schemes: tuple[str, ...], allowed: str) -> str | None:
    """``value`` (a URL, or unset) if its scheme is one of ``schemes``. The message names
    the scheme only: the rest of a URL may hold a password."""
    if value is None:
        return None
    scheme, separator, _ = value.partition("://")
    if not separator or scheme.lower() not in schemes:
        shown = f"scheme {scheme!r}" if separator else "a URL without a scheme"
        raise ValueError(f"{shown} is not allowed; allowed: {allowed}")
    return value
