"""The scenario commands end to end: real processes, real SQLite store, real reports."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import junitparser
import pytest

from e2e.cli_harness import EXAMPLES, Cli
from e2e.procs import kill_group, pids_with_arg, state
from support.service_process import start_service
from test_coordinator.targets.process import procfs

pytestmark = pytest.mark.slow


def journal_of(cli: Cli) -> dict[str, Any]:
    [journal] = list((cli.workdir / "reports").glob("*/journal.json"))
    data: dict[str, Any] = json.loads(journal.read_text())
    return data


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling a condition, with a deadline


def started_pids(journal: dict[str, Any]) -> list[int]:
    return [e["data"]["pid"] for e in journal["events"] if e["kind"] == "service.started"]


def test_restart_example_passes(cli: Cli, example: Callable[[str], str]) -> None:
    """A new user's first run: two services, a restart, recovery within 2 s."""
    done = cli.run("run", example("restart-recovery.yaml"))

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "PASSED restart-recovery" in done.stdout
    journal = journal_of(cli)
    assert "passed" == journal["outcome"]
    [recovery] = journal["recoveries"]
    assert 0 < recovery["recovery_ms"] < 2000
    assert all(
        procfs.read_stat(pid) is None or procfs.read_stat(pid).is_zombie
        for pid in started_pids(journal)
    )
    xml = junitparser.JUnitXml.fromfile(str(next((cli.workdir / "reports").glob("*/junit.xml"))))
    [suite] = list(xml)
    assert "restart-recovery" == suite.name
    names = [case.name for case in suite]
    assert "step 1: restart orders" in names and "check 1: orders recovers quickly" in names
    assert all(case.is_passed for case in suite)


def test_restart_example_fails_with_a_1ms_limit(cli: Cli, example: Callable[[str], str]) -> None:
    done = cli.run("run", example("restart-recovery.yaml"), "--var", "max_recovery_ms=1")

    assert 1 == done.returncode, done.stdout + done.stderr
    assert "FAILED restart-recovery" in done.stdout
    assert "healthy again after" in done.stdout and "more than the allowed 1ms" in done.stdout
    xml = junitparser.JUnitXml.fromfile(str(next((cli.workdir / "reports").glob("*/junit.xml"))))
    [suite] = list(xml)
    [check] = [case for case in suite if case.name.startswith("check 1")]
    [failure] = check.result
    assert isinstance(failure, junitparser.Failure)
    assert "more than the allowed 1ms" in failure.message
    assert 1 == suite.failures


def test_always_breaks_mid_run_and_undo_runs(cli: Cli, example: Callable[[str], str]) -> None:
    """The run fails when orders turns unhealthy, not after the 10 s wait; prices is resumed."""
    started = time.monotonic()
    done = cli.run("run", example("always-breaks.yaml"))

    assert 1 == done.returncode, done.stdout + done.stderr
    assert time.monotonic() - started < 8.0
    journal = journal_of(cli)
    kinds = [e["kind"] for e in journal["events"]]
    violated = kinds.index("condition.violated")
    steps = {s["name"]: s for s in journal["steps"]}
    assert "error" == steps["this wait is cut short"]["status"]
    assert (
        steps["this wait is cut short"]["ended_at_ms"]
        - steps["this wait is cut short"]["started_at_ms"]
        < 2000
    )
    assert "skipped" == steps["resume prices"]["status"]
    assert [("resume", "done"), ("remove", "done"), ("remove", "done")] == [
        (u["action"], u["status"]) for u in journal["undos"]
    ]
    assert violated < kinds.index("undo.finished")
    assert all(not procfs.is_alive(pid) for pid in started_pids(journal))


def _guards_of(cli: Cli) -> list[int]:
    """The guard processes started by runs in this test's working directory."""
    found = []
    for pid in pids_with_arg("test_coordinator.guard"):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == cli.workdir:
                found.append(pid)
        except OSError:
            continue
    return found


@contextmanager
def _coordinator_killed_while_paused(
    cli: Cli, example: Callable[[str], str], *, guard_too: bool
) -> Iterator[int]:
    """SIGKILL a coordinator while it holds a service paused (first its guard, if
    ``guard_too``); yield the paused pid."""
    tag = f"paused-{uuid.uuid4().hex[:8]}"
    coordinator = cli.popen(
        "run",
        example("pause-resume.yaml"),
        "--var",
        "hold=60s",
        "--var",
        f"tag={tag}",
        "--var",
        "max_recovery=90s",
    )
    service_pid = None
    try:

        def paused() -> bool:
            pids = pids_with_arg(tag)
            return bool(pids) and state(pids[0]) == "T"

        wait_for(paused, "the service to be paused")
        [service_pid] = pids_with_arg(tag)
        if guard_too:
            [guard] = _guards_of(cli)
            os.kill(guard, signal.SIGKILL)
            wait_for(lambda: not _guards_of(cli), "the guard to be gone")
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=10)
        yield service_pid
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(timeout=10)
        if coordinator.stdout is not None:
            coordinator.stdout.close()
        for pid in [*pids_with_arg(tag), *([service_pid] if service_pid else [])]:
            kill_group(pid)


