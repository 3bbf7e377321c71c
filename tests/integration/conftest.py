"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from test_coordinator.adapters.storage.sqlite_file import open_sqlite_file
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.wiring import runtime_deps


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[EngineDeps]:
    """The engine's real dependencies on a SQLite store under ``tmp_path``, without a guard
    (the test process is the coordinator; it does not die)."""
    store = await open_sqlite_file(tmp_path / "data")
    try:
        async with runtime_deps(store, poll_interval_s=0.005, guard=False) as real:
            yield real
    finally:
        store.close()
