"""The audit correlator stores reported events once, keeps them across restarts, and answers
correlations the coordinator's AuditClient reads back as typed values."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from test_coordinator.adapters.audit import AuditClient, NullAuditSink
from test_coordinator.adapters.audit.wire import event_to_json
from test_coordinator.config import load_settings
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.ports.audit import SourceProgress, fault_injected, fault_undone
from test_coordinator.sample.audit_correlator import AuditCorrelator
from test_coordinator.sample.host import SampleContext, sample_app
from test_coordinator.sample.observations import Observations
from test_coordinator.service.state import ServiceState

T0 = 1_700_000_000_000
URL = "http://audit.test"


@dataclass
class Correlator:
    http: httpx.AsyncClient
    client: AuditClient
    service: AuditCorrelator

    async def post(self, body: object) -> httpx.Response:
        return await self.http.post("/api/v1/events", json=body)

    async def events(self) -> list[dict[str, object]]:
        events: list[dict[str, object]] = (await self.http.get("/api/v1/events")).json()["events"]
        return events


def wire(
    kind: str, at: int, source: str = "trading-system-engine", **data: object
) -> dict[str, object]:
    return {"id": f"{kind}-{at}", "source": source, "kind": kind, "at": T0 + at, "data": data}


@asynccontextmanager
async def correlator_at(
    db: Path | str, environ: Mapping[str, str] | None = None
) -> AsyncIterator[Correlator]:
    settings = load_settings(service_name="audit-correlator")
    metrics = PrometheusMetrics("", runtime_collectors=False)
    env = {"AUDIT_DB": str(db), **(environ or {})}
    observations = Observations(NullAuditSink(), "audit-correlator")
    service = AuditCorrelator(SampleContext(settings, env, metrics, observations))
    await service.start()
    app = sample_app(ServiceState(settings, [service], ready=True), service, metrics)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=URL)
    try:
        yield Correlator(http, AuditClient(URL, client=http), service)
    finally:
        await http.aclose()
        await service.stop()


async def test_single_events_and_batches_are_stored(tmp_path: Path) -> None:
    async with correlator_at(tmp_path / "a.sqlite3") as audit:
        one = await audit.post(wire("order.sent", 1, order_id="a"))
        many = await audit.post([wire("order.sent", 2, order_id="b"), wire("order.sent", 3)])

        assert (202, {"accepted": 1, "stored": 1}) == (one.status_code, one.json())
        assert {"accepted": 2, "stored": 2} == many.json()
        kinds = [(e["kind"], e["source"]) for e in await audit.events()]
        assert 1 == kinds.count(("service.started", "audit-correlator"))
        assert 3 == kinds.count(("order.sent", "trading-system-engine"))


async def test_an_event_sent_twice_is_stored_once(tmp_path: Path) -> None:
    """The reporter retries a batch whose answer it lost: the ids make that harmless."""
    async with correlator_at(tmp_path / "a.sqlite3") as audit:
        batch = [wire("order.sent", 1, order_id="a"), wire("order.acknowledged", 2, order_id="a")]
        await audit.post(batch)
        again = await audit.post(batch)

        assert {"accepted": 2, "stored": 0} == again.json()
        assert 3 == len(await audit.events())


async def test_a_malformed_batch_is_refused_whole(tmp_path: Path) -> None:
    async with correlator_at(tmp_path / "a.sqlite3") as audit:
        response = await audit.post([wire("order.sent", 1), {"kind": "x", "at": 1}])

        assert 422 == response.status_code
        assert "source" in response.json()["detail"]
        assert ["service.started"] == [e["kind"] for e in await audit.events()]


async def test_times_may_be_iso_8601(tmp_path: Path) -> None:
    async with correlator_at(tmp_path / "a.sqlite3") as audit:
        event = {"source": "s", "kind": "k", "at": "2023-11-14T22:13:20.500Z"}
        assert 202 == (await audit.post(event)).status_code

        [stored] = [e for e in await audit.events() if e["kind"] == "k"]
        assert T0 + 500 == stored["at"]


async def test_events_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    async with correlator_at(db) as audit:
        await audit.post([wire("dependency.lost", 10, dependency="exchange")])

    async with correlator_at(db) as restarted:
        kinds = sorted(str(e["kind"]) for e in await restarted.events())

        assert ["dependency.lost", "service.started", "service.started"] == kinds


async def test_in_memory_only_forgets_on_restart() -> None:
    async with correlator_at(":memory:") as audit:
        await audit.post([wire("order.sent", 1)])
    async with correlator_at(":memory:") as restarted:
        assert ["service.started"] == [e["kind"] for e in await restarted.events()]


async def test_drop_mode_accepts_events_and_keeps_none(tmp_path: Path) -> None:
    """AUDIT_DROP_EVENTS=true: the reporters see success, the trail stays empty."""
    async with correlator_at(tmp_path / "a.sqlite3", {"AUDIT_DROP_EVENTS": "true"}) as audit:
        response = await audit.post([wire("order.sent", 1), wire("order.sent", 2)])

        assert (202, 2) == (response.status_code, response.json()["accepted"])
        assert ["service.started"] == [e["kind"] for e in await audit.events()]


async def test_the_client_reads_the_correlation_as_typed_values(tmp_path: Path) -> None:
    """A restart fault seen by the engine, and its orders, round-trip through the HTTP API."""
    injected = fault_injected(
        run_id="run-1", fault_id="f1", target="exchange", fault="restart", at_ms=T0 + 1000
    )
    undone = fault_undone(run_id="run-1", fault_id="f1", target="exchange", at_ms=T0 + 1400)
    async with correlator_at(tmp_path / "a.sqlite3") as audit:
        await audit.post(
            [
                event_to_json(injected),
                event_to_json(undone),
                wire("order.sent", 900, order_id="a"),
                wire("dependency.lost", 1030, dependency="exchange"),
                wire("order.sent", 1100, order_id="b"),
                wire("dependency.regained", 1650, dependency="exchange"),
                wire("order.acknowledged", 1650, order_id="b"),
                wire("order.acknowledged", 905, order_id="a"),
                wire("service.started", 1300, source="exchange-OKX", book_reset=True),
            ]
        )

        correlation = await audit.client.correlate("run-1", T0 + 800, T0 + 5000)

    assert ("run-1", T0 + 800, T0 + 5000) == (
        correlation.correlation_id, correlation.from_ms, correlation.to_ms
    )  # fmt: skip
    assert ["fault.injected", "fault.undone"] == [e.kind for e in correlation.chaos_events]
    [fault] = correlation.faults
    assert ("f1", "restart", T0 + 1400) == (fault.fault_id, fault.fault, fault.undone_at_ms)
    [seen] = fault.observations
    assert ("trading-system-engine", True, 30) == (seen.service, seen.observed, seen.delay_ms)
    [outage] = correlation.outages_of("trading-system-engine", "exchange")
    assert 620 == outage.duration_ms
    assert 620 == correlation.longest_outage_ms("trading-system-engine")
    assert [("exchange-OKX", {"book_reset": True})] == [
        (s.service, dict(s.data)) for s in correlation.service_starts
    ]
    orders = correlation.orders
    assert (2, 2, 0, 0) == (orders.sent, orders.acknowledged, orders.in_flight, orders.lost)
    assert () == correlation.unobserved_faults


async def test_a_bad_window_is_refused(tmp_path: Path) -> None:
    async with correlator_at(tmp_path / "a.sqlite3") as audit:
        response = await audit.http.get("/api/v1/correlate", params={"from": "yesterday"})

        assert 422 == response.status_code
        assert "yesterday" in response.json()["detail"]


async def test_each_source_is_told_as_far_as_its_batches_said(tmp_path: Path) -> None:
    """The mark only moves on; a closing batch closes the source, a later batch reopens it;
    a source without marks does not say, and one without events in the window is not told."""
    async with correlator_at(tmp_path / "a.sqlite3") as audit:

        async def batch(events: list[dict[str, object]], **headers: str) -> int:
            response = await audit.http.post("/api/v1/events", json=events, headers=headers)
            return response.status_code

        engine = {"X-Audit-Source": "trading-system-engine"}
        assert 202 == await batch(
            [wire("order.sent", 1)], **engine, **{"X-Audit-Complete-To": str(T0 + 5)}
        )
        assert 202 == await batch([], **engine, **{"X-Audit-Complete-To": str(T0 + 3)})
        assert 202 == await batch([wire("order.received", 2, source="exchange-OKX")])
        assert 202 == await batch(
            [], **{"X-Audit-Source": "risk-monitor", "X-Audit-Complete-To": str(T0 + 9)}
        )
        first = await audit.client.correlate(from_ms=T0, to_ms=T0 + 100)
        assert 202 == await batch(
            [], **engine, **{"X-Audit-Complete-To": str(T0 + 7), "X-Audit-Closed": "1"}
        )
        closed = await audit.client.correlate(from_ms=T0, to_ms=T0 + 100)
        assert 202 == await batch([], **engine, **{"X-Audit-Complete-To": str(T0 + 8)})
        reopened = await audit.client.correlate(from_ms=T0, to_ms=T0 + 100)

    assert (
        SourceProgress("exchange-OKX", None),
        SourceProgress("trading-system-engine", T0 + 5),
    ) == first.sources
    assert SourceProgress("trading-system-engine", T0 + 7, closed=True) == closed.sources[1]
    assert SourceProgress("trading-system-engine", T0 + 8) == reopened.sources[1]
    assert (True, False) == (first.sources[1].behind(T0 + 6), first.sources[1].behind(T0 + 5))


async def test_a_malformed_progress_mark_refuses_the_batch(tmp_path: Path) -> None:
    async with correlator_at(tmp_path / "a.sqlite3") as audit:
        response = await audit.http.post(
            "/api/v1/events",
            json=[wire("order.sent", 1)],
            headers={"X-Audit-Source": "trading-system-engine", "X-Audit-Complete-To": "soon"},
        )
        stored = await audit.events()

    assert 422 == response.status_code
    assert "X-Audit-Complete-To" in response.json()["detail"]
    assert not [e for e in stored if e["kind"] == "order.sent"]
