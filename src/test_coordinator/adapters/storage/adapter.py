"""The data adapter: one object that builds, starts and closes all storage from Settings."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from test_coordinator.adapters.redact import redact_url
from test_coordinator.adapters.storage.paths import SQLITE_FILE
from test_coordinator.adapters.storage.remote import ReconnectPolicy
from test_coordinator.adapters.storage.sqlite_file import SqliteFileRunStore, prepare_sqlite_file
from test_coordinator.config import Settings
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.ports.live_state import LiveState
from test_coordinator.ports.storage import RunStore

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from test_coordinator.adapters.storage.buffered import BufferedWriter


class DataAdapter:
    """Runs (PostgreSQL, else an embedded SQLite file) and live state (Redis, if configured).

    Build with :meth:`from_settings` (never touches the network), then ``await start()``:
    it migrates, checks each server once and starts their monitors, and does not fail
    when a server is down. ``await close()`` stops everything; calling it again is harmless.

    The embedded file goes through the standard library's sqlite3 (created at head, or
    migrated once through Alembic when it is older): without PostgreSQL and Redis the
    service loads neither SQLAlchemy nor redis-py.
    """

    def __init__(
        self,
        *,
        runs: RunStore,
        engine: AsyncEngine | None = None,
        sqlite_store: SqliteFileRunStore | None = None,
        live: LiveState | None = None,
        redis: Redis | None = None,
        writers: tuple[BufferedWriter, ...] = (),
        description: str = "",
    ) -> None:
        self.runs = runs
        self.live = live
        self.description = description
        self._engine = engine
        self._sqlite_store = sqlite_store
        self._redis = redis
        self._writers = writers
        self._started = False
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, *, policy: ReconnectPolicy | None = None
    ) -> DataAdapter:
        policy = policy or ReconnectPolicy()
        data_dir = settings.instance_data_dir
        writers: list[BufferedWriter] = []
        parts = []
        engine = None
        sqlite_store = None
        runs: RunStore
        if settings.postgres_url:
            from test_coordinator.adapters.storage.buffered import BufferedWriter
            from test_coordinator.adapters.storage.buffered_store import BufferedRunStore
            from test_coordinator.adapters.storage.engines import postgres_engine
            from test_coordinator.adapters.storage.sql_store import SqlRunStore

            engine = postgres_engine(
                settings.postgres_url,
                schema=settings.database_schema,
                application_name=settings.service_instance_name,
                connect_timeout_s=policy.connect_timeout_s,
                command_timeout_s=policy.operation_timeout_s,
            )
            sql = SqlRunStore(
                engine,
                name="postgres",
                schema=settings.database_schema,
                owner=settings.service_instance_name,
            )
            writer = BufferedWriter("postgres", sql, data_dir / "outbox-postgres.db", policy)
            writers.append(writer)
            runs = BufferedRunStore(sql, writer)
            parts.append(
                f"runs in {redact_url(settings.postgres_url)} schema {settings.database_schema}"
            )
        else:
            runs = sqlite_store = SqliteFileRunStore(data_dir / SQLITE_FILE)
            parts.append(f"runs in {data_dir / SQLITE_FILE}")
        live: LiveState | None = None
        redis = None
        if settings.redis_url:
            from test_coordinator.adapters.redis_client import redis_client
            from test_coordinator.adapters.storage.buffered import BufferedWriter
            from test_coordinator.adapters.storage.buffered_live import BufferedLiveState
            from test_coordinator.adapters.storage.redis_live import RedisLiveState

            redis = redis_client(settings.redis_url, timeout_s=policy.connect_timeout_s)
            state = RedisLiveState(redis, settings.key_namespace)
            writer = BufferedWriter("redis", state, data_dir / "outbox-redis.db", policy)
            writers.append(writer)
            live = BufferedLiveState(state, writer)
            parts.append(f"live state in {redact_url(settings.redis_url)} under {state.namespace}:")
        return cls(
            runs=runs,
            engine=engine,
            sqlite_store=sqlite_store,
            live=live,
            redis=redis,
            writers=tuple(writers),
            description="; ".join(parts),
        )

    async def start(self) -> None:
        """Migrate SQLite, or check each server once (migrating PostgreSQL on first contact)."""
        if self._started:
            return
        self._started = True
        try:
            if self._sqlite_store is not None:
                await prepare_sqlite_file(self._sqlite_store.path)
                self._sqlite_store.open()
            outcomes = await asyncio.gather(
                *(writer.start() for writer in self._writers), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the monitors, close the outboxes and pools; buffered writes stay on disk."""
        if self._closed:
            return
        self._closed = True
        for writer in self._writers:
            await writer.close()
        if self._sqlite_store is not None:
            self._sqlite_store.close()
        if self._engine is not None:
            await self._engine.dispose()
        if self._redis is not None:
            with contextlib.suppress(OSError):
                await self._redis.aclose()

    def dependency_health(self) -> list[DependencyHealth]:
        """Cached health of each configured server; never touches the network."""
        return [writer.health() for writer in self._writers]
