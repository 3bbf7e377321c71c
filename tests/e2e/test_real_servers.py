"""The real-server examples (redis-server, nginx, PostgreSQL from Debian) through the CLI.

Each run must pass, record a recovery time, and leave nothing running: no process
whose command line names the run's folder or holds a file in it open (redis,
nginx and postgres overwrite their environment, so the run marker there is not
enough), and nothing listening on the ports the run allocated. A missing server
binary skips locally and fails under CI=true.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.cli_harness import Cli

pytestmark = pytest.mark.slow


def _missing(message: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
    pytest.skip(message)


def _need(*programs: str) -> None:
    absent = [program for program in programs if shutil.which(program) is None]
    if absent:
        _missing(f"not installed: {', '.join(absent)}")


def _pg_bin() -> str:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if not found:
        _missing("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
    _need("pg_isready")
    if os.geteuid() != 0:
        _missing("the PostgreSQL examples run postgres as user postgres: needs root")
    return str(Path(found[-1]).parent)


@pytest.fixture
def reports() -> Iterator[Path]:
    """A reports folder every user can traverse (pytest's tmp_path is 0700 to root, and
    postgres, switched to its own user, must reach its data directory inside)."""
    folder = Path(tempfile.mkdtemp(prefix="tc-real-servers-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _leftovers(run_dir: Path) -> list[str]:
    """Live processes that name ``run_dir`` on their command line or hold a file in it."""
    needle = str(run_dir)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        held = False
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                try:
                    if os.readlink(f"/proc/{entry}/fd/{fd}").startswith(needle):
                        held = True
                        break
                except OSError:
                    continue
        except OSError:
            pass
        if needle in cmdline or held:
            found.append(f"pid {entry}: {cmdline.strip()}")
    return found


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _run(cli: Cli, scenario: str, reports: Path, *args: str) -> dict[str, object]:
    done = cli.run("run", scenario, "--reports-dir", str(reports), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = [path for path in reports.iterdir() if path.is_dir()]
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["exit_code"] == 0
    recoveries = journal["recoveries"]
    assert recoveries, "no recovery recorded"
    assert all(isinstance(r["recovery_ms"], float | int) for r in recoveries), recoveries
    assert all(r["recovery_ms"] > 0 for r in recoveries), recoveries
    assert _leftovers(run_dir) == []
    ports = [
        value
        for name, value in journal["variables"].items()
        if name.endswith("_port") and isinstance(value, int)
    ]
    assert ports
    assert [port for port in ports if _listening(port)] == []
    return dict(journal)


@pytest.mark.parametrize("name", ["redis-kill.yaml", "redis-pause.yaml"])
def test_redis_examples(cli: Cli, example: Callable[[str], str], reports: Path, name: str) -> None:
    _need("redis-server", "redis-cli")
    _run(cli, example(name), reports)


def test_nginx_restart(cli: Cli, example: Callable[[str], str], reports: Path) -> None:
    if not Path("/usr/sbin/nginx").exists():
        _missing("nginx not installed (/usr/sbin/nginx)")
    _run(cli, example("nginx-restart.yaml"), reports)


@pytest.mark.parametrize("name", ["postgres-restart.yaml", "postgres-kill.yaml"])
def test_postgres_examples(
    cli: Cli, example: Callable[[str], str], reports: Path, name: str
) -> None:
    pg_bin = _pg_bin()
    _run(cli, example(name), reports, "--var", f"pg_bin={pg_bin}")
