"""The sample trading ecosystem as real processes: orders flow, the engine notices an exchange
that is stopped or frozen and recovers when it is back, without losing an order when it
retries and losing some when it does not, and the audit trail survives its correlator's crash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.polling import eventually
from support.service_process import free_port, wait_for
from test_coordinator.adapters.audit import AuditClient, HttpAuditReporter
from test_coordinator.ports.audit import AuditEvent, fault_injected, fault_undone
from test_coordinator.sample.options import now_ms

pytestmark = pytest.mark.slow

READY_DEADLINE_S = 15.0
STOP_DEADLINE_S = 10.0
ENGINE = "trading-system-engine"
EXCHANGE = "exchange-OKX"
_INHERITED_AWAY = (
    "SERVICE_NAME", "SERVICE_INSTANCE_NAME", "REDIS_URL", "POSTGRES_URL", "LOG_LEVEL",
    "AUDIT_URL", "AUDIT_DB", "AUDIT_DROP_EVENTS", "EXCHANGE_URL", "ORDER_RETRY",
)  # fmt: skip


@dataclass
class SampleProcess:
    """One sample service as a child process; restart() starts it again on the same ports."""

    service: str
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def http_port(self) -> int:
        return int(self.env["HTTP_PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> SampleProcess:
        log = self.workdir / f"{self.service}-{len(self.logs)}.log"
        self.logs.append(log)
        began = time.monotonic()
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "test_coordinator.sample", self.service],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = began + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.service} exited:\n{self.log()}")
            try:
                if httpx.get(self.url + "/api/v1/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        self.stop()
        raise AssertionError(f"{self.service} not ready in {READY_DEADLINE_S} s:\n{self.log()}")

    restart = start

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGCONT first, in case it is paused) and wait for the exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.send_signal(sig)
        try:
            return process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_S)
            raise
        finally:
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=2.0).json()

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self.get("/api/v1/health")
        return health

    def metric(self, name: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=2.0).text
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in {self.service}'s /metrics")

    def log(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs)


class Ecosystem:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[SampleProcess] = []
        base = {k: v for k, v in os.environ.items() if k not in _INHERITED_AWAY}
        self.base_env = {**base, "ENVIRONMENT": "testing", "DATA_DIR": str(workdir / "data")}

    def make(self, service: str, **env: str) -> SampleProcess:
        full_env = {**self.base_env, "HTTP_PORT": str(free_port()), **env}
        process = SampleProcess(service, full_env, self.workdir)
        self.processes.append(process)
        return process

    def start_all(self, **engine_env: str) -> tuple[SampleProcess, SampleProcess, SampleProcess]:
        """The audit correlator, the exchange and the engine, each reporting to the first."""
        audit = self.make("audit-correlator").start()
        exchange = self.make(
            "exchange-simulator", SERVICE_INSTANCE_NAME=EXCHANGE, AUDIT_URL=audit.url
        ).start()
        engine = self.make(
            "trading-system-engine",
            **{
                "GRPC_PORT": "0",
                "EXCHANGE_URL": exchange.url,
                "AUDIT_URL": audit.url,
                "ORDER_RATE_PER_S": "50",
                "ORDER_RETRY_MAX_DELAY_MS": "200",
                **engine_env,
            },
        ).start()
        return audit, exchange, engine

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def ecosystem(tmp_path: Path) -> Iterator[Ecosystem]:
    made = Ecosystem(tmp_path)
    try:
        yield made
    finally:
        made.close()


def correlate(audit: SampleProcess, **params: object) -> dict[str, Any]:
    query = {k if k != "from_" else "from": str(v) for k, v in params.items()}
    correlation: dict[str, Any] = httpx.get(
        audit.url + "/api/v1/correlate", params=query, timeout=5.0
    ).json()
    return correlation


def acknowledged_and_failed(orders: dict[str, Any]) -> tuple[int, int]:
    """The orders acknowledged and given up, by the window's end (the cut-off) or since."""
    return (
        orders["acknowledged"] + orders["acknowledged_after"],
        orders["failed"] + orders["failed_after"],
    )


