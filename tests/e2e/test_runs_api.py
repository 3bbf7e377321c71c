"""Runs over REST, against `test-coordinator serve` as an operator runs it: submit, follow the
events, read the verdict and the reports, cancel, refuse what must be refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.run_scenarios import PAUSED_HTTP_SERVER, QUICK_RESTART
from support.service_process import ServiceProcess, free_port, start_service, wait_for
from test_coordinator.targets.process.procfs import is_alive

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    (root / "quick-restart.yaml").write_text(QUICK_RESTART)
    (root / "slow.yaml").write_text(PAUSED_HTTP_SERVER)
    return root


@pytest.fixture
def service(tmp_path: Path, library: Path) -> Iterator[ServiceProcess]:
    svc = start_service(
        tmp_path / "svc",
        {
            "SCENARIO_DIR": str(library),
            "REPORTS_DIR": str(tmp_path / "reports"),
            "API_TOKEN": TOKEN,
        },
    )
    yield svc
    svc.stop(timeout_s=20)


def api(service: ServiceProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    return httpx.request(method, service.base_url + path, headers=headers, timeout=10.0, **kwargs)


def sse_events(
    service: ServiceProcess, run_id: str, deadline_s: float = 60.0
) -> list[dict[str, Any]]:
    """Every SSE event of the run until the stream closes (bounded)."""
    events = []
    with httpx.stream(
        "GET", f"{service.base_url}/api/v1/runs/{run_id}/events", headers=AUTH,
        timeout=httpx.Timeout(deadline_s),
    ) as response:  # fmt: skip
        assert 200 == response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, Any] = {}
        for line in response.iter_lines():
            if not line:
                if "event" in frame:
                    events.append(frame)
                frame = {}
            elif line.startswith("id: "):
                frame["id"] = int(line[4:])
            elif line.startswith("event: "):
                frame["event"] = line[7:]
            elif line.startswith("data: "):
                frame["data"] = json.loads(line[6:])
    return events


def test_a_run_submitted_over_rest_is_followed_to_its_verdict_and_reported(
    service: ServiceProcess,
) -> None:
    submitted = api(service, "POST", "/api/v1/runs", json={"scenario": "quick-restart", "seed": 7})
    assert 202 == submitted.status_code, submitted.text
    run = submitted.json()
    assert ("queued", 7, "library") == (run["status"], run["seed"], run["source"])
    assert submitted.headers["location"] == f"/api/v1/runs/{run['run_id']}"

    events = sse_events(service, run["run_id"])

    kinds = [e["event"] for e in events]
    seqs = [e["id"] for e in events if "id" in e]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert "run.started" in kinds and "fault.recovered" in kinds and "run.finished" in kinds
    assert {"run_id": run["run_id"], "status": "passed"} == events[-1]["data"]
    detail = api(service, "GET", f"/api/v1/runs/{run['run_id']}").json()
    assert ("passed", "passed") == (detail["status"], detail["outcome"])
    assert ["restart"] == [s["kind"] for s in detail["steps"]]
    assert ["passed"] == [c["status"] for c in detail["checks"]]
    assert 1 == len(detail["recoveries"]) and detail["recoveries"][0]["recovery_ms"] > 0
    report = api(service, "GET", f"/api/v1/runs/{run['run_id']}/report.html")
    junit = api(service, "GET", f"/api/v1/runs/{run['run_id']}/junit.xml")
    assert report.status_code == 200 and "quick-restart" in report.text
    assert junit.status_code == 200 and "<testsuite" in junit.text
    journal = api(service, "GET", f"/api/v1/runs/{run['run_id']}/journal").json()
    assert [e["seq"] for e in journal["events"]] == seqs
    listed = api(service, "GET", "/api/v1/runs", params={"status": "passed"}).json()
    assert [run["run_id"]] == [r["run_id"] for r in listed["runs"]]
    assert [] == api(service, "GET", "/api/v1/runs", params={"status": "failed"}).json()["runs"]
    again = api(service, "POST", f"/api/v1/runs/{run['run_id']}/cancel")
    assert 409 == again.status_code and "already ended (passed)" in again.json()["detail"]


def test_cancelling_a_running_run_undoes_it(service: ServiceProcess) -> None:
    run = api(service, "POST", "/api/v1/runs", json={"scenario": "slow"}).json()

    def paused_pid() -> int | None:
        events = api(service, "GET", f"/api/v1/runs/{run['run_id']}/journal").json()["events"]
        started = [e["data"]["pid"] for e in events if e["kind"] == "service.started"]
        paused = any(
            e["kind"] == "undo.registered" and e["data"]["action"] == "resume" for e in events
        )
        return started[0] if started and paused else None

    pid = wait_for(paused_pid, deadline_s=30, what="the service paused")
    cancelled = api(service, "POST", f"/api/v1/runs/{run['run_id']}/cancel")
    assert 202 == cancelled.status_code

    def ended() -> dict[str, Any] | None:
        body = api(service, "GET", f"/api/v1/runs/{run['run_id']}").json()
        return body if body["status"] not in ("queued", "running") else None

    final = wait_for(ended, deadline_s=30, what="the run ended")
    assert "cancelled" == final["status"]
    assert "cancelled through the API" in final["reason"]
    assert not is_alive(pid), f"the run's service (pid {pid}) outlived the cancel"
    assert [u["status"] for u in final["undos"]] and all(
        u["status"] == "done" for u in final["undos"]
    )


def test_what_must_be_refused_is_refused(service: ServiceProcess) -> None:
    no_token = httpx.get(f"{service.base_url}/api/v1/runs", timeout=5)
    wrong = api(service, "GET", "/api/v1/runs", headers={"Authorization": "Bearer nope"})
    assert (401, 401) == (no_token.status_code, wrong.status_code)
    assert 200 == httpx.get(f"{service.base_url}/api/v1/health", timeout=5).status_code

    invalid = api(service, "POST", "/api/v1/runs", json={"document": "version: 1\nservices: 3\n"})
    assert 422 == invalid.status_code
    problems = invalid.json()["problems"]
    assert problems and all(p["file"] == "request" and p["line"] >= 1 for p in problems)
    assert any(p["line"] == 2 and p["path"] == "services" for p in problems), problems

    remote_process = api(service, "POST", "/api/v1/runs", json={"document": QUICK_RESTART})
    assert 403 == remote_process.status_code
    assert "services.web.process" in remote_process.json()["detail"]
    reads_shadow = (
        "version: 1\nservices:\n  me:\n    health: {tcp: {port: 1}}\n    log: /etc/shadow\n"
        "steps:\n  - wait: 1ms\nchecks:\n  - log: {service: me, present: '^root:'}\n"
    )
    remote_file = api(service, "POST", "/api/v1/runs", json={"document": reads_shadow})
    assert 403 == remote_file.status_code
    assert "services.me.log: reads the local file '/etc/shadow'" in remote_file.json()["detail"]

    unknown = api(service, "POST", "/api/v1/runs", json={"scenario": "no-such"})
    assert 404 == unknown.status_code
    undeclared = api(service, "POST", "/api/v1/runs", json={"scenario": "slow", "vars": {"x": 1}})
    assert 422 == undeclared.status_code and undeclared.json()["problems"][0]["path"] == "vars.x"
    both = api(
        service, "POST", "/api/v1/runs", json={"scenario": "slow", "document": PAUSED_HTTP_SERVER}
    )
    assert 422 == both.status_code
    too_big = api(
        service, "POST", "/api/v1/runs", content=b"x" * 2_000_000,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert 413 == too_big.status_code

    def chunks() -> Iterator[bytes]:
        yield b'{"document": "'
        for _ in range(40):
            yield b"x" * 50_000  # 2 MB in all, no Content-Length

    chunked = api(service, "POST", "/api/v1/runs", content=chunks(),
                  headers={"content-type": "application/json"})  # fmt: skip
    assert 413 == chunked.status_code
    lone = b'{"scenario": "slow", "vars": {"hold": "\\ud800"}}'
    surrogate = api(
        service, "POST", "/api/v1/runs", content=lone, headers={"content-type": "application/json"}
    )
    assert 422 == surrogate.status_code and "surrogate" in surrogate.text
    bad_id = api(service, "GET", "/api/v1/runs/%00x")
    assert 422 == bad_id.status_code
    listed = api(service, "GET", "/api/v1/runs")
    assert (200, []) == (listed.status_code, listed.json()["runs"])  # nothing was stored


def test_without_a_token_only_this_machines_own_clients_are_answered(
    tmp_path: Path, library: Path
) -> None:
    """On loopback with no API_TOKEN: a request naming another host (DNS rebinding) or
    sent by a web page (its Origin) is refused; curl, scripts and the CLI are answered."""
    svc = start_service(tmp_path / "svc", {"SCENARIO_DIR": str(library)})  # no API_TOKEN
    try:
        runs = f"{svc.base_url}/api/v1/runs"
        plain = httpx.get(runs, timeout=5)
        rebound = httpx.get(runs, headers={"Host": "evil.example"}, timeout=5)
        page = httpx.post(
            f"{runs}/20261202-000000-abcdef/cancel",
            headers={"Origin": "https://evil.example"},
            timeout=5,
        )
        health = httpx.get(f"{svc.base_url}/api/v1/health", headers={"Host": "x"}, timeout=5)
    finally:
        svc.stop(timeout_s=20)

    assert 200 == plain.status_code
    assert 403 == rebound.status_code and "is not this machine" in rebound.json()["detail"]
    assert 403 == page.status_code and "from a web page" in page.json()["detail"]
    assert 200 == health.status_code  # probes and Prometheus need no token


def test_a_service_reachable_from_other_machines_needs_a_token(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k != "API_TOKEN"},
        "HTTP_HOST": "0.0.0.0",
        "HTTP_PORT": str(free_port()),
        "GRPC_PORT": str(free_port()),
        "DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "test_coordinator", "serve"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert 2 == done.returncode
    assert "API_TOKEN" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.postgres
def test_history_in_postgresql_survives_a_restart(
    tmp_path: Path, library: Path, postgres_url: str
) -> None:
    schema = f"tc_runs_{uuid.uuid4().hex[:10]}"
    env = {
        "SCENARIO_DIR": str(library),
        "REPORTS_DIR": str(tmp_path / "reports"),
        "API_TOKEN": TOKEN,
        "POSTGRES_URL": postgres_url,
        "POSTGRES_SCHEMA": schema,
    }
    first = start_service(tmp_path / "one", env)
    try:
        run = api(first, "POST", "/api/v1/runs", json={"scenario": "quick-restart"}).json()
        assert "passed" == sse_events(first, run["run_id"])[-1]["data"]["status"]
    finally:
        first.stop(timeout_s=20)

    second = start_service(tmp_path / "two", env)
    try:
        listed = api(second, "GET", "/api/v1/runs", params={"scenario": "quick-restart"}).json()
        detail = api(second, "GET", f"/api/v1/runs/{run['run_id']}").json()
        journal = api(second, "GET", f"/api/v1/runs/{run['run_id']}/journal").json()
    finally:
        second.stop(timeout_s=20)
        drop_schema(postgres_url, schema)

    assert [run["run_id"]] == [r["run_id"] for r in listed["runs"]]
    assert ("passed", ["passed"]) == (detail["status"], [c["status"] for c in detail["checks"]])
    assert "run.finished" in [e["kind"] for e in journal["events"]]


def drop_schema(postgres_url: str, schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        url = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())
