"""Network faults through the CLI, measured from the client side: the load's own requests
through the proxy; proof of what each fault did; the undo after a kill -9 of the coordinator."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from e2e.cli_harness import EXAMPLES, Cli
from e2e.procs import kill_group, pids_with_arg
from test_coordinator.netfault.paths import control_socket

pytestmark = pytest.mark.slow

TWO_SERVICES = """
version: 1
name: {name}
timeout: 1m
ports: [a_port, b_port, to_a_port, to_b_port]
services:
  a:
    process:
      command: ${{python}}
      args: [tiny_server.py, --port, "${{a_port}}", --name, a]
      cwd: {examples}
    health: {{http: {{url: "http://127.0.0.1:${{a_port}}/health"}}}}
  b:
    process:
      command: ${{python}}
      args: [tiny_server.py, --port, "${{b_port}}", --name, b]
      cwd: {examples}
    health: {{http: {{url: "http://127.0.0.1:${{b_port}}/health"}}}}
  to-a:
    proxy: {{listen: "${{to_a_port}}", upstream: "127.0.0.1:${{a_port}}", to: a, clients: [b]}}
    depends_on: [a]
  to-b:
    proxy: {{listen: "${{to_b_port}}", upstream: "127.0.0.1:${{b_port}}", to: b, clients: [a]}}
    depends_on: [b]
steps:
{steps}
checks:
{checks}
"""


def scenario(cli: Cli, steps: str, checks: str = "  []", name: str = "net") -> str:
    path = cli.workdir / f"{name}.yaml"
    path.write_text(TWO_SERVICES.format(name=name, examples=EXAMPLES, steps=steps, checks=checks))
    return str(path)


def journal_of(cli: Cli) -> dict[str, Any]:
    [journal] = list((cli.workdir / "reports").glob("*/journal.json"))
    data: dict[str, Any] = json.loads(journal.read_text())
    return data


def cleared(journal: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["data"] for e in journal["events"] if e["kind"] == "network.fault_cleared"]


def test_latency_example_hurts_then_heals(cli: Cli, example: Callable[[str], str]) -> None:
    done = cli.run("run", example("network-latency.yaml"))

    assert 0 == done.returncode, done.stdout + done.stderr
    journal = journal_of(cli)
    [fault] = cleared(journal)
    assert fault["stats"]["connections"] > 0 and fault["stats"]["bytes_delayed"] > 0
    assert not control_socket(journal["run_id"], "prices-link").parent.exists(), "left behind"


def test_a_partition_cuts_both_ways_at_once_and_heals(cli: Cli) -> None:
    """Loads from each side through the other side's proxy: both fail while cut, both
    are whole again after the heal (the partition is one step, set on both proxies)."""
    steps = """
  - name: a calls b
    background: {load: {url: "http://127.0.0.1:${to_b_port}/", rate: 40, timeout: 100ms}}
  - name: b calls a
    background: {load: {url: "http://127.0.0.1:${to_a_port}/", rate: 40, timeout: 100ms}}
  - wait: 500ms
  - name: split
    partition: {between: [a], and: [b]}
  - wait: 1s
  - name: mend
    heal: [to-a, to-b]
  - wait: 300ms
  - name: whole
    wait: 1s
"""
    checks = """
  - load: {generator: a calls b, window: {around: split, after: 900ms}, min_error_rate: 0.9}
  - load: {generator: b calls a, window: {around: split, after: 900ms}, min_error_rate: 0.9}
  - load: {generator: a calls b, window: {around: whole, after: 1s}, max_error_rate: 0}
  - load: {generator: b calls a, window: {around: whole, after: 1s}, max_error_rate: 0}
"""
    done = cli.run("run", scenario(cli, steps, checks))

    assert 0 == done.returncode, done.stdout + done.stderr
    faults = cleared(journal_of(cli))
    assert {"to-a", "to-b"} == {f["service"] for f in faults}
    assert all(f["stats"]["connections"] > 0 for f in faults), faults


@pytest.mark.parametrize("allowed", [False, True])
def test_a_fault_that_touched_nothing_fails_the_run(cli: Cli, allowed: bool) -> None:
    steps = f"""
  - name: nobody is listening
    network: to-a
    reset: {{}}
    allow_untouched: {str(allowed).lower()}
  - wait: 200ms
"""
    done = cli.run("run", scenario(cli, steps))

    journal = journal_of(cli)
    [fault] = cleared(journal)
    assert not any(fault["stats"].values())
    if allowed:
        assert 0 == done.returncode, done.stdout
    else:
        assert 1 == done.returncode, done.stdout
        assert "the network reset on to-a touched nothing" in journal["reason"]


def test_a_network_step_on_a_service_that_is_not_a_proxy_is_refused(cli: Cli) -> None:
    steps = """
  - network: a
    latency: {delay: 10ms}
"""
    done = cli.run("validate", scenario(cli, steps))

    assert 2 == done.returncode
    assert "'network' acts on proxy services; 'a' is not one; allowed: to-a, to-b" in done.stdout


def test_sigkill_while_cut_the_guard_undoes_it(cli: Cli) -> None:
    """The coordinator dies holding a partition: its guard heals the proxies and removes
    everything the run started; recover then finds nothing to do."""
    tag = uuid.uuid4().hex[:8]
    steps = """
  - name: split
    partition: {between: [a], and: [b]}
  - name: hold
    wait: 60s
"""
    others = set(pids_with_arg("test_coordinator.netfault"))  # not this run's proxies
    coordinator = cli.popen("run", scenario(cli, steps, name=f"cut-{tag}"))
    try:
        deadline = time.monotonic() + 30
        while not _fault_set(cli):
            if coordinator.poll() is not None:  # say why: its output is the only witness
                output = coordinator.stdout.read() if coordinator.stdout is not None else ""
                raise AssertionError(f"the run ended early ({coordinator.returncode}):\n{output}")
            assert time.monotonic() < deadline, "the partition was never set"
            time.sleep(0.05)  # polling a file, with a deadline
        proxies = set(pids_with_arg("test_coordinator.netfault")) - others
        assert proxies
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(pid in pids_with_arg("test_coordinator.netfault") for pid in proxies):
            assert time.monotonic() < deadline, "the guard left the proxies running"
            time.sleep(0.05)  # polling processes, with a deadline
        journal = _wait_journal_aborted(cli)
        actions = {(u["action"], u["status"]) for u in journal["undos"]}
        assert ("heal", "done") in actions and ("remove", "done") in actions, actions
        again = cli.run("recover")
        assert "nothing to undo" in again.stdout
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(timeout=10)
        if coordinator.stdout is not None:
            coordinator.stdout.close()
        for pid in pids_with_arg(f"cut-{tag}"):
            kill_group(pid)


def _fault_set(cli: Cli) -> bool:
    """Whether the run has recorded both heals (they are stored before the cut is set)."""
    import sqlite3

    db = cli.data_dir / "test-coordinator" / "coordinator.db"
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT count(*) FROM undo_records WHERE action LIKE '%\"heal\"%'"
            ).fetchone()
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return False
    return bool(rows and rows[0] >= 2)


def _wait_journal_aborted(cli: Cli) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        for path in (cli.workdir / "reports").glob("*/journal.json"):
            journal: dict[str, Any] = json.loads(path.read_text())
            if journal.get("outcome") == "aborted":
                return journal
        assert time.monotonic() < deadline, "no aborted report"
        time.sleep(0.05)  # polling a file, with a deadline