def settled_orders(audit: SampleProcess, from_ms: int, to_ms: int) -> dict[str, Any]:
    """The order accounting for a window once every order sent in it has an outcome."""
    deadline = time.monotonic() + 15.0
    while True:
        orders: dict[str, Any] = correlate(audit, from_=from_ms, to=to_ms, in_flight_ms=0)["orders"]
        if orders["sent"] > 0 and sum(acknowledged_and_failed(orders)) == orders["sent"]:
            return orders
        if time.monotonic() > deadline:
            raise AssertionError(f"orders sent in the window still unanswered: {orders}")
        time.sleep(0.05)


def test_orders_flow_from_the_engine_to_the_exchange(ecosystem: Ecosystem) -> None:
    """Orders are filled, counted on both sides, and accounted for by the audit correlator."""
    since = now_ms()
    audit, exchange, engine = ecosystem.start_all()
    wait_for(lambda: exchange.metric("orders_filled_total") >= 20, deadline_s=10.0, what="fills")

    assert "healthy" == engine.health()["status"]
    assert {"exchange": {"healthy": True}} == engine.health()["dependencies"]
    assert engine.metric("orders_acknowledged_total") >= 20
    assert 0.0 == engine.metric("orders_failed_total")
    orders = settled_orders(audit, since, now_ms())
    assert (0, (orders["sent"], 0)) == (orders["lost"], acknowledged_and_failed(orders))
    assert orders["sent"] == orders["acknowledged"] + orders["in_flight"] + orders["unanswered"]
    starts = correlate(audit, from_=0)["service_starts"]
    assert {"book_reset": True, "orders_in_book": 0} in [
        s["data"] for s in starts if s["service"] == EXCHANGE
    ]


def test_after_a_halt_the_counters_and_the_audit_trail_tell_one_set_of_numbers(
    ecosystem: Ecosystem,
) -> None:
    """The close of trading: no new order, the pending ones answered; from then on the
    engine's counters, its stats and the trail at a later cut-off are the same numbers."""
    audit, exchange, engine = ecosystem.start_all()
    wait_for(lambda: engine.metric("orders_acknowledged_total") >= 10, deadline_s=10.0)

    halted = httpx.post(engine.url + "/api/v1/orders/halt", timeout=2.0).json()
    wait_for(lambda: engine.get("/api/v1/orders/stats")["pending"] == 0, deadline_s=5.0)
    stats = engine.get("/api/v1/orders/stats")
    counted = {
        what: engine.metric(f"orders_{what}_total") for what in ("sent", "acknowledged", "failed")
    }
    cut_off = now_ms()

    def trail() -> dict[str, Any]:
        orders: dict[str, Any] = correlate(audit, to=cut_off)["orders"]
        return orders

    wait_for(lambda: trail()["received"] == counted["acknowledged"], deadline_s=5.0)
    orders = trail()
    assert halted["halted"] and stats["halted"]
    assert halted["sent"] <= stats["sent"] <= halted["sent"] + halted["pending"]
    assert (stats["sent"], stats["acknowledged"], stats["failed"]) == tuple(counted.values())
    [share] = orders["senders"]
    assert (ENGINE, *counted.values()) == (
        share["source"], share["sent"], share["acknowledged"], share["failed"]
    )  # fmt: skip
    assert (counted["sent"], counted["acknowledged"], 0, 0) == (
        orders["sent"], orders["acknowledged"], orders["in_flight"], orders["unanswered"]
    )  # fmt: skip
    assert counted["acknowledged"] == exchange.metric("orders_received_total")
    assert [] == orders["differences"]


