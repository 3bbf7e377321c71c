"""SQLAlchemy async engines: the embedded SQLite file and PostgreSQL over asyncpg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from test_coordinator.adapters.redact import redact_url

_POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")


class StorageConfigError(ValueError):
    """A storage URL or path cannot be used; the message names the variable."""


def postgres_async_url(url: str) -> str:
    """``url`` with the asyncpg driver: accepts postgres://, postgresql://, postgresql+asyncpg://."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in _POSTGRES_SCHEMES:
        raise StorageConfigError(
            f"POSTGRES_URL: {redact_url(url)!r} is not allowed; "
            "allowed: postgresql://… or postgresql+asyncpg://…"
        )
    return f"postgresql+asyncpg://{rest}"


def postgres_engine(
    url: str,
    *,
    schema: str,
    application_name: str,
    connect_timeout_s: float,
    command_timeout_s: float,
) -> AsyncEngine:
    """A pooled engine whose unqualified tables live in ``schema``."""
    engine = create_async_engine(
        postgres_async_url(url),
        pool_size=5,
        max_overflow=5,
        pool_timeout=connect_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "timeout": connect_timeout_s,
            "command_timeout": command_timeout_s,
            "server_settings": {"application_name": application_name[:63]},
        },
    )
    return engine.execution_options(schema_translate_map={None: schema})


def sqlite_engine(path: Path) -> AsyncEngine:
    """An engine on the SQLite file at ``path``, creating its directory."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageConfigError(f"DATA_DIR: cannot create {path.parent}: {exc}") from exc
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
