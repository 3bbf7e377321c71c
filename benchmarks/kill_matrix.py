"""Kill -9 matrix: SIGKILL the coordinator at a random moment; the run's guard must undo it.

Each run, in its own scratch directory (own DATA_DIR and reports/), starts
``test-coordinator run`` on one of the scenarios under ``benchmarks/kill_matrix/``
(rotating through them: together they pause, SIGKILL, SIGSTOP and restart both a
process service and a container created from ``localhost/tc-httpd:latest``, then
hold the faults for a long wait). Once the run's ``reports/<id>/`` exists, the
coordinator gets SIGKILL at a uniformly random moment of ``--window`` seconds
(seeded RNG), which covers setup, the faults, the wait and the end. Nobody runs
``recover``: within 10 s the guard must have left

* no live (non-zombie) process carrying ``TEST_COORDINATOR_RUN_ID=<run id>``,
* no stopped (state T) process of the run (marked, or in one of its containers),
* no container labelled ``test-coordinator.run-id=<run id>``,
* its own process gone, and the run reported: ``reports/<id>/report.html`` and a
  ``journal.json`` with outcome ``aborted`` (a run that ended before its kill
  moment is counted apart, and must have left nothing either),

with every undo of the journal ``done``. Then ``test-coordinator recover`` in the
same directory must exit 0 and say ``nothing to undo``. Whatever is left after
that is killed (by marker) or removed (by label) and counted as a failure.

    .venv/bin/python benchmarks/kill_matrix.py [--runs 30] [--seed N] [--out FILE]

Needs a Docker API engine (``DOCKER_HOST``, default the Podman socket of
``scripts/docker-engine.sh``) with the local image ``localhost/tc-httpd:latest``.
Prints one line per run, then a table; writes a JSON summary with ``--out``;
exits 1 when any run fails a criterion.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "benchmarks" / "kill_matrix"
CLI = Path(sys.executable).parent / "test-coordinator"
DEFAULT_DOCKER_HOST = "unix:///run/podman/podman.sock"
IMAGE = "localhost/tc-httpd:latest"
RUN_ID_ENV = "TEST_COORDINATOR_RUN_ID"
RUN_LABEL = "test-coordinator.run-id"
RESTORE_DEADLINE_S = 10.0
START_DEADLINE_S = 30.0
POLL_S = 0.02
# The faults each scenario injects, as (fault, kind): the coverage of the matrix.
FAULTS = {
    "a-pause-process-sigkill-docker.yaml": (("pause", "process"), ("SIGKILL", "docker")),
    "b-restart-docker-sigstop-process.yaml": (("restart", "docker"), ("SIGSTOP", "process")),
    "c-restart-process-pause-docker.yaml": (("restart", "process"), ("pause", "docker")),
    "d-sigkill-process-sigstop-docker.yaml": (("SIGKILL", "process"), ("SIGSTOP", "docker")),
}


# -- what is left of a run -----------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start ticks) of a pid from /proc/PID/stat; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _live(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _pids() -> list[int]:
    me = os.getpid()
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != me]


def marked_pids(run_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries the run's marker."""
    wanted = f"{RUN_ID_ENV}={run_id}".encode()
    found = []
    for pid in _pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0") and _live(pid):
            found.append(pid)
    return found


def container_pids(container_ids: set[str]) -> list[int]:
    """Processes in the cgroup of one of these containers (they are visible to the host)."""
    if not container_ids:
        return []
    found = []
    for pid in _pids():
        try:
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if any(cid in cgroup for cid in container_ids) and _live(pid):
            found.append(pid)
    return found


def guard_pids(run_id: str) -> list[int]:
    """The run's guard (``python -m test_coordinator.guard RUN_ID``), if it still runs."""
    wanted = [b"test_coordinator.guard", run_id.encode()]
    found = []
    for pid in _pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(w in argv for w in wanted) and _live(pid):
            found.append(pid)
    return found


