"""A CLI run loads only what it uses: the heavy stacks stay out until a scenario needs them
(and rich, until stdout is a terminal).

Each of these cost a run tens of milliseconds and megabytes at start-up (see
benchmarks/versus_chaostoolkit.py); this keeps them from creeping back in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    "typer",  # a plain run starts without it (entrypoints.quick_cli)
    "uvicorn",
)


# Our own modules a run loads only when it needs them: the audit correlator's types and
# the order accounting (a scenario with audit:), the report writers (at the end of a run).
NOT_AT_START = (
    "test_coordinator.engine.audit_check",
    "test_coordinator.engine.order_accounting",
    "test_coordinator.ports.audit",
    "test_coordinator.reporting.html",
    "test_coordinator.reporting.journal_json",
    "test_coordinator.reporting.junit",
)


def test_the_run_path_imports_none_of_the_heavy_stacks() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {module}\n" for module in RUN_PATH)
        + "from test_coordinator.config import load_settings\n"
        + "from test_coordinator.infrastructure.logging import configure_logging\n"
        + "configure_logging(load_settings(log_level='WARNING'))\n"
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )

    assert sorted(set(NOT_FOR_A_RUN) & {m.split(".")[0] for m in loaded}) == []
    assert sorted(set(NOT_AT_START) & set(loaded)) == []


NOT_FOR_AN_EMBEDDED_SERVICE = ("aiosqlite", "alembic", "asyncpg", "docker", "redis", "sqlalchemy")


def test_the_service_on_embedded_defaults_loads_no_database_stack(tmp_path: Path) -> None:
    """`serve` without POSTGRES_URL and REDIS_URL, up and ready: the stdlib SQLite store, no
    SQLAlchemy, Alembic or redis-py (about 30 MB of its idle memory)."""
    code = (
        "import asyncio, json, sys\n"
        "from test_coordinator.config import load_settings\n"
        "from test_coordinator.entrypoints.serve import serve\n"
        "async def main():\n"
        "    stop = asyncio.Event()\n"
        "    task = asyncio.create_task(serve(load_settings(), stop=stop))\n"
        "    async with asyncio.timeout(30):\n"
        "        while not any(t.get_name() == 'http-server' for t in asyncio.all_tasks()):\n"
        "            await asyncio.sleep(0.01)\n"
        "    loaded = sorted({m.split('.')[0] for m in sys.modules})\n"
        "    stop.set()\n"
        "    await task\n"
        "    print(json.dumps(loaded))\n"
        "asyncio.run(main())\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("POSTGRES_URL", "REDIS_URL")},
        "HTTP_PORT": "0",
        "GRPC_PORT": "0",
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])

    assert "fastapi" in loaded and "grpc" in loaded  # it did serve
    assert sorted(set(NOT_FOR_AN_EMBEDDED_SERVICE) & set(loaded)) == []
