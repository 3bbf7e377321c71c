"""The scenario engine's figures: step overhead, recovery-time error, command start-up.

Each HTTP figure is measured against two servers: tiny_server answering in one
write, and tiny_server --split-writes answering as Python's http.server does (head
and body in two writes, Nagle on), where a client that delays its ACK waits 40 ms.

(a) Overhead per step: a scenario of 1,000 ``wait: 0ms`` steps (no-op) and one of
    1,000 ``probe`` steps, each one HTTP GET of a local tiny_server's /health,
    run by the real engine (in-memory run store, journal and all). Per step =
    wall time of the run / 1,000. Targets: < 0.3 ms and < 0.5 ms.
(b) Recovery-time error: a tiny_server is restarted N times by one scenario.
    When each restart step starts, a journal listener writes a moment T (1 s
    ahead) into a file the service's start command reads, so the new process
    answers /health with 503 until exactly T (tiny_server --unhealthy-until,
    on the monotonic clock every process shares). Error = the engine's
    recovery moment - T. Target: p95 < 5 ms.
(c) Wall time of ``test-coordinator --help`` and of ``validate`` on one file,
    each run 20 times as a new process. Target: < 0.25 s.

    .venv/bin/python benchmarks/engine.py [--steps 1000] [--restarts 40] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.wiring import runtime_deps
from test_coordinator.ports.storage import JournalEvent, RunRecord, UndoRecord, UndoStatus
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.scenario.loader import LoadedScenario, load_text

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "scenarios" / "examples"
TINY_SERVER = EXAMPLES / "tiny_server.py"
CLI = Path(sys.executable).parent / "test-coordinator"


class MemoryStore:
    """A RunStore in memory: the benchmark measures the engine, not a database."""

    def __init__(self) -> None:
        self.stored: list[JournalEvent] = []
        self.undos: dict[str, UndoRecord] = {}

    async def save_run(self, run: RunRecord) -> None:
        pass

    async def append_events(self, events: Sequence[JournalEvent]) -> None:
        self.stored.extend(events)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return None

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        return []

    async def events(self, run_id: str) -> list[JournalEvent]:
        return []

    async def record_undo(self, undo: UndoRecord) -> None:
        self.undos[undo.undo_id] = undo

    async def finish_undo(self, undo_id: str, status: UndoStatus, detail: str = "") -> None:
        pass

    async def pending_undos(self) -> list[UndoRecord]:
        return []


def scenario(text: str, name: str, **values: str) -> LoadedScenario:
    return load_text(
        text,
        path=Path(f"{name}.yaml"),
        overrides=values,
        environ={},
        allocate_port=free_port,
        builtins={"python": sys.executable, "scenario_dir": str(EXAMPLES), "run_id": name},
    )


SERVERS = {"one write": (), "two writes": ("--split-writes",)}


def start_tiny_server(port: int, *flags: str) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, str(TINY_SERVER), "--port", str(port), "--name", "bench", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()  # "tiny-server bench listening on PORT": it accepts now
    if "listening" not in line:
        raise RuntimeError(f"tiny_server did not start: {line!r}")
    return server


async def per_step_ms(text: str, steps: int, reports: Path, repeats: int = 3) -> float:
    timings = []
    for attempt in range(repeats):
        loaded = scenario(text, f"steps-{attempt}")
        async with runtime_deps(MemoryStore()) as deps:
            started = time.perf_counter()
            result = await run_scenario(loaded, deps, RunOptions(f"bench-{attempt}", 1, reports))
            elapsed = time.perf_counter() - started
        if result.exit_code != 0:
            raise RuntimeError(f"benchmark scenario failed: {result.reason}")
        timings.append(elapsed * 1000.0 / steps)
    return statistics.median(timings)


async def noop_overhead(steps: int, reports: Path) -> float:
    noop = (
        "version: 1\nservices:\n  idle: {health: {tcp: {port: 1}}}\nsteps:\n"
        + "  - wait: 0ms\n" * steps
    )
    return await per_step_ms(noop, steps, reports)


async def probe_overhead(steps: int, reports: Path, *flags: str) -> float:
    port = free_port()
    server = start_tiny_server(port, *flags)
    try:
        probe = (
            "version: 1\nservices:\n  idle: {health: {tcp: {port: 1}}}\nsteps:\n"
            + f"  - probe: {{http: {{url: 'http://127.0.0.1:{port}/health'}}}}\n" * steps
        )
        return await per_step_ms(probe, steps, reports)
    finally:
        server.terminate()
        server.wait(timeout=10)


RECOVERY = """\
version: 1
timeout: 10m
ports: [port]
services:
  svc:
    process:
      command: /bin/sh
      args: [-c, 'exec "$0" "$1" --port "$2" --name svc --unhealthy-until "$(cat "$3")" ${flags}',
             "${python}", "${tiny}", "${port}", "${moment_file}"]
    health: {http: {url: "http://127.0.0.1:${port}/health"}}
