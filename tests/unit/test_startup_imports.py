"""A CLI run loads only what it uses: the heavy stacks stay out until a scenario needs them
(and rich, until stdout is a terminal).

Each of these cost a run tens of milliseconds and megabytes at start-up (see
benchmarks/versus_chaostoolkit.py); this keeps them from creeping back in.
"""

from __future__ import annotations

import json
import subprocess
import sys

RUN_PATH = (
    "test_coordinator.entrypoints.cli",
    "test_coordinator.entrypoints.scenario_session",
    "test_coordinator.engine.executor",
    "test_coordinator.engine.wiring",
    "test_coordinator.adapters.storage.sqlite_file",
    "test_coordinator.infrastructure.logging",
    "test_coordinator.reporting",
    "test_coordinator.reporting.terminal",
    "test_coordinator.runtime.probes",
    "test_coordinator.targets.wiring",
)

NOT_FOR_A_RUN = (
    "aiosqlite",
    "alembic",
    "asyncpg",
    "docker",
    "fastapi",
    "grpc",
    "httpx",
    "prometheus_client",
    "pygments",
    "redis",
    "rich",
    "sqlalchemy",
    "structlog",
    "uvicorn",
)


def test_the_run_path_imports_none_of_the_heavy_stacks() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {module}\n" for module in RUN_PATH)
        + "from test_coordinator.config import load_settings\n"
        + "from test_coordinator.infrastructure.logging import configure_logging\n"
        + "configure_logging(load_settings(log_level='WARNING'))\n"
        + "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )

    assert sorted(set(NOT_FOR_A_RUN) & set(loaded)) == []
