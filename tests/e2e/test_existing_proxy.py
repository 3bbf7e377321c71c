"""An existing proxy (``proxy: {control: ...}``), as in the compose stack: a netfault process
the run did not start, in front of Python's http.server. The run faults it through its
control socket, heals it, and leaves it running; after a kill -9 of the coordinator its
guard heals it. Every effect is measured from the client side."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.cli_harness import Cli
from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.model import Latency

pytestmark = pytest.mark.slow

DELAY_MS = 300
START_TIMEOUT_S = 15.0

SCENARIO = """
version: 1
name: {name}
timeout: 1m
services:
  web:
    health: {{http: {{url: "http://127.0.0.1:{web_port}/"}}}}
  web-link:
    proxy: {{control: "{control}", listen: {link_port}, to: web}}
steady_state:
  - healthy: [web-link]
steps:
  - name: slow the answers
    network: web-link
    latency: {{delay: {delay}ms}}
  - name: through the slow link
    probe: {{http: {{url: "http://127.0.0.1:{link_port}/", timeout: 5s}}}}
{rest}
"""


@dataclass
class Link:
    web_port: int
    link_port: int
    control: Path
    proxy: subprocess.Popen[str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_line(process: subprocess.Popen[str], prefix: str) -> str:
    """The first line of ``process`` that starts with ``prefix`` (bounded by the test's
    timeout: a process that dies closes its output)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"exited ({process.wait(timeout=5)}) before printing {prefix!r}")


def wait_until_listening(port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.02)  # polling a port, with a deadline


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def kill_if_running(process: subprocess.Popen[str]) -> None:
    """A test's cleanup: the run it started is gone, its output closed."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def until_faulted(link: Link, run: subprocess.Popen[str]) -> None:
    """Until the run has set its fault on the proxy (it must not end first), bounded."""
    deadline = time.monotonic() + 30
    while not faults(link):
        assert run.poll() is None, "the run ended early"
        assert time.monotonic() < deadline, "the fault was never set"
        time.sleep(0.02)  # polling the proxy's state, with a deadline


def until_healed(link: Link, what: str) -> None:
    """Until the proxy has no fault left, bounded; ``what`` failed otherwise."""
    deadline = time.monotonic() + 15
    while faults(link):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # polling the proxy's state, with a deadline


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    web_port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    control = tmp_path / "link.sock"
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "test_coordinator.netfault",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            f"127.0.0.1:{web_port}",
            "--control",
            str(control),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        link_port = int(wait_for_line(proxy, "netfault listening on ").split()[-1])
        wait_until_listening(web_port)
        yield Link(web_port, link_port, control, proxy)
    finally:
        stop(proxy)
        stop(web)


def scenario(cli: Cli, link: Link, name: str, rest: str) -> str:
    path = cli.workdir / f"{name}.yaml"
    text = SCENARIO.format(
        name=name,
        web_port=link.web_port,
        link_port=link.link_port,
        control=link.control,
        delay=DELAY_MS,
        rest=rest,
    )
    path.write_text(text)
    return str(path)


def get_ms(port: int) -> float:
    """One GET through a fresh connection, as a client of the proxy sees it."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
        answer.read()
    return (time.perf_counter() - started) * 1000.0


def faults(link: Link) -> list[str]:
    import asyncio

    state = asyncio.run(NetfaultControl(link.control).state())
    return [str(f["id"]) for f in state["faults"]]


def test_a_run_faults_and_heals_an_existing_proxy_and_leaves_it_running(
    cli: Cli, link: Link
) -> None:
    done = cli.run("run", scenario(cli, link, "existing", "  - name: heal\n    heal: web-link"))

    assert 0 == done.returncode, done.stdout + done.stderr
    [journal_path] = list((cli.workdir / "reports").glob("*/journal.json"))
    journal = json.loads(journal_path.read_text())
    assert "web-link found running and healthy" == journal["setup"]["detail"]  # not started
    probe = next(s for s in journal["steps"] if s["name"] == "through the slow link")
    assert probe["ended_at_ms"] - probe["started_at_ms"] >= DELAY_MS, probe
    [cleared] = [e["data"] for e in journal["events"] if e["kind"] == "network.fault_cleared"]
    assert cleared["stats"]["connections"] >= 1, cleared
    assert link.proxy.poll() is None, "the run stopped a proxy it did not start"
    assert [] == faults(link)
    assert get_ms(link.link_port) < DELAY_MS / 2


def test_a_fault_left_on_the_proxy_stops_the_run_before_it_acts(cli: Cli, link: Link) -> None:
    import asyncio

    asyncio.run(NetfaultControl(link.control).set("someone-else", Latency(ms=DELAY_MS)))

    done = cli.run("run", scenario(cli, link, "busy", ""))

    assert 3 == done.returncode, done.stdout + done.stderr
    assert "already has faults set (someone-else)" in done.stdout + done.stderr
    assert ["someone-else"] == faults(link), "a fault the run did not set was cleared"