steps:
"""


async def recovery_error(restarts: int, reports: Path, ahead_s: float, *flags: str) -> list[float]:
    moment_file = reports / "healthy_at"
    moment_file.write_text("0")
    text = RECOVERY.replace("${tiny}", str(TINY_SERVER)).replace("${moment_file}", str(moment_file))
    text = text.replace("${flags}", " ".join(flags))
    text += "  - restart: svc\n  - expect: {healthy: svc, within: 3s}\n" * restarts
    loaded = scenario(text, "recovery")
    moments: dict[str, float] = {}

    def on_event(event: JournalEvent) -> None:
        if event.kind == "step.started" and event.data.get("kind") == "restart":
            moment = time.monotonic() + ahead_s
            moments[str(event.data["step"])] = moment
            moment_file.write_text(repr(moment))

    async with runtime_deps(MemoryStore()) as deps:
        result = await run_scenario(
            loaded, deps, RunOptions("bench-recovery", 1, reports), listeners=(on_event,)
        )
    if result.exit_code != 0:
        raise RuntimeError(f"recovery scenario failed: {result.reason}")
    errors = []
    for recovery in result.recoveries:
        assert recovery.recovered_at_ms is not None
        measured = result.clock_origin_s + recovery.recovered_at_ms / 1000.0
        errors.append((measured - moments[recovery.step_id]) * 1000.0)
    return errors


def wall_times(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return sorted(times)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--restarts", type=int, default=40)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        reports = Path(scratch)
        noop_ms = asyncio.run(noop_overhead(args.steps, reports))
        probe_ms = {
            server: asyncio.run(probe_overhead(args.steps, reports, *flags))
            for server, flags in SERVERS.items()
        }
        errors = {
            server: asyncio.run(recovery_error(args.restarts, reports, 1.0, *flags))
            for server, flags in SERVERS.items()
        }
    command = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "test_coordinator"]
    help_s = wall_times([*command, "--help"], args.runs)
    validate_s = wall_times(
        [*command, "validate", str(EXAMPLES / "restart-recovery.yaml")], args.runs
    )

    rows = [
        ("engine overhead per no-op step", f"{noop_ms:.3f} ms", "< 0.3 ms", noop_ms < 0.3),
    ]
    for server in SERVERS:
        step_ms, errs = probe_ms[server], errors[server]
        p95 = percentile(errs, 95)
        rows += [
            (
                f"per step with one HTTP probe ({server})",
                f"{step_ms:.3f} ms",
                "< 0.5 ms",
                step_ms < 0.5,
            ),
            (
                f"recovery-time error ({server}), p95 of {len(errs)}",
                f"{p95:.2f} ms",
                "< 5 ms",
                p95 < 5,
            ),
            (
                "  (error median / min / max)",
                f"{statistics.median(errs):.2f} / {min(errs):.2f} / {max(errs):.2f} ms",
                "",
                None,
            ),
        ]
    rows += [
        (
            f"test-coordinator --help, median of {args.runs}",
            f"{statistics.median(help_s):.3f} s",
            "< 0.25 s",
            statistics.median(help_s) < 0.25,
        ),
        ("  (p90)", f"{percentile(help_s, 90):.3f} s", "", None),
        (
            f"test-coordinator validate, median of {args.runs}",
            f"{statistics.median(validate_s):.3f} s",
            "< 0.25 s",
            statistics.median(validate_s) < 0.25,
        ),
        ("  (p90)", f"{percentile(validate_s, 90):.3f} s", "", None),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'figure':<{width}}  {'measured':>24}  {'target':>9}  verdict")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{name:<{width}}  {value:>24}  {target:>9}  {verdict}")
    return 0 if all(row[3] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
