"""The real-server examples, again and again: pass rate and recovery times.

Runs each example of scenarios/examples/ that faults a server installed from
Debian (redis-server, nginx, PostgreSQL: kill, restart and pause) ``--runs``
times, each as a whole ``test-coordinator run`` process with its own reports
folder, interleaved (one of each, then again), and prints per example how many
passed and the recovery times the journals recorded: from the fault's injection
to the service's first healthy answer, and, where the fault has an undo that
restores it (a resume), from that undo.

Needs redis-server, redis-cli, nginx (``apt-get install redis-server
nginx-light postgresql``) and, for PostgreSQL, root (postgres runs as its user).

    .venv/bin/python benchmarks/real_servers.py [--runs 10] [--only redis-kill ...]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "scenarios" / "examples"
CLI = Path(sys.executable).with_name("test-coordinator")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
RUN_TIMEOUT_S = 180.0


def pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise SystemExit("PostgreSQL's binaries are not under /usr/lib/postgresql/*/bin")
    return str(Path(found[-1]).parent)


EXAMPLE_ARGS: dict[str, list[str]] = {
    "redis-kill": [],
    "redis-pause": [],
    "nginx-restart": [],
    "postgres-kill": ["--var", f"pg_bin={pg_bin()}"] if os.geteuid() == 0 else [],
    "postgres-restart": ["--var", f"pg_bin={pg_bin()}"] if os.geteuid() == 0 else [],
}


@dataclass
class Tally:
    passed: int = 0
    runs: int = 0
    recovery_ms: list[float] = field(default_factory=list)
    from_restore_ms: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def run_once(name: str, workdir: Path) -> tuple[dict[str, Any] | None, float, str]:
    reports = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    reports.chmod(0o755)  # postgres, under its own user, reaches its data directory inside
    started = time.perf_counter()
    done = subprocess.run(
        [str(CLI), "run", str(EXAMPLES / f"{name}.yaml"), "--reports-dir", str(reports)]
        + EXAMPLE_ARGS[name],
        cwd=workdir,
        env={**ENV, "DATA_DIR": str(workdir / "data")},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    wall_s = time.perf_counter() - started
    journals = list(reports.glob("*/journal.json"))
    journal = json.loads(journals[0].read_text()) if journals else None
    output = (done.stdout + done.stderr).strip().splitlines()
    shutil.rmtree(reports, ignore_errors=True)
    return journal, wall_s, output[-1] if output else f"exit {done.returncode}"


def describe(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} / {max(values):.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", nargs="*", choices=sorted(EXAMPLE_ARGS), default=None)
    args = parser.parse_args()
    names = args.only or list(EXAMPLE_ARGS)
    missing = [p for p in ("redis-server", "redis-cli") if shutil.which(p) is None]
    if not Path("/usr/sbin/nginx").exists():
        missing.append("/usr/sbin/nginx")
    if missing:
        raise SystemExit(f"not installed: {', '.join(missing)}")
    if os.geteuid() != 0:
        names = [n for n in names if not n.startswith("postgres")]
        print("not root: the PostgreSQL examples are left out", file=sys.stderr)
    tallies = {name: Tally() for name in names}
    with tempfile.TemporaryDirectory(prefix="tc-real-servers-") as work:
        workdir = Path(work)
        workdir.chmod(0o755)
        for round_ in range(args.runs):
            for name in names:
                tally = tallies[name]
                journal, wall_s, last = run_once(name, workdir)
                tally.runs += 1
                tally.wall_s.append(wall_s)
                if journal is None or journal.get("outcome") != "passed":
                    tally.failures.append(f"round {round_ + 1}: {last}")
                    continue
                tally.passed += 1
                for recovery in journal.get("recoveries") or []:
                    if recovery.get("recovery_ms") is not None:
                        tally.recovery_ms.append(float(recovery["recovery_ms"]))
                    if recovery.get("recovery_from_restore_ms") is not None:
                        tally.from_restore_ms.append(float(recovery["recovery_from_restore_ms"]))
            print(f"round {round_ + 1} of {args.runs} done", file=sys.stderr)
    print(f"{args.runs} runs of each, interleaved; times in ms, median / max")
    print(f"{'example':<18} {'passed':>8} {'recovery':>14} {'from restore':>14} {'run (s)':>9}")
    for name, tally in tallies.items():
        print(
            f"{name:<18} {tally.passed:>4}/{tally.runs:<3} {describe(tally.recovery_ms):>14} "
            f"{describe(tally.from_restore_ms):>14} {statistics.median(tally.wall_s):>9.2f}"
        )
        for failure in tally.failures:
            print(f"    {failure}")
    return 0 if all(t.passed == t.runs for t in tallies.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
