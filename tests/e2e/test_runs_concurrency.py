"""Many runs through the service at once: the concurrency limit holds, no run is lost, and no
two runs hold a shared target at the same time, in one coordinator or in two on one Redis.
A coordinator killed with runs in flight leaves nothing behind once it starts again."""

from __future__ import annotations

import concurrent.futures
import itertools
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.run_scenarios import PAUSED_HTTP_SERVER
from support.service_process import ServiceProcess, free_port, start_service, wait_for
from test_coordinator.targets.process.procfs import is_alive

pytestmark = pytest.mark.slow

# A service the run only observes (the coordinator's own health): the run starts nothing.
PRIVATE = """
version: 1
name: private
vars: {url: "http://127.0.0.1:1/"}
services:
  observed:
    health: {http: {url: "${url}"}}
steps:
  - wait: 100ms
"""

# A proxy on a fixed port: a target every run of this scenario shares. Were two runs to hold
# it at once, the second proxy could not listen and its run would fail.
SHARED = """
version: 1
name: shared
vars: {listen: 1, upstream: "127.0.0.1:1"}
services:
  link:
    proxy: {listen: "${listen}", upstream: "${upstream}"}
steps:
  - wait: 100ms
"""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    for name, text in (("private", PRIVATE), ("shared", SHARED), ("slow", PAUSED_HTTP_SERVER)):
        (root / f"{name}.yaml").write_text(text)
    return root


def serve(tmp_path: Path, library: Path, name: str, **env: str) -> ServiceProcess:
    return start_service(
        tmp_path / name,
        {
            "SCENARIO_DIR": str(library),
            "REPORTS_DIR": str(tmp_path / name / "reports"),
            "SERVICE_INSTANCE_NAME": name,
            "MAX_CONCURRENT_RUNS": "4",
            **env,
        },
    )


def submit(service: ServiceProcess, scenario: str, vars: dict[str, Any]) -> str:
    response = httpx.post(
        f"{service.base_url}/api/v1/runs", json={"scenario": scenario, "vars": vars}, timeout=30
    )
    assert 202 == response.status_code, response.text
    return str(response.json()["run_id"])


def all_runs(service: ServiceProcess) -> list[dict[str, Any]]:
    runs, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 20, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{service.base_url}/api/v1/runs", params=params, timeout=10).json()
        runs.extend(page["runs"])
        cursor = page["next"]
        if cursor is None:
            return runs


def wait_all_ended(service: ServiceProcess, count: int, deadline_s: float) -> list[dict[str, Any]]:
    def ended() -> list[dict[str, Any]] | None:
        runs = all_runs(service)
        done = [r for r in runs if r["status"] not in ("queued", "running")]
        return runs if len(runs) == count and len(done) == count else None

    result: list[dict[str, Any]] = wait_for(
        ended, deadline_s=deadline_s, interval_s=0.5, what=f"{count} runs ended"
    )
    return result


def most_at_once(runs: list[dict[str, Any]]) -> int:
    moments = sorted(
        itertools.chain.from_iterable(
            ((r["started_at_ms"], 1), (r["ended_at_ms"], -1)) for r in runs
        ),
        key=lambda m: (m[0], m[1]),  # an end before a start at the same ms
    )
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most


def submit_all(jobs: list[tuple[ServiceProcess, str, dict[str, Any]]]) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda job: submit(*job), jobs))


def fifty_runs(services: list[ServiceProcess]) -> list[list[dict[str, Any]]]:
    """Fifty runs spread over ``services``: one in five on a target they all share, the rest
    on nothing shared; each service's runs once all ended."""
    shared = {"listen": free_port(), "upstream": f"127.0.0.1:{services[0].http_port}"}
    jobs = []
    for n in range(50):
        service = services[n % len(services)]
        private = {"url": f"{service.base_url}/api/v1/health"}
        jobs.append((service, "shared", shared) if n % 5 == 0 else (service, "private", private))
    submitted = submit_all(jobs)
    ended = [wait_all_ended(s, 50 // len(services), deadline_s=400) for s in services]
    assert sorted(submitted) == sorted(r["run_id"] for runs in ended for r in runs)
    return ended


def test_fifty_runs_at_once_with_a_limit_of_four(tmp_path: Path, library: Path) -> None:
    service = serve(tmp_path, library, "test-coordinator")
    try:
        [runs] = fifty_runs([service])
    finally:
        service.stop(timeout_s=30)

    assert ["passed"] * 50 == [r["status"] for r in runs], [r["reason"] for r in runs]
    assert 2 <= most_at_once(runs) <= 4
    assert 1 == most_at_once([r for r in runs if r["scenario"] == "shared"])
    assert "Traceback" not in service.log()


def test_two_coordinators_on_one_redis_never_share_a_target(
    tmp_path: Path, library: Path, redis_url: str
) -> None:
    one = serve(tmp_path, library, "test-coordinator-One", REDIS_URL=redis_url)
    two = serve(tmp_path, library, "test-coordinator-Two", REDIS_URL=redis_url)
    try:
        ended = fifty_runs([one, two])
    finally:
        one.stop(timeout_s=30)
        two.stop(timeout_s=30)

    runs = [r for each in ended for r in each]
    assert ["passed"] * 50 == [r["status"] for r in runs], [r["reason"] for r in runs]
    assert all(most_at_once(each) <= 4 for each in ended)
    shared = [r for r in runs if r["scenario"] == "shared"]
    assert [5, 5] == [sum(r["scenario"] == "shared" for r in each) for each in ended]
    assert 1 == most_at_once(shared)  # across both coordinators


def test_a_killed_service_leaves_nothing_once_it_starts_again(
    tmp_path: Path, library: Path
) -> None:
    env = {"MAX_CONCURRENT_RUNS": "2"}
    first = serve(tmp_path, library, "test-coordinator", **env)
    ids = [submit(first, "slow", {}) for _ in range(3)]

    def paused_pids() -> list[int] | None:
        pids = []
        for run_id in ids[:2]:
            events = httpx.get(f"{first.base_url}/api/v1/runs/{run_id}/journal", timeout=10).json()[
                "events"
            ]
            started = [e["data"]["pid"] for e in events if e["kind"] == "service.started"]
            paused = any(
                e["kind"] == "undo.registered" and e["data"]["action"] == "resume" for e in events
            )
            if not (started and paused):
                return None
            pids.append(started[0])
        return pids

    pids = wait_for(paused_pids, deadline_s=60, what="two runs paused their service")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)

    again = serve(tmp_path, library, "test-coordinator", **env)
    try:

        def all_aborted() -> list[dict[str, Any]] | None:
            runs = all_runs(again)
            return runs if all(r["status"] == "aborted" for r in runs) else None

        runs = wait_for(all_aborted, deadline_s=60, what="the runs marked aborted")
    finally:
        again.stop(timeout_s=30)

    assert sorted(ids) == sorted(r["run_id"] for r in runs)
    for pid in pids:
        assert not is_alive(pid), f"pid {pid} of a killed run is still there"
    reports = [
        tmp_path / "test-coordinator" / "reports" / run_id / "report.html" for run_id in ids[:2]
    ]
    assert all(path.is_file() for path in reports), reports
