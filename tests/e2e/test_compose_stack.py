"""The trading ecosystem on containers, end to end, as a user runs it: ``scripts/stack.sh up``
(``make stack-up``) brings up deploy/docker-compose.yml and waits until every service is
healthy, ``scripts/stack.sh run`` (``make stack-run``) runs the flagship with the coordinator in
its container against the stack's containers, then the partition scenario, which cuts the
engine from the exchange through the stack's always-on fault proxy (exchange-link), and
``scripts/stack.sh down`` (``make stack-down``) leaves no container, network or volume behind.

Needs a Docker-compatible engine (``scripts/docker-engine.sh``) and a compose implementation
(the script installs Debian's docker-compose when it is root and has none). Images are built
by the script when missing, without a registry (about a minute and a half on a fresh
machine; ``.ci/run`` has built the project image by then). The stack's host ports are free
ports picked here, its reports go to ``tmp_path``. Skips locally when something is missing,
fails under CI=true; never touches a stack that is already up.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "scripts" / "stack.sh"
PROJECT = "trading-ecosystem"
NETWORK = "trading-ecosystem"
PROJECT_LABEL = f"com.docker.compose.project={PROJECT}"
FLAGSHIP = "exchange-restart-during-trading-stack"
PARTITION = "exchange-partition-during-trading-stack"
PARTITION_NAME = "exchange-partition-during-trading"
PARTITION_FILE = f"deploy/scenarios/{PARTITION_NAME}.yaml"
SAMPLE_CONTAINERS = ("audit-correlator", "exchange-OKX", "trading-system-engine", "exchange-link")
SCRAPED = {
    "test-coordinator": "test-coordinator",
    "audit-correlator": "audit-correlator",
    "exchange-simulator": "exchange-OKX",
    "trading-system-engine": "trading-system-engine",
}
UP_TIMEOUT_S = 900.0  # builds the images the machine lacks (each build bounded by the script)
RUN_TIMEOUT_S = 300.0
DOWN_TIMEOUT_S = 180.0
SCRAPE_WITHIN_S = 45.0
# The variables the script and the compose file read: the test sets its own.
SCRUBBED = (
    "TC_",
    "STACK_",
    "COMPOSE_",
    "SERVICE_",
    "POSTGRES_",
    "REDIS_",
    "PROMETHEUS_",
    "GRAFANA_",
    "ORDER_",
    "AUDIT_",
    "MAX_PENDING",
    "LOG_LEVEL",
    "DOCKER_SOCKET",
)


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(message: str) -> None:
    if running_in_ci():
        pytest.fail(f"{message}; CI=true forbids skipping", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def compose_available() -> bool:
    """A compose the script would use, or one it can install (root with apt)."""
    if shutil.which("docker-compose") or shutil.which("podman-compose"):
        return True
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return True
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def leftovers(sdk: Any) -> dict[str, list[str]]:
    """What of the stack the engine still has: containers, the network, volumes."""
    containers = sdk.api.containers(all=True, filters={"label": PROJECT_LABEL})
    volumes = sdk.api.volumes(filters={"label": PROJECT_LABEL}).get("Volumes") or []
    networks = [n["Name"] for n in sdk.api.networks() if n.get("Name") == NETWORK]
    return {
        "containers": sorted(str((c.get("Names") or [c["Id"]])[0]).lstrip("/") for c in containers),
        "networks": networks,
        "volumes": sorted(str(v["Name"]) for v in volumes),
    }


def get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def api_json(url: str, token: str, body: Any = None, timeout_s: float = 10.0) -> Any:
    """GET (or POST ``body``) with the bearer token; the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def wait_for_run(url: str, token: str) -> Any:
    """The run once it has ended (an ended status), bounded by RUN_TIMEOUT_S."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        run = api_json(url, token)
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, f"the run did not end within {RUN_TIMEOUT_S} s"
        time.sleep(0.5)  # polling the API, with a deadline


def tail(done: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    text = (done.stdout or "") + "\n" + (done.stderr or "")
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def sdk(docker_host: str) -> Iterator[Any]:
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def stack_env(tmp_path: Path, docker_host: str, sdk: Any) -> dict[str, str]:
    if not docker_host.startswith("unix://"):
        skip_or_fail(f"the stack mounts the engine's unix socket; DOCKER_HOST={docker_host}")
    if not compose_available():
        skip_or_fail("no docker compose, docker-compose or podman-compose (and cannot install one)")
    already = leftovers(sdk)
    if any(already.values()):
        skip_or_fail(f"a {PROJECT} stack is already there ({already}); not touching it")
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(
        {
            "DOCKER_HOST": docker_host,
            "TC_HTTP_HOST_PORT": str(free_port()),
            "TC_GRPC_HOST_PORT": str(free_port()),
            "PROMETHEUS_HOST_PORT": str(free_port()),
            "STACK_REPORTS_DIR": str(tmp_path / "reports"),
            "STACK_TOKEN_FILE": str(tmp_path / "api-token"),
        }
    )
    return env


def stack(env: dict[str, str], *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACK), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_up_run_the_flagship_down(stack_env: dict[str, str], sdk: Any, tmp_path: Path) -> None:
    env = stack_env
    timings: dict[str, float] = {}
    down: subprocess.CompletedProcess[str] | None = None
    try:
        started = time.monotonic()
        up = stack(env, "up", timeout_s=UP_TIMEOUT_S)
        timings["up"] = time.monotonic() - started
        assert 0 == up.returncode, tail(up)
        assert "services healthy" in up.stderr

        health = get_json(f"http://127.0.0.1:{env['TC_HTTP_HOST_PORT']}/api/v1/health")
        assert "healthy" == health["status"], health
        assert {"postgres", "redis"} <= set(health.get("dependencies", {})), health
        runs_url = f"http://127.0.0.1:{env['TC_HTTP_HOST_PORT']}/api/v1/runs"
        with pytest.raises(urllib.error.HTTPError) as refused:
            get_json(runs_url)
        assert 401 == refused.value.code  # reachable on the network: the token is required
        token = (tmp_path / "api-token").read_text()
        request = urllib.request.Request(runs_url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert "runs" in json.loads(answer.read())

        # The coordinator's runs API, as a service: its library is the stack's scenarios, and
        # the partition runs through it (trading is open after `up`).
        api = f"http://127.0.0.1:{env['TC_HTTP_HOST_PORT']}/api/v1"
        library = {s["name"] for s in api_json(f"{api}/scenarios", token)["scenarios"]}
        assert {PARTITION_NAME, "exchange-restart-during-trading"} <= library, library
        started = time.monotonic()
        submitted = api_json(f"{api}/runs", token, {"scenario": PARTITION_NAME})
        by_api = wait_for_run(f"{api}/runs/{submitted['run_id']}", token)
        timings["run partition through the API"] = time.monotonic() - started
        assert "passed" == by_api["status"], by_api
        assert {"heal"} <= {u["action"] for u in by_api["undos"]} or any(
            s["kind"] == "heal" and s["status"] == "passed" for s in by_api["steps"]
        ), by_api

        started = time.monotonic()
        run = stack(env, "run", timeout_s=RUN_TIMEOUT_S)
        timings["run"] = time.monotonic() - started
        assert 0 == run.returncode, tail(run)
        assert f"PASSED {FLAGSHIP}" in run.stdout, tail(run)

        reports = tmp_path / "reports"
        [journal_path] = [
            path
            for path in reports.glob("*/journal.json")
            if json.loads(path.read_text())["scenario"] == FLAGSHIP
        ]
        folder = journal_path.parent
        assert str(folder / "report.html") in run.stderr, "the script names the report"
        report = (folder / "report.html").read_text()
        assert FLAGSHIP in report
        assert (folder / "junit.xml").is_file()
        journal = json.loads(journal_path.read_text())
        assert ("passed", 0) == (journal["outcome"], journal["exit_code"])
        assert 6 == len(journal["checks"])
        assert all("passed" == c["status"] for c in journal["checks"]), journal["checks"]
        [recovery] = journal["recoveries"]
        assert ("exchange-OKX", "restart") == (recovery["service"], recovery["fault"])
        assert 0 < recovery["recovery_ms"] < 8000, recovery  # the scenario's bound

        # The run restarted the exchange container, and left every container in place.
        for name in SAMPLE_CONTAINERS:
            assert sdk.api.inspect_container(name)["State"]["Running"], name

        started = time.monotonic()
        cut = stack(env, "run", PARTITION_FILE, timeout_s=RUN_TIMEOUT_S)
        timings["run partition"] = time.monotonic() - started
        assert 0 == cut.returncode, tail(cut)
        assert f"PASSED {PARTITION}" in cut.stdout, tail(cut)
        [cut_journal] = [
            j
            for j in (json.loads(p.read_text()) for p in reports.glob("*/journal.json"))
            if j["scenario"] == PARTITION and j["run_id"] != by_api["run_id"]
        ]
        assert all("passed" == c["status"] for c in cut_journal["checks"]), cut_journal["checks"]
        events = cut_journal["events"]
        [cleared] = [e["data"] for e in events if e["kind"] == "network.fault_cleared"]
        assert "exchange-link" == cleared["service"]
        assert cleared["stats"]["connections"] >= 1, cleared  # the cut acted on the engine's
        for name in SAMPLE_CONTAINERS:  # the proxy too: the run faulted it, never stopped it
            assert sdk.api.inspect_container(name)["State"]["Running"], name

        # Prometheus scrapes every service, with the ecosystem's instance labels.
        prometheus = f"http://127.0.0.1:{env['PROMETHEUS_HOST_PORT']}/api/v1/targets"
        deadline = time.monotonic() + SCRAPE_WITHIN_S
        while True:
            targets = get_json(prometheus)["data"]["activeTargets"]
            up_now = {
                t["labels"].get("service"): t["labels"].get("instance_name")
                for t in targets
                if t["health"] == "up"
            }
            if SCRAPED.items() <= up_now.items() or time.monotonic() > deadline:
                break
            time.sleep(1)  # Prometheus scrapes every 15 s; bounded by SCRAPE_WITHIN_S
        assert SCRAPED.items() <= up_now.items(), targets

        started = time.monotonic()
        down = stack(env, "down", timeout_s=DOWN_TIMEOUT_S)
        timings["down"] = time.monotonic() - started
        assert 0 == down.returncode, tail(down)
        assert {"containers": [], "networks": [], "volumes": []} == leftovers(sdk)
        print("stack timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    finally:
        if down is None or down.returncode != 0:
            stack(env, "down", timeout_s=DOWN_TIMEOUT_S)
