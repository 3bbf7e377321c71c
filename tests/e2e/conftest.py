"""Fixtures for the end-to-end tests: the CLI in a scratch directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.cli_harness import EXAMPLES, Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI with its own SQLite store and reports folder under ``tmp_path``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TC_VAR_", "POSTGRES_", "REDIS_", "SERVICE_"))
    }
    env.update({"DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "WARNING", "COLUMNS": "200"})
    return Cli(tmp_path, env)


@pytest.fixture
def example() -> Callable[[str], str]:
    return lambda name: str(EXAMPLES / name)
