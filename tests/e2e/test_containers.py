"""The scenarios on containers (``scenarios/containers/``) end to end, through the CLI, against
a real Docker-compatible engine: the flagship with the exchange as a container, and a paused
container undone by the run's guard after the coordinator is SIGKILLed.

Needs the engine and the local images (never pulled): ``scripts/docker-engine.sh`` (engine,
``localhost/tc-httpd:latest``) and ``scripts/build-image.sh`` (the project image).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cli_harness import REPO, Cli
from e2e.test_trading_scenarios import processes_mentioning
from test_coordinator.targets.docker.config import RUN_LABEL, SERVICE_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CONTAINERS = REPO / "scenarios" / "containers"
FLAGSHIP = CONTAINERS / "exchange-restart-during-trading.yaml"
PAUSE = CONTAINERS / "pause-container.yaml"
PROJECT_IMAGE = "trading-ecosystem/test-coordinator:dev"
HTTPD_IMAGE = "localhost/tc-httpd:latest"
RUN_TIMEOUT_S = 120.0
GUARD_WITHIN_S = 10.0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> float:
    """Poll ``condition`` until true (fail past the deadline); the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)  # polling a condition, with a deadline
    return time.monotonic() - start


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_image(sdk: Any, image: str, how: str) -> None:
    """Skip locally (fail under CI=true) when ``image`` is not present on the engine."""
    from docker.errors import ImageNotFound

    try:
        sdk.images.get(image)
    except ImageNotFound:
        message = f"image {image} is not present locally: run {how}"
        if running_in_ci():
            pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
        pytest.skip(message)


def run_containers(sdk: Any, run_id: str) -> list[dict[str, Any]]:
    """The list entries (id, names, labels, state) of every container labelled with the run id.

    The low-level list: ``containers.list`` inspects each container it lists, which races a
    removal (Podman answers 500 "no such container", not 404).
    """
    found: list[dict[str, Any]] = sdk.api.containers(
        all=True, filters={"label": f"{RUN_LABEL}={run_id}"}
    )
    return found


def is_paused(sdk: Any, container_id: str) -> bool:
    """Whether inspect says the container is paused (False once it is gone)."""
    from docker.errors import APIError

    try:
        return bool(sdk.api.inspect_container(container_id)["State"]["Paused"])
    except APIError:  # NotFound, or Podman's 500 for a container removed meanwhile
        return False


def run_ids(cli: Cli) -> list[str]:
    reports = cli.workdir / "reports"
    return sorted(p.name for p in reports.iterdir() if p.is_dir()) if reports.is_dir() else []


def journal_at(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def sdk(docker_host: str) -> Iterator[Any]:
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=30)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def engine_cli(cli: Cli, docker_host: str, sdk: Any) -> Iterator[Cli]:
    """The CLI talking to the engine; afterwards, every container of its runs is removed."""
    from docker.errors import APIError

    cli.env["DOCKER_HOST"] = docker_host
    try:
        yield cli
    finally:
        for run_id in run_ids(cli):
            for entry in run_containers(sdk, run_id):
                with contextlib.suppress(APIError):
                    sdk.api.remove_container(entry["Id"], force=True)


def test_flagship_with_the_exchange_as_a_container(engine_cli: Cli, sdk: Any) -> None:
    require_image(sdk, PROJECT_IMAGE, "scripts/build-image.sh")
    cli = engine_cli

    done = cli.run("run", str(FLAGSHIP), timeout_s=RUN_TIMEOUT_S)

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "PASSED exchange-restart-during-trading-containers" in done.stdout
    assert "exchange-OKX healthy again" in done.stdout
    [path] = list((cli.workdir / "reports").glob("*/journal.json"))
    data = journal_at(path)
    assert "passed" == data["outcome"]
    assert all(c["status"] == "passed" for c in data["checks"]), data["checks"]
    [recovery] = data["recoveries"]
    assert ("exchange-OKX", "restart") == (recovery["service"], recovery["fault"])
    assert 0 < recovery["recovery_ms"] < 5000
    started = [
        e["data"]
        for e in data["events"]
        if e["kind"] == "service.started" and e["data"]["service"] == "exchange-OKX"
    ]
    assert 2 == len(started), "started by setup, then by the restart"
    assert started[0]["id"] == started[1]["id"], "the same container, restarted"
    assert started[0]["started_at"] != started[1]["started_at"]
    [removed] = [u for u in data["undos"] if u["service"] == "exchange-OKX"]
    assert ("remove", "done") == (removed["action"], removed["status"])
    assert [] == run_containers(sdk, data["run_id"])
    assert [] == processes_mentioning(str(cli.workdir / "reports"))


def test_sigkill_the_guard_resumes_and_removes_the_paused_container(
    engine_cli: Cli, sdk: Any
) -> None:
    """Nobody runs recover: the run's guard resumes the paused container, removes it, marks
    the run aborted and writes its reports; recover then finds nothing."""
    require_image(sdk, HTTPD_IMAGE, "scripts/docker-engine.sh")
    cli = engine_cli
    coordinator = cli.popen("run", str(PAUSE), "--var", "hold=60s")
    try:
        wait_for(lambda: len(run_ids(cli)) == 1, "the run's report folder")
        [run_id] = run_ids(cli)

        def paused() -> bool:
            entries = run_containers(sdk, run_id)
            return bool(entries) and all(is_paused(sdk, e["Id"]) for e in entries)

        wait_for(paused, "the container to be paused")
        [entry] = run_containers(sdk, run_id)
        assert "web" == entry["Labels"][SERVICE_LABEL]

        coordinator.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        coordinator.wait(timeout=10)
        wait_for(lambda: not run_containers(sdk, run_id), "the guard to remove it", GUARD_WITHIN_S)
        cleaned_s = time.monotonic() - killed
        print(f"guard removed the paused container {cleaned_s * 1000:.0f} ms after the kill")
        assert cleaned_s < GUARD_WITHIN_S

        folder = cli.workdir / "reports" / run_id
        wait_for((folder / "report.html").exists, "the aborted run's report", GUARD_WITHIN_S)
        journal = journal_at(folder / "journal.json")
        assert "aborted" == journal["outcome"]
        assert {"resume", "remove"} <= {u["action"] for u in journal["undos"]}
        assert all("done" == u["status"] for u in journal["undos"]), journal["undos"]
        wait_for(
            lambda: not processes_mentioning(str(cli.workdir / "reports")),
            "the guard to exit",
            GUARD_WITHIN_S,
        )
        done = cli.run("recover")
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "nothing to undo" in done.stdout, done.stdout
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(timeout=10)
        if coordinator.stdout is not None:
            coordinator.stdout.close()
