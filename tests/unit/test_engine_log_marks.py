"""Log checks with ``after:``: the byte offset of each log file at a step's start, and
reading only what follows it."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

from engine_fakes import FakeBackend, fake_targets, harness
from engine_scenarios import scenario

from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.log_marks import (
    file_sizes,
    has_text_after,
    lines_before,
    marks_wanted,
    read_log,
)
from test_coordinator.engine.results import RunResult, Status
from test_coordinator.targets.port import TargetError

# -- the offset logic --------------------------------------------------------------


def test_read_log_from_a_line_start_reads_from_there(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\nthree\n")

    assert ("one\ntwo\nthree\n", 0) == read_log(log, 0)
    assert ("two\nthree\n", 4) == read_log(log, 4)
    assert ("", 14) == read_log(log, 14)


def test_read_log_inside_a_line_skips_that_line(tmp_path: Path) -> None:
    """The line being written at the offset began before it: it does not count."""
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\nthree\n")

    assert ("three\n", 8) == read_log(log, 5)
    assert ("three\n", 8) == read_log(log, 7)


def test_read_log_of_a_line_still_unfinished(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"done\nhalf a li")

    assert ("half a li", 5) == read_log(log, 5)
    assert ("", 14) == read_log(log, 7)


def test_read_log_of_a_file_smaller_than_its_mark_reads_all_of_it(tmp_path: Path) -> None:
    """Truncated or replaced since the mark: everything in it was written after."""
    log = tmp_path / "a.log"
    log.write_bytes(b"new\n")

    assert ("new\n", 0) == read_log(log, 100)
    assert has_text_after(log, 100)


def test_read_log_of_a_missing_file_and_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    assert read_log(log, 0) is None
    assert not has_text_after(log, 0)
    log.write_bytes(b"ab\n0123456789\n")

    assert ("012", 3) == read_log(log, 3, limit=3)


def test_has_text_after_and_lines_before(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\nthree\n")

    assert has_text_after(log, 13) and not has_text_after(log, 14)
    assert [0, 0, 1, 2, 3] == [lines_before(log, n) for n in (0, 3, 4, 8, 14)]


def test_file_sizes_count_a_file_not_yet_written_as_empty(tmp_path: Path) -> None:
    (tmp_path / "out.log").write_bytes(b"12345")

    assert {str(tmp_path / "out.log"): 5, str(tmp_path / "err.log"): 0} == file_sizes(
        [tmp_path / "out.log", tmp_path / "err.log"]
    )


def test_only_the_steps_an_after_names_are_marked() -> None:
    loaded = scenario(
        """
        steps:
          - {name: one, restart: api}
          - {name: two, restart: db}
        checks:
          - log: {service: api, present: x, after: one}
          - log: {service: db, absent: y, after: one}
          - log: {service: api, present: z, after: one}
          - log: {service: db, present: x}
        """
    )

    assert {"one": ("api", "db")} == marks_wanted(loaded.model.checks)


# -- in a run: a backend that keeps the output until it is synced, like a container ----


class ContainerLike(FakeBackend):
    """Its service's output reaches the log file only when the engine syncs it (as the
    docker backend copies a container's log): ``ready`` at start, a line per SIGUSR1."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.output: dict[str, list[str]] = {}
        self.failing_syncs = 0

    async def start(self, name: str) -> str:
        identity = await super().start(name)
        self.output.setdefault(name, []).append("ready")
        return identity

    async def signal(self, name: str, signum: int) -> None:
        if signum != signal.SIGUSR1:
            await super().signal(name, signum)
            return
        self.calls.append(("poke", name))
        lines = self.output.setdefault(name, [])
        lines.append(f"poke {sum(line.startswith('poke') for line in lines) + 1}")

    async def sync_logs(self, name: str) -> None:
        self.calls.append(("sync", name))
        if self.failing_syncs:
            self.failing_syncs -= 1
            raise TargetError(f"{name}: the engine did not answer")
        out = self.log_paths(name)[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(f"{line}\n" for line in self.output.get(name, [])))


POKES = """
steps:
  - name: poke
    kill: api
    signal: SIGUSR1
  - name: again
    kill: api
    signal: SIGUSR1
checks:
"""


