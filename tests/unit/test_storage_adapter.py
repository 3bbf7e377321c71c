"""DataAdapter: built from Settings, embedded SQLite by default, and a service that
starts and keeps accepting writes when its configured servers are down."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from test_coordinator.adapters.storage import (
    DataAdapter,
    ReconnectPolicy,
    StorageConfigError,
    StorageUnavailable,
)
from test_coordinator.adapters.storage.engines import postgres_async_url
from test_coordinator.config import Settings
from test_coordinator.ports.live_state import LiveRun
from test_coordinator.ports.storage import RunRecord, RunStatus

FAST = ReconnectPolicy(
    check_interval_s=0.05, first_backoff_s=0.02, max_backoff_s=0.1, connect_timeout_s=0.5
)


def settings(data_dir: Path, **values: object) -> Settings:
    fields: dict[str, object] = {"data_dir": data_dir, "postgres_url": None, "redis_url": None}
    fields.update(values)
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[DataAdapter]:
    adapter = DataAdapter.from_settings(settings(tmp_path, service_instance_name="Blue"))
    await adapter.start()
    yield adapter
    await adapter.close()


async def test_embedded_sqlite_lives_in_the_instance_data_dir(
    embedded: DataAdapter, tmp_path: Path
) -> None:
    await embedded.runs.save_run(RunRecord("r1", "s", RunStatus.RUNNING, 1))

    assert (tmp_path / "Blue" / "coordinator.db").is_file()
    assert (await embedded.runs.list_runs())[0].run_id == "r1"
    assert embedded.live is None
    assert embedded.dependency_health() == []


async def test_start_and_close_are_idempotent(embedded: DataAdapter) -> None:
    await embedded.start()
    await embedded.close()
    await embedded.close()


async def test_servers_down_at_startup_do_not_stop_the_service(
    tmp_path: Path, closed_port: int
) -> None:
    """Both servers refuse: start succeeds, health says why, writes are kept on disk,
    reads say the server is unavailable; nothing leaks a password."""
    adapter = DataAdapter.from_settings(
        settings(
            tmp_path,
            postgres_url=f"postgresql://coordinator:hunter2@127.0.0.1:{closed_port}/db",
            redis_url=f"redis://:hunter2@127.0.0.1:{closed_port}/0",
        ),
        policy=FAST,
    )
    try:
        await adapter.start()

        await adapter.runs.save_run(RunRecord("r1", "s", RunStatus.RUNNING, 1))
        assert adapter.live is not None
        await adapter.live.publish(LiveRun("r1", "s", RunStatus.RUNNING, 1))

        health = {h.name: h for h in adapter.dependency_health()}
        assert {"postgres", "redis"} == set(health)
        assert not health["postgres"].healthy and not health["redis"].healthy
        assert "1 writes buffered" in health["postgres"].detail
        with pytest.raises(StorageUnavailable, match="postgres is unavailable"):
            await adapter.runs.get_run("r1")
        with pytest.raises(StorageUnavailable, match="redis is unavailable"):
            await adapter.live.active()
        everything = adapter.description + "".join(h.detail for h in health.values())
        assert "hunter2" not in everything
    finally:
        await adapter.close()
    instance_dir = tmp_path / "test-coordinator"
    assert {"outbox-postgres.db", "outbox-redis.db"} <= {p.name for p in instance_dir.iterdir()}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@h:5432/db",
        "postgresql+asyncpg://u:p@h:5432/db",
        "postgres://u:p@h:5432/db",
    ],
)
def test_postgres_urls_use_asyncpg(url: str) -> None:
    assert postgres_async_url(url) == "postgresql+asyncpg://u:p@h:5432/db"


def test_other_postgres_drivers_are_refused_without_the_password() -> None:
    with pytest.raises(StorageConfigError, match="POSTGRES_URL") as refused:
        postgres_async_url("mysql://u:secret@h/db")
    assert "secret" not in str(refused.value)