def test_a_stopped_exchange_degrades_the_engine_which_recovers_without_losing_orders(
    ecosystem: Ecosystem,
) -> None:
    """The flagship in small: stop the exchange, start it again; every order gets through."""
    audit, exchange, engine = ecosystem.start_all()
    wait_for(lambda: engine.metric("orders_acknowledged_total") >= 5, deadline_s=10.0)
    since = now_ms()

    assert 0 == exchange.stop()
    wait_for(lambda: engine.health()["status"] == "degraded", deadline_s=5.0, what="degraded")
    assert ["exchange"] == engine.health()["failing"]
    exchange.restart()
    wait_for(lambda: engine.health()["status"] == "healthy", deadline_s=5.0, what="healthy")
    wait_for(lambda: exchange.metric("orders_filled_total") >= 5, deadline_s=10.0)
    until = now_ms()

    orders = settled_orders(audit, since, until)
    assert (0, 0) == (orders["lost"], acknowledged_and_failed(orders)[1])
    [outage] = [o for o in correlate(audit, from_=since)["outages"] if o["service"] == ENGINE]
    assert ("exchange", True) == (outage["dependency"], outage["ended_at_ms"] is not None)
    assert 0 < outage["duration_ms"] < until - since
    assert engine.metric("order_retries_total") > 0
    assert 0.0 == engine.metric("orders_failed_total")


def test_without_retry_the_orders_sent_while_the_exchange_is_away_are_lost(
    ecosystem: Ecosystem,
) -> None:
    """ORDER_RETRY=false: the demo's failing case, seen in /metrics and in the audit trail."""
    audit, exchange, engine = ecosystem.start_all(ORDER_RETRY="false")
    wait_for(lambda: engine.metric("orders_acknowledged_total") >= 5, deadline_s=10.0)
    since = now_ms()

    exchange.stop()
    wait_for(lambda: engine.metric("orders_failed_total") >= 3, deadline_s=5.0, what="failures")
    exchange.restart()
    wait_for(lambda: engine.health()["status"] == "healthy", deadline_s=5.0, what="healthy")

    orders = settled_orders(audit, since, now_ms())
    failed = acknowledged_and_failed(orders)[1]
    assert failed >= 3
    # A failed order is lost unless the exchange got it before the answer was cut off.
    assert 1 <= orders["lost"] <= failed
    assert len(orders["lost_order_ids"]) == min(orders["lost"], 50)


def test_a_frozen_exchange_is_a_timeout_and_the_engine_recovers_after_it_resumes(
    ecosystem: Ecosystem,
) -> None:
    """SIGSTOP: connections open but nothing answers; the 300 ms timeout notices it."""
    audit, exchange, engine = ecosystem.start_all()
    wait_for(lambda: engine.metric("orders_acknowledged_total") >= 5, deadline_s=10.0)
    since = now_ms()

    exchange.pause()
    wait_for(lambda: engine.health()["status"] == "degraded", deadline_s=5.0, what="degraded")
    assert "timed out" in engine.health()["dependencies"]["exchange"]["detail"]
    exchange.resume()
    wait_for(lambda: engine.health()["status"] == "healthy", deadline_s=5.0, what="healthy")

    orders = settled_orders(audit, since, now_ms())
    assert (0, 0) == (orders["lost"], acknowledged_and_failed(orders)[1])


async def test_the_coordinators_faults_are_correlated_with_the_engines_outage(
    ecosystem: Ecosystem,
) -> None:
    """Faults reported with the run id, and the outage the engine reported, meet in one answer."""
    audit, exchange, _ = ecosystem.start_all()
    run_id = f"run-{now_ms()}"
    reporter = HttpAuditReporter(audit.url, linger_s=0.0)
    try:
        reporter.emit(AuditEvent("run.started", now_ms(), run_id))
        reporter.emit(
            fault_injected(
                run_id=run_id, fault_id="f1", target="exchange", fault="restart", at_ms=now_ms()
            )
        )
        exchange.stop()
        exchange.restart()
        reporter.emit(fault_undone(run_id=run_id, fault_id="f1", target="exchange", at_ms=now_ms()))
        assert await reporter.flush(5.0)
    finally:
        await reporter.close()

    async with AuditClient(audit.url) as client:

        async def reported() -> bool:
            """The engine's outage ended and the exchange's new start are both in."""
            correlation = await client.correlate(run_id)
            ended = any(not o.ongoing for o in correlation.outages_of(ENGINE, "exchange"))
            return ended and EXCHANGE in [s.service for s in correlation.service_starts]

        await eventually(reported, timeout_s=10.0, what="the services' reports")
        correlation = await client.correlate(run_id)

    [fault] = correlation.faults
    assert fault.observed_by_all
    [seen] = fault.observations
    assert ENGINE == seen.service
    assert seen.delay_ms is not None and seen.delay_ms >= 0
    restarted = [s for s in correlation.service_starts if s.service == EXCHANGE]
    assert [True] == [s.data["book_reset"] for s in restarted]