def test_sigkill_the_guard_undoes_the_run_within_seconds(
    cli: Cli, example: Callable[[str], str]
) -> None:
    """Nobody runs recover: the run's guard removes the paused service (which the run
    started), marks the run aborted and writes its reports; recover then finds nothing."""
    with _coordinator_killed_while_paused(cli, example, guard_too=False) as service_pid:
        killed = time.monotonic()
        wait_for(lambda: not procfs.is_alive(service_pid), "the guard to remove it", 10.0)
        restored_s = time.monotonic() - killed
        wait_for(lambda: _statuses(cli) == ["aborted"], "the run to be marked aborted", 10.0)
        [run] = asyncio.run(_runs(cli))
        report = cli.workdir / "reports" / run.run_id / "report.html"
        wait_for(report.exists, "the aborted run's report", 10.0)
        journal = json.loads((report.parent / "journal.json").read_text())
        assert "aborted" == journal["outcome"]
        assert {"resume", "remove"} <= {u["action"] for u in journal["undos"]}
        assert all("done" == u["status"] for u in journal["undos"]), journal["undos"]
        assert "the coordinator died during this step" in json.dumps(journal["steps"])
        done = cli.run("recover")
        assert 0 == done.returncode and "nothing to undo" in done.stdout, done.stdout
        assert restored_s < 10.0


def test_sigkill_with_the_guard_gone_then_recover(cli: Cli, example: Callable[[str], str]) -> None:
    """Guard and coordinator both killed: the service stays stopped until recover, which
    resumes and removes it, verified, and reports the aborted run."""
    with _coordinator_killed_while_paused(cli, example, guard_too=True) as service_pid:
        assert "T" == state(service_pid)
        done = cli.run("recover")

        assert 0 == done.returncode, done.stdout + done.stderr
        assert "resume" in done.stdout and "nothing of it is stopped [done]" in done.stdout
        assert f"stopped (pid {service_pid}) [done]" in done.stdout
        assert "marked aborted; reports written" in done.stdout
        assert not procfs.is_alive(service_pid)
        assert ["aborted"] == _statuses(cli)
        again = cli.run("recover")
        assert "nothing to undo" in again.stdout


def test_serve_undoes_what_a_killed_coordinator_left(
    cli: Cli, example: Callable[[str], str]
) -> None:
    """The next start of the service undoes the run before it is ready."""
    with _coordinator_killed_while_paused(cli, example, guard_too=True) as service_pid:
        service = start_service(cli.workdir, {"LOG_LEVEL": "INFO"})
        try:
            assert not procfs.is_alive(service_pid)
            assert ["aborted"] == _statuses(cli)
        finally:
            service.stop()
        assert "undid what a killed coordinator left behind" in service.log()


def _statuses(cli: Cli) -> list[str]:
    return [run.status.value for run in asyncio.run(_runs(cli))]


async def _runs(cli: Cli) -> list[Any]:
    from test_coordinator.adapters.storage import DataAdapter
    from test_coordinator.config import load_settings

    adapter = DataAdapter.from_settings(load_settings(data_dir=cli.data_dir))
    await adapter.start()
    try:
        return await adapter.runs.list_runs()
    finally:
        await adapter.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_a_closed_terminal_interrupts_undoes_and_exits_130(
    cli: Cli, example: Callable[[str], str], stop_signal: signal.Signals
) -> None:
    with _signalled_while_paused(cli, example, "60s", stop_signal) as (coordinator, output, tag):
        assert 130 == coordinator.returncode, output
        assert "undo resume prices done" in output
        assert [] == pids_with_arg(tag)
        assert "interrupted" == journal_of(cli)["outcome"]


def test_ctrl_z_does_not_suspend_a_run_with_its_faults_in_place(
    cli: Cli, example: Callable[[str], str]
) -> None:
    """SIGTSTP (Ctrl-Z) would leave the paused service paused for as long as the shell
    keeps the coordinator stopped: the run says so and goes on."""
    with _signalled_while_paused(cli, example, "1s", signal.SIGTSTP) as (coordinator, output, _):
        assert 0 == coordinator.returncode, output
        assert "SIGTSTP: a run is not suspended" in output
        assert "passed" == journal_of(cli)["outcome"]