def test_sigkill_while_faulted_the_guard_heals_the_existing_proxy(cli: Cli, link: Link) -> None:
    path = scenario(cli, link, "killed", "  - name: hold\n    wait: 60s")
    coordinator = cli.popen("run", path)
    try:
        until_faulted(link, coordinator)
        assert get_ms(link.link_port) >= DELAY_MS  # in effect, from the client side

        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=10)
        until_healed(link, "the guard did not heal the proxy")

        assert get_ms(link.link_port) < DELAY_MS / 2
        assert link.proxy.poll() is None, "the guard stopped a proxy the run did not start"
        again = cli.run("recover")
        assert 0 == again.returncode and "nothing to undo" in again.stdout, again.stdout
    finally:
        kill_if_running(coordinator)


def test_a_fault_set_by_another_run_after_setup_is_not_replaced(cli: Cli, link: Link) -> None:
    """Two runs of the CLI (no lease between them) both past their setup: the proxy itself
    refuses the second run's fault while the first run's is set."""
    import asyncio

    go = cli.workdir / "go"
    rest = "  - name: hold\n    wait: 1ms"
    path = scenario(cli, link, "second", rest)
    text = (
        Path(path)
        .read_text()
        .replace(
            "steps:\n",
            f"steps:\n  - name: until the other run faults\n    expect:\n"
            f"      command: {{argv: [test, -e, {go}]}}\n      within: 30s\n",
            1,
        )
    )
    Path(path).write_text(text)
    second = cli.popen("run", path)
    try:
        assert second.stdout is not None
        for line in second.stdout:  # bounded: the run ends within its timeout
            if "setup passed" in line:
                break
        theirs = "20991231-000000-aaaaaa-step1-web-link"  # another run's id first
        asyncio.run(
            NetfaultControl(link.control).set(theirs, Latency(ms=DELAY_MS), owner=theirs[:22])
        )
        go.touch()
        output = second.stdout.read()
        assert 3 == second.wait(timeout=30), output
    finally:
        kill_if_running(second)

    assert "faults of another owner are set: 20991231-000000-aaaaaa-step1-web-link" in output
    assert [theirs] == faults(link), "the other run's fault was replaced or cleared"


def test_a_heal_the_proxy_cannot_answer_is_an_infrastructure_error_not_a_crash(
    cli: Cli, link: Link
) -> None:
    go = cli.workdir / "go"
    rest = (
        "  - name: until the proxy is gone\n"
        f"    expect: {{command: {{argv: [test, -e, {go}]}}, within: 30s}}\n"
        "  - name: heal\n    heal: web-link"
    )
    path = Path(scenario(cli, link, "unhealed", rest))
    probe = path.read_text().split("  - name: through the slow link\n")[1].split("  - name:")[0]
    path.write_text(path.read_text().replace("  - name: through the slow link\n" + probe, ""))
    run = cli.popen("run", str(path))
    try:
        until_faulted(link, run)
        link.proxy.kill()
        link.proxy.wait(timeout=10)
        go.touch()
        assert run.stdout is not None
        output = run.stdout.read()
        assert 3 == run.wait(timeout=30), output
    finally:
        kill_if_running(run)

    assert "step 3 heal error" in output, output
    assert "cannot clear the network fault" in output, output
    assert "internal error" not in output and "Traceback" not in output, output


def test_the_guard_tries_a_failed_heal_again_once_the_proxy_answers(cli: Cli, link: Link) -> None:
    """The coordinator dies while its proxy's socket cannot be reached: the guard's first
    heal fails, and its next try, once the socket is back, heals the proxy."""
    away = link.control.with_name("link.sock.away")
    coordinator = cli.popen("run", scenario(cli, link, "moved", "  - name: hold\n    wait: 60s"))
    try:
        until_faulted(link, coordinator)
        link.control.rename(away)
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=10)
        [guard_log] = list((cli.workdir / "reports").glob("*/guard.log")) or [None]
        deadline = time.monotonic() + 15
        while guard_log is None or "[failed]" not in guard_log.read_text():
            assert time.monotonic() < deadline, "the guard never tried the heal"
            time.sleep(0.02)  # polling the guard's log, with a deadline
            found = list((cli.workdir / "reports").glob("*/guard.log"))
            guard_log = found[0] if found else None
        away.rename(link.control)

        until_healed(link, "the guard did not try the heal again")
    finally:
        if away.exists():
            away.rename(link.control)
        kill_if_running(coordinator)

    assert "trying the failed undos" in guard_log.read_text()
    assert get_ms(link.link_port) < DELAY_MS / 2