def run_containers(client: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's containers as the engine lists them (no inspect: one may vanish meanwhile)."""
    found = client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    return [{"id": c["Id"], "name": (c.get("Names") or ["?"])[0].lstrip("/")} for c in found]


def read_journal(run_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((run_dir / "journal.json").read_text()))
    except (OSError, ValueError):
        return None  # not written yet, or being written


@dataclass
class Seen:
    """One look at what a run left."""

    processes: list[int]
    stopped: list[int]
    containers: list[str]
    guard: list[int]
    outcome: str | None
    finished: bool
    """The journal records ``run.finished``: the run ended before the kill (or without one)."""
    report: bool

    @property
    def nothing_left(self) -> bool:
        """No process, stopped process or container of the run (its guard aside)."""
        return not (self.processes or self.stopped or self.containers)


def look(client: Any, run_id: str, run_dir: Path, container_ids: set[str]) -> Seen:
    containers = run_containers(client, run_id)
    container_ids.update(c["id"] for c in containers)
    processes = marked_pids(run_id)
    stopped = sorted(
        pid
        for pid in {*processes, *container_pids(container_ids)}
        if (_stat(pid) or ("?", 0))[0] == "T"
    )
    journal = read_journal(run_dir)
    return Seen(
        processes=processes,
        stopped=stopped,
        containers=[c["name"] for c in containers],
        guard=guard_pids(run_id),
        outcome=None if journal is None else journal.get("outcome"),
        finished=journal is not None
        and any(e.get("kind") == "run.finished" for e in journal.get("events") or []),
        report=(run_dir / "report.html").exists(),
    )


# -- one run ---------------------------------------------------------------------


@dataclass
class RunResult:
    index: int
    scenario: str
    faults: list[str]
    kill_at_s: float
    run_id: str = ""
    killed: bool = False
    """SIGKILL reached a coordinator still running (False: it had already exited)."""
    ended_first: bool = False
    """The run had ended before the kill moment: the coordinator had exited, or was
    exiting (its journal records ``run.finished`` with the run's own outcome)."""
    coordinator_exit: int | None = None
    outcome: str | None = None
    restored: bool = False
    restore_s: float | None = None
    """From the kill to all restored: nothing left, the guard gone, the run reported."""
    nothing_left_s: float | None = None
    """From the kill to the first look that found no process, stopped process or container."""
    verified: bool = False
    undone_by_guard: list[str] = field(default_factory=list)
    in_progress: str = ""
    leftover_processes: list[int] = field(default_factory=list)
    leftover_stopped: list[int] = field(default_factory=list)
    leftover_containers: list[str] = field(default_factory=list)
    guard_left: list[int] = field(default_factory=list)
    reported: bool = False
    recover_ok: bool = False
    recover_output: str = ""
    cleanup: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def coordinator_env(workdir: Path, docker_host: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TC_VAR_", "POSTGRES_", "REDIS_", "SERVICE_", RUN_ID_ENV))
    }
    env.update(
        {
            "DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": "WARNING",
            "COLUMNS": "200",
            "DOCKER_HOST": docker_host,
        }
    )
    return env


def wait_run_dir(workdir: Path, coordinator: subprocess.Popen[bytes]) -> Path:
    reports = workdir / "reports"
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        found = [p for p in reports.iterdir() if p.is_dir()] if reports.is_dir() else []
        if found:
            return found[0]
        if coordinator.poll() is not None:
            raise RuntimeError(f"the coordinator exited ({coordinator.returncode}) before starting")
        time.sleep(0.005)
    raise RuntimeError(f"no reports/<run id>/ within {START_DEADLINE_S:g} s")


def one_run(
    index: int, scenario: Path, kill_at_s: float, base: Path, client: Any, docker_host: str
) -> RunResult:
    result = RunResult(
        index,
        scenario.name,
        [f"{fault}/{kind}" for fault, kind in FAULTS.get(scenario.name, ())],
        kill_at_s,
    )
    workdir = base / f"run-{index:02d}"
    workdir.mkdir()
    env = coordinator_env(workdir, docker_host)
    container_ids: set[str] = set()
    with (workdir / "coordinator.log").open("wb") as log:
        coordinator = subprocess.Popen(
            [str(CLI), "run", str(scenario)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        run_dir = wait_run_dir(workdir, coordinator)
        result.run_id = run_dir.name
        started = time.monotonic()
        kill_at = started + kill_at_s
        while time.monotonic() < kill_at:
            if kill_at - time.monotonic() > 0.1:  # note its containers' ids while they exist
                container_ids.update(c["id"] for c in run_containers(client, result.run_id))
            time.sleep(max(0.0, min(kill_at - time.monotonic(), 0.25)))
        if coordinator.poll() is None:
            coordinator.send_signal(signal.SIGKILL)
            result.killed = True
        killed_at = time.monotonic()
        result.coordinator_exit = coordinator.wait(10)
        watch(result, client, run_dir, container_ids, killed_at)
        check_journal(result, run_dir)
        recover(result, workdir, env)
    except Exception as exc:  # a broken run is a failed run, never a crashed matrix
        result.failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        result.cleanup = clean_up(coordinator, client, result.run_id)
        if result.cleanup:
            result.failures.append("cleanup needed: " + "; ".join(result.cleanup))
    return result


def watch(
    result: RunResult, client: Any, run_dir: Path, container_ids: set[str], killed_at: float
) -> None:
    """Poll until nothing of the run is left and it is reported, or the deadline passes."""
    deadline = killed_at + RESTORE_DEADLINE_S
    while True:
        seen = look(client, result.run_id, run_dir, container_ids)
        now = time.monotonic()
        if seen.nothing_left and result.nothing_left_s is None:
            result.nothing_left_s = now - killed_at
        ended_first = not result.killed or (seen.finished and seen.outcome != "aborted")
        reported = seen.report and seen.outcome is not None
        if not ended_first:
            reported = reported and seen.outcome == "aborted"
        if seen.nothing_left and not seen.guard and reported:
            result.restored, result.restore_s = True, now - killed_at
            break
        if now >= deadline:
            break
        time.sleep(POLL_S)
    result.outcome = seen.outcome
    result.ended_first = ended_first
    result.reported = seen.report and seen.outcome is not None
    result.leftover_processes = seen.processes
    result.leftover_stopped = seen.stopped
    result.leftover_containers = seen.containers
    result.guard_left = seen.guard
    if not result.restored:
        what = []
        if seen.processes:
            what.append(f"marked processes {seen.processes}")
        if seen.stopped:
            what.append(f"stopped processes {seen.stopped}")
        if seen.containers:
            what.append(f"containers {seen.containers}")
        if seen.guard:
            what.append(f"guard still running {seen.guard}")
        if not seen.report:
            what.append("no report.html")
        if seen.outcome is None:
            what.append("no journal.json")
        elif not ended_first and seen.outcome != "aborted":
            what.append(f"outcome {seen.outcome!r}, not 'aborted'")
        result.failures.append(
            f"not restored {RESTORE_DEADLINE_S:g} s after the kill: " + ", ".join(what)
        )


def check_journal(result: RunResult, run_dir: Path) -> None:
    journal = read_journal(run_dir)
    if journal is None:
        result.failures.append("no readable journal.json")
        return
    undos = journal.get("undos") or []
    result.verified = all(u.get("status") == "done" for u in undos)
    if not result.verified:
        bad = [f"{u.get('action')} {u.get('service')}: {u.get('status')}" for u in undos]
        result.failures.append(f"undos not all done: {bad}")
    events = journal.get("events") or []
    recovered = [e for e in events if e.get("kind") == "run.recovered"]
    if recovered:
        # The faults still in effect at the kill: their undos (a killed service's start is
        # superseded by removing it with the run, but it was pending all the same).
        result.undone_by_guard = [
            f"{u['action']} {u['service']}"
            for u in recovered[-1]["data"].get("undos", [])
            if u.get("action") != "remove"
        ]
    # Where the kill fell, as the stored journal says (its events are flushed in batches,
    # up to a second late, so this can name the step before the one in progress).
    steps = [journal.get("setup") or {}, *(journal.get("steps") or [])]
    died = [s for s in steps if "died" in str(s.get("detail"))]
    if died:
        result.in_progress = str(died[-1].get("name"))
    elif not result.ended_first and not journal.get("steps"):
        result.in_progress = "before the first step"
    elif not result.ended_first:
        result.in_progress = "between steps, checks or cleanup"


def recover(result: RunResult, workdir: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(CLI), "recover"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result.recover_output = (done.stdout + done.stderr).strip()
    result.recover_ok = done.returncode == 0 and "nothing to undo" in done.stdout
    if not result.recover_ok:
        result.failures.append(f"recover exit {done.returncode}: {result.recover_output!r}")


def clean_up(coordinator: subprocess.Popen[bytes], client: Any, run_id: str) -> list[str]:
    """Kill and remove whatever the run left; say what had to be done (empty: nothing)."""
    done = []
    if coordinator.poll() is None:
        with_suppressed(lambda: os.killpg(coordinator.pid, signal.SIGKILL))
        with_suppressed(lambda: coordinator.wait(10))
        done.append(f"killed the coordinator {coordinator.pid}")
    if not run_id:
        return done
    for pid in guard_pids(run_id):
        with_suppressed(lambda p=pid: os.kill(p, signal.SIGKILL))
        done.append(f"killed the guard {pid}")
    for pid in marked_pids(run_id):
        with_suppressed(lambda p=pid: os.kill(p, signal.SIGKILL))
        with_suppressed(lambda p=pid: os.kill(p, signal.SIGCONT))
        done.append(f"killed marked process {pid}")
    try:
        for container in run_containers(client, run_id):
            with_suppressed(lambda c=container: client.api.remove_container(c["id"], force=True))
            done.append(f"removed container {container['name']}")
    except Exception as exc:
        done.append(f"could not list the run's containers: {exc}")
    return done


def with_suppressed(action: Any) -> None:
    try:
        action()
    except Exception:  # cleanup is best effort; what is left shows in the next look
        return


# -- the matrix ------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(
    results: list[RunResult], seed: int, window_s: float, total_s: float
) -> dict[str, Any]:
    killed = [r for r in results if not r.ended_first]
    times = [r.restore_s for r in killed if r.restored and r.restore_s is not None]
    emptied = [r.nothing_left_s for r in killed if r.restored and r.nothing_left_s is not None]
    coverage: dict[str, int] = {}
    for r in results:
        for fault in r.faults:
            coverage[fault] = coverage.get(fault, 0) + 1
    mid_fault: dict[str, int] = {}
    for r in killed:
        for undo in r.undone_by_guard:
            mid_fault[undo] = mid_fault.get(undo, 0) + 1
    return {
        "runs": len(results),
        "seed": seed,
        "window_s": window_s,
        "killed_mid_run": len(killed),
        "finished_before_kill": len(results) - len(killed),
        "killed_with_a_fault_in_effect": sum(1 for r in killed if r.undone_by_guard),
        "restored_by_guard_within_10s": sum(1 for r in killed if r.restored),
        "finished_runs_clean": sum(1 for r in results if r.ended_first and r.restored),
        "verified_all_undos_done": sum(1 for r in results if r.verified),
        "leftover_processes": sum(len(r.leftover_processes) for r in results),
        "leftover_stopped_processes": sum(len(r.leftover_stopped) for r in results),
        "leftover_containers": sum(len(r.leftover_containers) for r in results),
        "aborted_with_report": sum(1 for r in killed if r.reported and r.outcome == "aborted"),
        "recover_exit0_nothing_to_undo": sum(1 for r in results if r.recover_ok),
        "cleanup_needed": sum(1 for r in results if r.cleanup),
        "kill_to_restored_s": {
            "p50": percentile(times, 0.5),
            "p95": percentile(times, 0.95),
            "max": max(times) if times else None,
        },
        "kill_to_nothing_left_s": {
            "p50": percentile(emptied, 0.5),
            "p95": percentile(emptied, 0.95),
            "max": max(emptied) if emptied else None,
        },
        "faults_covered_runs": dict(sorted(coverage.items())),
        "undone_by_guard_counts": dict(sorted(mid_fault.items())),
        "failed_runs": [r.index for r in results if not r.ok],
        "total_s": round(total_s, 1),
        "per_run": [asdict(r) for r in results],
    }


def print_table(summary: dict[str, Any]) -> None:
    n = summary["runs"]
    killed = summary["killed_mid_run"]
    times = summary["kill_to_restored_s"]
    emptied = summary["kill_to_nothing_left_s"]

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    rows = [
        ("runs", f"{n}"),
        ("killed mid-run / finished before the kill", f"{killed} / {n - killed}"),
        ("  of the killed: with a fault in effect", f"{summary['killed_with_a_fault_in_effect']}"),
        ("  of the finished: left nothing, reported", f"{summary['finished_runs_clean']}"),
        (
            "restored by the guard within 10 s",
            f"{summary['restored_by_guard_within_10s']}/{killed}",
        ),
        ("verified (every undo done in the journal)", f"{summary['verified_all_undos_done']}/{n}"),
        ("leftover processes (marked, live)", f"{summary['leftover_processes']}"),
        ("leftover stopped (state T) processes", f"{summary['leftover_stopped_processes']}"),
        ("leftover containers (by run label)", f"{summary['leftover_containers']}"),
        ("aborted runs with report.html", f"{summary['aborted_with_report']}/{killed}"),
        ("recover: exit 0 and nothing to undo", f"{summary['recover_exit0_nothing_to_undo']}/{n}"),
        ("cleanup needed after the checks", f"{summary['cleanup_needed']}"),
        (
            "kill -> all restored p50 / p95 / max",
            f"{secs(times['p50'])} / {secs(times['p95'])} / {secs(times['max'])}",
        ),
        (
            "  of which: kill -> nothing left p50 / p95 / max",
            f"{secs(emptied['p50'])} / {secs(emptied['p95'])} / {secs(emptied['max'])}",
        ),
        (
            "faults covered (runs)",
            ", ".join(f"{k} {v}" for k, v in summary["faults_covered_runs"].items()),
        ),
        (
            "undone by the guard (kills mid-fault)",
            ", ".join(f"{k} {v}" for k, v in summary["undone_by_guard_counts"].items()) or "-",
        ),
        ("total time", f"{summary['total_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def docker_client(docker_host: str) -> Any:
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=30)
    client.ping()
    client.images.get(IMAGE)  # never pulled: it must be there
    return client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON summary here")
    parser.add_argument(
        "--window",
        type=float,
        default=10.5,
        help="kill moments are uniform in [0, WINDOW] s after reports/<id>/ appears "
        "(the scenarios take about 9.5 s: setup ~1 s, faults, an 8 s hold, the end)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 2**31
    rng = random.Random(seed)
    docker_host = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    scenarios = sorted(SCENARIOS.glob("*.yaml"))
    if not scenarios:
        print(f"kill_matrix: no scenarios under {SCENARIOS}", file=sys.stderr)
        return 2
    client = docker_client(docker_host)
    base = Path(tempfile.mkdtemp(prefix="kill-matrix-"))
    print(f"kill matrix: {args.runs} runs, seed {seed}, window {args.window:g} s, dir {base}")
    results: list[RunResult] = []
    started = time.monotonic()
    try:
        for index in range(1, args.runs + 1):
            scenario = scenarios[(index - 1) % len(scenarios)]
            kill_at = rng.uniform(0.0, args.window)
            print(f"run {index:2d} {scenario.stem}: kill at {kill_at:6.3f} s", end="", flush=True)
            result = one_run(index, scenario, kill_at, base, client, docker_host)
            results.append(result)
            print(" " + describe(result), flush=True)
    except KeyboardInterrupt:
        print("\nkill matrix: interrupted", file=sys.stderr)
    total_s = time.monotonic() - started
    summary = summarize(results, seed, args.window, total_s)
    print_table(summary)
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"summary: {args.out}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"FAILED run {r.index} ({r.scenario}, run {r.run_id}, kill at {r.kill_at_s:.3f} s):")
        for failure in r.failures:
            print(f"  - {failure}")
    if failed or len(results) < args.runs:
        print(f"kill matrix: FAILED ({len(failed)} of {len(results)} runs); scratch kept: {base}")
        return 1
    if args.keep:
        print(f"scratch kept: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    print(f"kill matrix: PASSED, {len(results)} runs in {total_s:.1f} s")
    return 0


def describe(r: RunResult) -> str:
    if not r.run_id:
        return "-> " + "; ".join(r.failures)
    if not r.ended_first:
        state = "killed"
    elif r.killed:
        state = "ended before the kill (killed while exiting)"
    else:
        state = "ended before the kill"
    where = f", in progress: {r.in_progress}" if r.in_progress else ""
    undone = f", guard undid {', '.join(r.undone_by_guard)}" if r.undone_by_guard else ""
    restored = f"restored in {r.restore_s:.2f} s" if r.restored else "NOT restored"
    verdict = "ok" if r.ok else "FAILED"
    return f"({r.run_id}) {state}{where}{undone}; {r.outcome}; {restored}; {verdict}"


if __name__ == "__main__":
    sys.exit(main())