@contextmanager
def _signalled_while_paused(
    cli: Cli, example: Callable[[str], str], hold: str, sent: signal.Signals
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """Run pause-resume.yaml, send ``sent`` once its service is paused; the ended
    coordinator, its output and the run's tag. What the run left is killed after."""
    tag = f"sig-{uuid.uuid4().hex[:8]}"
    coordinator = cli.popen(
        "run", example("pause-resume.yaml"), "--var", f"hold={hold}", "--var", f"tag={tag}"
    )
    try:
        wait_for(lambda: any(state(p) == "T" for p in pids_with_arg(tag)), "the pause")
        coordinator.send_signal(sent)
        output, _ = coordinator.communicate(timeout=30)
        yield coordinator, output, tag
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.communicate(timeout=10)
        for pid in pids_with_arg(tag):
            kill_group(pid)


def test_validate_reports_every_problem_with_lines(cli: Cli) -> None:
    scenario = cli.workdir / "typo.yaml"
    scenario.write_text(
        "version: 1\n"
        "services:\n"
        "  api:\n"
        "    process: {command: python}\n"
        "    health: {http: {url: 'http://127.0.0.1:1/health'}}\n"
        "steps:\n"
        "  - restart: api\n"
        "    timout: 5s\n"
        "  - expect: {healthy: api, within: soon}\n"
    )

    done = cli.run("validate", str(scenario))

    assert 2 == done.returncode
    assert (
        f"{scenario}:8:5: steps[0].timout: unknown key 'timout'; did you mean 'timeout'?"
        in done.stdout
    )
    assert f"{scenario}:9:36: steps[1].expect.within: 'soon' is not a duration" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_run_directory_writes_one_junit_with_a_suite_per_scenario(cli: Cli) -> None:
    folder = cli.workdir / "suite"
    folder.mkdir()
    for name in ("restart-recovery.yaml", "capture.yaml", "tiny_server.py"):
        shutil.copy(EXAMPLES / name, folder / name)

    done = cli.run("run", str(folder), "--seed", "3")

    assert 0 == done.returncode, done.stdout + done.stderr
    xml = junitparser.JUnitXml.fromfile(str(cli.workdir / "reports" / "junit.xml"))
    assert ["capture", "restart-recovery"] == sorted(suite.name for suite in xml)
    assert 2 == len(list((cli.workdir / "reports").glob("*/journal.json")))


def test_examples_validate(cli: Cli) -> None:
    done = cli.run("validate", str(EXAMPLES))

    assert 0 == done.returncode, done.stdout + done.stderr
    assert done.stdout.count(": ok (") == len(list(EXAMPLES.glob("*.yaml")))


def test_schema_is_json_schema(cli: Cli) -> None:
    done = cli.run("schema")

    assert 0 == done.returncode
    schema = json.loads(done.stdout)
    assert "https://json-schema.org/draft/2020-12/schema" == schema["$schema"]
    assert {"version", "services", "steps"} <= set(schema["properties"])


def test_a_reader_that_stops_reading_does_not_stop_the_runs(cli: Cli) -> None:
    """``run a b | head -1``: no traceback, every run goes on to its undo and its reports,
    and the exit code is theirs."""
    folder = cli.workdir / "two"
    folder.mkdir()
    for name in ("restart-recovery.yaml", "pause-resume.yaml", "tiny_server.py"):
        shutil.copy(EXAMPLES / name, folder / name)
    import subprocess

    from e2e.cli_harness import command

    with subprocess.Popen(
        [*command(), "run", str(folder)],
        cwd=cli.workdir,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # as `| head -1` does
        errors = process.stderr.read().decode()
        code = process.wait(timeout=120)

    assert 0 == code, errors
    assert "Traceback" not in errors and "Broken pipe" not in errors, errors
    journals = [json.loads(p.read_text()) for p in (cli.workdir / "reports").glob("*/journal.json")]
    assert ["passed", "passed"] == [j["outcome"] for j in journals]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_output_that_cannot_be_written_is_one_line_and_the_runs_go_on(cli: Cli) -> None:
    """``run > /dev/full`` (a full disk): one line on stderr, no traceback, the run goes
    on to its reports, and its exit code is the verdict's. A command whose output is its
    product (validate, plan, schema, --help) says the same and exits 1."""
    import subprocess

    from e2e.cli_harness import command

    for name in ("restart-recovery.yaml", "tiny_server.py"):
        shutil.copy(EXAMPLES / name, cli.workdir / name)

    def to_full_device(*args: str) -> tuple[int, str]:
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [*command(), *args],
                cwd=cli.workdir,
                env=cli.env,
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
                check=False,
            )
        return done.returncode, done.stderr

    code, errors = to_full_device("run", "restart-recovery.yaml")

    assert 0 == code, errors
    assert "Traceback" not in errors, errors
    assert 1 == errors.count("cannot write to standard output: No space left on device"), errors
    [journal] = list((cli.workdir / "reports").glob("*/journal.json"))
    assert "passed" == json.loads(journal.read_text())["outcome"]
    assert (journal.parent / "report.html").is_file()

    for args in (
        ("validate", "restart-recovery.yaml"),
        ("plan", "restart-recovery.yaml"),
        ("schema",),
        ("--help",),
    ):
        code, errors = to_full_device(*args)

        assert 1 == code, (args, errors)
        assert "Traceback" not in errors, (args, errors)
        assert errors.startswith("test-coordinator: cannot write to standard output:"), errors


def test_a_scenario_file_whose_name_is_not_utf8_runs_and_is_reported(cli: Cli) -> None:
    """The system gives such a name in bytes: the run passes and its reports are written
    (the name with a replacement character), instead of an internal error at the end."""
    odd = os.fsdecode(b"restart-\xff.yaml")
    shutil.copy(EXAMPLES / "restart-recovery.yaml", cli.workdir / odd)
    shutil.copy(EXAMPLES / "tiny_server.py", cli.workdir / "tiny_server.py")

    done = cli.run("run", odd)

    assert 0 == done.returncode, done.stdout + done.stderr
    [journal_path] = list((cli.workdir / "reports").glob("*/journal.json"))
    journal = json.loads(journal_path.read_text(encoding="utf-8"))
    assert journal["file"].endswith("restart-?.yaml")
    assert (journal_path.parent / "report.html").is_file()
    assert junitparser.JUnitXml.fromfile(str(journal_path.parent / "junit.xml"))


def test_odd_paths_get_one_line_each_and_a_usage_exit_code(cli: Cli, tmp_path: Path) -> None:
    """A file name too long for the system, and a reports folder that is a file or cannot
    be made: one line naming it and exit 2, before anything runs, no traceback."""
    long_name = "a" * 300 + ".yaml"
    shutil.copy(EXAMPLES / "restart-recovery.yaml", cli.workdir / "ok.yaml")
    shutil.copy(EXAMPLES / "tiny_server.py", cli.workdir / "tiny_server.py")

    too_long = cli.run("validate", long_name)
    into_a_file = cli.run("run", "ok.yaml", "--reports-dir", "ok.yaml")
    nowhere = cli.run("run", "ok.yaml", "--reports-dir", "/proc/reports")

    assert 2 == too_long.returncode
    assert f"{long_name}:1:1: cannot read: File name too long" in too_long.stdout
    assert 2 == into_a_file.returncode
    assert "--reports-dir ok.yaml: is not a directory" in into_a_file.stdout
    assert 2 == nowhere.returncode
    assert "--reports-dir /proc/reports: cannot be created" in nowhere.stdout
    for done in (too_long, into_a_file, nowhere):
        assert "Traceback" not in done.stdout + done.stderr
    assert not (cli.workdir / "reports").exists()  # nothing ran


SAYS_HELLO = """
version: 1
name: says-hello
timeout: 30s
vars: {who: nobody}
services:
  web: {health: {tcp: {port: 1}}}
steps:
  - name: "hello ${who}"
    wait: 1ms
"""


def test_an_output_that_cannot_show_a_character_or_is_closed_does_not_fail_the_run(
    cli: Cli,
) -> None:
    import subprocess

    from e2e.cli_harness import command

    (cli.workdir / "hello.yaml").write_text(SAYS_HELLO)
    ascii_only = subprocess.run(
        [*command(), "run", "hello.yaml", "--var", "who=é"],
        cwd=cli.workdir,
        env={**cli.env, "PYTHONIOENCODING": "ascii"},
        capture_output=True,
        timeout=120,
        check=False,
    )
    closed = subprocess.run(
        [*command(), "run", "hello.yaml"],
        cwd=cli.workdir,
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.close(1),
    )

    assert 0 == ascii_only.returncode, ascii_only.stdout + ascii_only.stderr
    assert b"hello \\xe9" in ascii_only.stdout
    assert 0 == closed.returncode, closed.stderr
    assert 2 == len(list((cli.workdir / "reports").glob("*/journal.json")))