async def run_container_like(
    tmp_path: Path, checks: str, failing_syncs: int = 0
) -> tuple[RunResult, ContainerLike]:
    h = harness()
    backends: list[ContainerLike] = []

    def targets(specs, scope):  # type: ignore[no-untyped-def]
        backend = ContainerLike(scope.log_dir)
        backend.failing_syncs = failing_syncs
        h.world.backend = backend
        backends.append(backend)
        return fake_targets(backend, specs)

    deps = replace(h.deps, targets_factory=targets)
    result = await run_scenario(scenario(POKES + checks), deps, RunOptions("r", 1, tmp_path))
    return result, backends[0]


async def test_only_lines_written_after_the_step_started_count(tmp_path: Path) -> None:
    """``ready`` reached the engine before step 1 but was never copied to the file: the
    mark copies it first, so it is before the offset."""
    result, backend = await run_container_like(
        tmp_path,
        """
          - log: {service: api, present: "^ready$"}
          - log: {service: api, present: "^ready$", after: poke}
          - log: {service: api, present: "^poke", min_count: 2, after: poke}
          - log: {service: api, present: "^poke", min_count: 2, after: again}
          - log: {service: api, absent: "^poke 1$", after: again}
          - log: {service: api, present: "^poke 2$", after: again}
        """,
    )

    whole, ready, two_after_poke, two_after_again, no_first_poke, second_poke = result.checks
    assert Status.PASSED == whole.status
    assert Status.FAILED == ready.status
    assert ready.detail.startswith("no line matches /^ready$/ in ")
    assert ready.detail.endswith("api.err.log after step 'poke' started")
    assert (Status.PASSED, 2) == (two_after_poke.status, two_after_poke.value)
    assert "2 lines match /^poke/ after step 'poke' started (at least 2)" == two_after_poke.detail
    assert (Status.FAILED, 1) == (two_after_again.status, two_after_again.value)
    assert "after step 'again' started, fewer than 2" in two_after_again.detail
    assert Status.PASSED == no_first_poke.status
    assert "found at api.out.log:3 after step 'again' started: poke 2" == second_poke.detail
    marks = [e.data for e in result.events if e.kind == "log.marked"]
    assert [("1", 6), ("2", 13)] == [
        (m["step"], m["offsets"][str(backend.log_paths("api")[0])]) for m in marks
    ]
    synced_then_poked = [c for c in backend.calls if c[0] in ("sync", "poke")][:4]
    assert [("sync", "api"), ("poke", "api"), ("sync", "api"), ("poke", "api")] == (
        synced_then_poked
    )


async def test_a_mark_that_could_not_be_taken_fails_the_check(tmp_path: Path) -> None:
    result, _ = await run_container_like(
        tmp_path, '  - log: {service: api, present: "^poke", after: poke}\n', failing_syncs=1
    )

    [check] = result.checks
    assert Status.FAILED == check.status
    assert (
        "where the log of api stood when step 'poke' started is unknown: "
        "api: the engine did not answer" == check.detail
    )
    [failed] = [e for e in result.events if e.kind == "log.mark_failed"]
    assert "1" == failed.data["step"]


async def test_absent_after_a_step_with_nothing_written_since(tmp_path: Path) -> None:
    """Nothing written after the step is nothing to judge, as an empty log is."""
    log = tmp_path / "api.log"
    log.write_text("ERROR before the run\n")
    h = harness()
    loaded = scenario(
        """
        steps:
          - {name: quiet, wait: 1ms}
        checks:
          - log: {service: api, absent: "ERROR", after: quiet}
          - log: {service: api, absent: "ERROR", after: quiet}
            allow_empty: true
          - log: {service: api, absent: "ERROR"}
        """,
        services=f"""
services:
  api:
    process: {{command: fake-api}}
    health: {{http: {{url: "fake://api/health"}}}}
    log: {log}
""",
    )

    result = await run_scenario(loaded, h.deps, RunOptions("r", 1, tmp_path))

    empty, allowed, whole = result.checks
    assert Status.FAILED == empty.status
    assert empty.detail == (
        f"nothing to judge: nothing was written to {log} after step 'quiet' started "
        "(allow_empty: true accepts that)"
    )
    assert Status.PASSED == allowed.status
    assert (Status.FAILED, "/ERROR/ must not appear, but api.log:1: ERROR before the run") == (
        whole.status,
        whole.detail,
    )
