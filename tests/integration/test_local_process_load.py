"""The built-in load generator against a real tiny_server that is stopped and paused."""

import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from test_coordinator.runtime.load import LoadGenerator, LoadSample, TcpTarget
from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.runtime.probes import HttpProbe, ProbeResult
from test_coordinator.targets.process.supervisor import ProcessSpec, ProcessSupervisor

pytestmark = pytest.mark.slow

TINY_SERVER = Path(__file__).resolve().parents[2] / "scenarios" / "examples" / "tiny_server.py"
RATE = 200.0


class Service:
    """One tiny_server under a backend, with a health probe."""

    def __init__(self, backend: ProcessSupervisor, client: httpx.AsyncClient) -> None:
        self.backend = backend
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.spec = ProcessSpec(
            "web", (sys.executable, str(TINY_SERVER), "--port", str(self.port), "--name", "web")
        )
        self.health = HttpProbe(f"{self.url}health", timeout_s=0.5)

    async def start_healthy(self) -> None:
        await self.backend.start(self.spec)
        await wait_until(self.health.check, deadline_s=5.0, interval_s=0.005)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


@pytest.fixture
async def service(tmp_path: Path, client: httpx.AsyncClient) -> AsyncIterator[Service]:
    backend = ProcessSupervisor(tmp_path)
    try:
        running = Service(backend, client)
        await running.start_healthy()
        yield running
    finally:
        await backend.close(grace_s=1.0)


def samples_after(
    generator: LoadGenerator, after_ms: float, count: int
) -> Callable[[], Awaitable[ProbeResult]]:
    """A check: at least ``count`` samples sent after ``after_ms`` have completed."""

    async def check() -> ProbeResult:
        n = sum(1 for s in generator.samples() if s.at_ms > after_ms)
        return ProbeResult(n >= count, n, f"{n} samples after {after_ms:.0f} ms", 0.0)

    return check


def now_ms(origin: float) -> float:
    return (time.monotonic() - origin) * 1000.0


async def test_sends_at_the_set_rate_and_records_every_answer(service: Service) -> None:
    origin = time.monotonic()
    generator = LoadGenerator(service.url, RATE, origin_s=origin, timeout_s=1.0)
    generator.start()
    try:
        await wait_until(samples_after(generator, -1.0, 150), deadline_s=5.0, interval_s=0.01)
    finally:
        await generator.stop()

    samples: list[LoadSample] = generator.samples()
    span_s = (samples[-1].at_ms - samples[0].at_ms) / 1000.0
    observed_rate = (len(samples) - 1) / span_s
    summary = generator.summary()
    assert 0.9 * RATE <= observed_rate <= 1.1 * RATE
    assert 0.0 <= samples[0].at_ms < 500.0
    assert {(s.ok, s.status, s.error) for s in samples} == {(True, 200, "")}
    assert summary.errors == 0
    assert summary.p99_ms is not None and summary.p50_ms is not None
    assert summary.p50_ms <= summary.p99_ms <= summary.max_ms


async def test_records_errors_while_the_server_is_stopped(service: Service) -> None:
    origin = time.monotonic()
    generator = LoadGenerator(service.url, RATE, origin_s=origin, timeout_s=0.5)
    generator.start()
    try:
        await wait_until(samples_after(generator, -1.0, 20), deadline_s=5.0, interval_s=0.005)
        stopping_ms = now_ms(origin)
        await service.backend.stop("web")
        stopped_ms = now_ms(origin)
        await wait_until(samples_after(generator, stopped_ms, 20), deadline_s=5.0, interval_s=0.005)
        restarting_ms = now_ms(origin)
        await service.start_healthy()
        healthy_ms = now_ms(origin)
        await wait_until(samples_after(generator, healthy_ms, 20), deadline_s=5.0, interval_s=0.005)
    finally:
        await generator.stop()

    # Requests still in flight when the stop began may fail as the server closes: they
    # belong to neither window.
    before = [s for s in generator.samples() if s.at_ms + s.latency_ms < stopping_ms]
    down = generator.summary(start_ms=stopped_ms, end_ms=restarting_ms)
    after = generator.summary(start_ms=healthy_ms)
    down_errors = {s.error for s in generator.samples() if stopped_ms <= s.at_ms < restarting_ms}

    assert len(before) >= 20
    assert all(s.ok for s in before)
    assert down.count >= 20
    assert down.error_rate == 1.0
    assert down_errors == {"cannot connect: Connection refused"}
    assert down.reasons == {"refused": down.count}
    assert (after.count >= 20, after.errors) == (True, 0)
    assert 0 < generator.summary().error_rate < 1


async def test_keeps_sending_to_a_paused_server(service: Service) -> None:
    """Open loop: requests stuck in a paused server do not hold back the next ones."""
    origin = time.monotonic()
    generator = LoadGenerator(service.url, RATE, origin_s=origin, timeout_s=0.2)
    generator.start()
    try:
        await wait_until(samples_after(generator, -1.0, 10), deadline_s=5.0, interval_s=0.005)
        await service.backend.pause("web")
        paused_ms = now_ms(origin)
        # 40 requests sent after the pause have had their answer or their timeout:
        await wait_until(samples_after(generator, paused_ms, 40), deadline_s=5.0, interval_s=0.005)
        await service.backend.resume("web")
        resumed_ms = now_ms(origin)
        # Every request sent while paused has had its answer or its timeout (0.2 s) once one
        # sent 0.25 s after the resume has completed: a stop now abandons none of them.
        await wait_until(
            samples_after(generator, resumed_ms + 250.0, 1), deadline_s=5.0, interval_s=0.005
        )
    finally:
        await generator.stop()

    # A sample's moment is when it was sent: a stall of this test process (its collector,
    # the pause and resume themselves) delays some sends past the resume, and the generator
    # then catches up. Sends are counted up to 0.25 s after the resume, for as long.
    sent = [s for s in generator.samples() if paused_ms <= s.at_ms < resumed_ms + 250.0]
    expected = RATE * (resumed_ms + 250.0 - paused_ms) / 1000.0
    assert 0.8 * expected <= len(sent) <= 1.1 * expected + 1
    paused = [s for s in generator.samples() if paused_ms <= s.at_ms < resumed_ms]
    timed_out = [s for s in paused if s.at_ms < resumed_ms - 200.0]
    assert len(timed_out) >= 20
    assert {(s.reason, s.error) for s in timed_out} == {("timeout", "no answer within 0.2 s")}
    assert all(s.latency_ms >= 200.0 for s in timed_out)


async def test_tcp_connects_are_refused_while_the_server_is_stopped(service: Service) -> None:
    origin = time.monotonic()
    generator = LoadGenerator(TcpTarget("127.0.0.1", service.port), RATE, origin_s=origin)
    generator.start()
    try:
        await wait_until(samples_after(generator, -1.0, 20), deadline_s=5.0, interval_s=0.005)
        stopping_ms = now_ms(origin)
        await service.backend.stop("web")
        stopped_ms = now_ms(origin)
        await wait_until(samples_after(generator, stopped_ms, 20), deadline_s=5.0, interval_s=0.005)
        restarting_ms = now_ms(origin)
        await service.start_healthy()
        healthy_ms = now_ms(origin)
        await wait_until(samples_after(generator, healthy_ms, 20), deadline_s=5.0, interval_s=0.005)
    finally:
        await generator.stop()

    assert generator.summary(end_ms=stopping_ms).errors == 0
    down = generator.summary(start_ms=stopped_ms, end_ms=restarting_ms)
    assert down.count >= 20
    assert down.reasons == {"refused": down.count}
    assert generator.summary(start_ms=healthy_ms).errors == 0
