"""The exchange simulator fills each order once, counts it, reports it, and forgets on restart."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from test_coordinator.adapters.audit import RecordingAuditSink
from test_coordinator.config import load_settings
from test_coordinator.infrastructure.prometheus import PrometheusMetrics
from test_coordinator.sample.exchange import ExchangeSimulator
from test_coordinator.sample.host import SampleContext, sample_app
from test_coordinator.sample.observations import Observations
from test_coordinator.service.state import ServiceState

ORDER = {"order_id": "o-1", "symbol": "BTC-USD", "side": "buy", "qty": 2.5}


@dataclass
class Exchange:
    http: httpx.AsyncClient
    audit: RecordingAuditSink
    service: ExchangeSimulator

    async def metric(self, name: str) -> float:
        text = (await self.http.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")


async def start_exchange() -> tuple[Exchange, httpx.AsyncClient]:
    settings = load_settings(
        service_name="exchange-simulator", service_instance_name="exchange-OKX"
    )
    audit = RecordingAuditSink()
    metrics = PrometheusMetrics("", runtime_collectors=False)
    service = ExchangeSimulator(
        SampleContext(settings, {}, metrics, Observations(audit, "exchange-OKX"))
    )
    await service.start()
    app = sample_app(ServiceState(settings, [service], ready=True), service, metrics)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://exchange")
    return Exchange(http, audit, service), http


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    made, http = await start_exchange()
    async with http:
        yield made


async def test_a_new_order_is_filled(exchange: Exchange) -> None:
    response = await exchange.http.post("/api/v1/orders", json=ORDER)

    assert 201 == response.status_code
    body = response.json()
    assert ("o-1", "filled", "BTC-USD", "buy", 2.5) == (
        body["order_id"], body["status"], body["symbol"], body["side"], body["qty"]
    )  # fmt: skip
    assert body == (await exchange.http.get("/api/v1/orders/o-1")).json()


async def test_an_order_sent_again_is_not_filled_twice(exchange: Exchange) -> None:
    """The engine retries an order whose answer it missed: same fill, counted once."""
    first = await exchange.http.post("/api/v1/orders", json=ORDER)
    again = await exchange.http.post("/api/v1/orders", json=ORDER)

    assert (201, 200) == (first.status_code, again.status_code)
    assert first.json() == again.json()
    assert 1.0 == await exchange.metric("orders_received_total")
    assert 1.0 == await exchange.metric("orders_filled_total")
    assert 1.0 == await exchange.metric("orders_duplicate_total")
    assert ["service.started", "order.received"] == exchange.audit.kinds()


async def test_it_reports_its_start_with_an_empty_book(exchange: Exchange) -> None:
    [started] = exchange.audit.events

    assert ("service.started", "exchange-OKX") == (started.kind, started.source)
    assert {"book_reset": True, "orders_in_book": 0} == dict(started.data)


@pytest.mark.parametrize(
    "change",
    [{"qty": 0}, {"side": "hold"}, {"order_id": ""}, {"symbol": None}],
    ids=["zero-qty", "bad-side", "empty-id", "no-symbol"],
)
async def test_a_malformed_order_is_refused_and_not_counted(
    exchange: Exchange, change: dict[str, object]
) -> None:
    response = await exchange.http.post("/api/v1/orders", json={**ORDER, **change})

    assert 422 == response.status_code
    assert 0.0 == await exchange.metric("orders_received_total")


async def test_an_unknown_order_is_404(exchange: Exchange) -> None:
    assert 404 == (await exchange.http.get("/api/v1/orders/nope")).status_code


async def test_a_new_process_has_an_empty_book(exchange: Exchange) -> None:
    """The book is in memory: a restarted exchange no longer knows earlier orders."""
    await exchange.http.post("/api/v1/orders", json=ORDER)
    restarted, http = await start_exchange()
    async with http:
        assert 404 == (await restarted.http.get("/api/v1/orders/o-1")).status_code


async def test_health_is_the_ecosystem_payload(exchange: Exchange) -> None:
    body = (await exchange.http.get("/api/v1/health")).json()

    assert ("healthy", "exchange-simulator", "exchange-OKX") == (
        body["status"], body["service"], body["instance"]
    )  # fmt: skip