async def test_no_audit_event_is_lost_when_the_correlator_crashes_and_restarts(
    ecosystem: Ecosystem,
) -> None:
    """SIGKILL the correlator mid-stream: the reporters buffer and deliver once it is back."""
    audit, _, engine = ecosystem.start_all()
    run_id = f"run-{now_ms()}"
    reporter = HttpAuditReporter(audit.url, linger_s=0.01, request_timeout_s=0.5)
    emitted: list[str] = []

    def emit(n: int) -> None:
        event = AuditEvent("probe.tick", now_ms(), run_id, data={"n": n})
        emitted.append(event.event_id)
        reporter.emit(event)

    try:
        for n in range(20):
            emit(n)
        assert await reporter.flush(5.0)
        down_at = now_ms()
        audit.stop(signal.SIGKILL)
        for n in range(20, 60):
            emit(n)
        await eventually(lambda: reporter.stats.failed_attempts > 0, timeout_s=5.0)
        assert "healthy" == engine.health()["status"], "reporting must not hurt the service"
        audit.restart()
        up_at = now_ms()
        for n in range(60, 80):
            emit(n)
        assert await reporter.flush(10.0)
    finally:
        await reporter.close()

    stored = audit.get(f"/api/v1/events?correlation_id={run_id}&limit=1000")["events"]
    assert sorted(emitted) == sorted(e["id"] for e in stored)
    assert 80 == len(stored)
    orders = settled_orders(audit, down_at, up_at)
    assert orders["sent"] > 0, "the engine's events from the outage arrived late, but arrived"
    assert 0 == orders["lost"]


def test_each_service_starts_and_stops_cleanly_on_sigterm(ecosystem: Ecosystem) -> None:
    """All three become ready and exit 0 on SIGTERM (how fast is a benchmark's business)."""
    audit, exchange, engine = ecosystem.start_all()

    for process in (engine, exchange, audit):
        assert 0 == process.stop(), process.log()
    assert "service stopped" in engine.log()


def test_the_engine_serves_grpc_health(ecosystem: Ecosystem) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    _, _, engine = ecosystem.start_all(GRPC_PORT=str(port))

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5.0
        )
    assert health_pb2.HealthCheckResponse.SERVING == answer.status
    assert engine.health()["status"] == "healthy"


def test_invalid_settings_stop_the_service_with_a_readable_line(tmp_path: Path) -> None:
    env: Mapping[str, str] = {**os.environ, "ORDER_RATE_PER_S": "fast", "HTTP_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "test_coordinator.sample", "trading-system-engine"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
    )

    assert 2 == done.returncode
    assert "ORDER_RATE_PER_S: 'fast' is not a number" in done.stderr.decode()


def test_a_port_in_use_stops_the_service_with_a_readable_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HTTP_PORT": str(port), "DATA_DIR": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-m", "test_coordinator.sample", "exchange-simulator"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
        )

    assert 1 == done.returncode
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode()


@pytest.mark.redis
def test_a_service_registers_while_redis_is_configured(
    ecosystem: Ecosystem, redis_url: str
) -> None:
    import redis

    exchange = ecosystem.make(
        "exchange-simulator", SERVICE_INSTANCE_NAME=EXCHANGE, REDIS_URL=redis_url
    ).start()
    key = f"services:exchange-simulator:{EXCHANGE}"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        record = wait_for(lambda: client.get(key), deadline_s=5.0, what="registration")
        assert f'"http_port":{exchange.http_port}' in record

        assert 0 == exchange.stop()
        assert client.get(key) is None
