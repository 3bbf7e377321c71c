"""The examples' tiny_server: health window, admin switch, metrics, plain answers."""

import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from test_coordinator.runtime.metrics_scrape import scrape_metric
from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.runtime.probes import HttpProbe
from test_coordinator.targets.process.supervisor import ProcessSpec, ProcessSupervisor

pytestmark = pytest.mark.slow

TINY_SERVER = Path(__file__).resolve().parents[2] / "scenarios" / "examples" / "tiny_server.py"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[ProcessSupervisor]:
    runtime = ProcessSupervisor(tmp_path)
    try:
        yield runtime
    finally:
        await runtime.close(grace_s=1.0)


async def start(backend: ProcessSupervisor, *args: str) -> str:
    port = free_port()
    command = (sys.executable, str(TINY_SERVER), "--port", str(port), "--name", "tiny", *args)
    await backend.start(ProcessSpec("tiny", command))
    return f"http://127.0.0.1:{port}"


async def test_unhealthy_for_the_window_after_start(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    started = time.monotonic()
    base = await start(backend, "--unhealthy-for-ms", "400")
    any_answer = HttpProbe(f"{base}/health", expect_status=(200, 503))
    healthy = HttpProbe(f"{base}/health")

    first, _ = await wait_until(any_answer.check, deadline_s=5.0, interval_s=0.005)
    _, healthy_at = await wait_until(healthy.check, deadline_s=5.0, interval_s=0.005)

    assert first.value == {"status": "unhealthy", "service": "tiny"}
    assert healthy_at - started >= 0.4


async def test_admin_switch_makes_it_unhealthy_until_a_moment(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    """Healthy again at T on the shared monotonic clock, observed within 20 ms."""
    base = await start(backend)
    probe = HttpProbe(f"{base}/health")
    await wait_until(probe.check, deadline_s=5.0, interval_s=0.005)

    healthy_at = time.monotonic() + 0.1
    switched = await client.post(f"{base}/admin/unhealthy", params={"until": repr(healthy_at)})
    during = await probe.check()
    _, observed = await wait_until(probe.check, deadline_s=2.0, interval_s=0.005)

    assert switched.json() == {"unhealthy_until": healthy_at}
    assert not during.ok and "status 503" in during.detail
    assert 0.0 <= observed - healthy_at < 0.02
    assert (await client.post(f"{base}/admin/unhealthy")).status_code == 400


async def test_metrics_count_requests_by_path(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    base = await start(backend)
    await wait_until(HttpProbe(f"{base}/").check, deadline_s=5.0, interval_s=0.005)
    before = await scrape_metric(f"{base}/metrics", "requests_total", {"path": "/"})

    root = [await client.get(f"{base}/") for _ in range(3)]
    missing = await client.get(f"{base}/nope")
    after = await scrape_metric(f"{base}/metrics", "requests_total", {"path": "/"})
    uptime = await scrape_metric(f"{base}/metrics", "uptime_seconds")

    assert [(r.status_code, r.text) for r in root] == [(200, "ok")] * 3
    assert missing.status_code == 404
    assert before is not None and after == before + 3
    assert uptime is not None and uptime > 0
