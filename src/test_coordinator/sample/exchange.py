"""exchange-simulator: takes orders over HTTP, acknowledges and fills them at once.

Run it with ``python -m test_coordinator.sample exchange-simulator``.

Environment:

* ``SERVICE_NAME`` (default ``exchange-simulator``), ``SERVICE_INSTANCE_NAME``
  (for instance ``exchange-OKX``; default the service name), ``HTTP_HOST``
  (127.0.0.1), ``HTTP_PORT`` (8080; 0 picks a free one), ``REDIS_URL``
  (registers in the service registry when set), ``DATA_DIR``, ``LOG_LEVEL``,
  ``ENVIRONMENT``: the ecosystem's settings.
* ``AUDIT_URL``: the audit correlator's base URL; when set, the exchange reports
  ``service.started`` (``book_reset: true``) and ``order.received`` for each new order.

Endpoints:

* ``POST /api/v1/orders`` ``{order_id, symbol, side: buy|sell, qty > 0}``: 201
  ``{order_id, status: "filled", ...}`` for a new order; 200 with the same body
  for an order id it already has (a retry is harmless); 422 for a malformed order.
* ``GET /api/v1/orders/{order_id}``: the order, or 404.
* ``GET /api/v1/health``, ``/api/v1/ready``, ``/metrics`` (``orders_received_total``,
  ``orders_filled_total``, ``orders_duplicate_total``).

The order book lives in memory only: a restart loses it, as a real crash would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from fastapi import FastAPI, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from test_coordinator.ports.audit import ORDER_RECEIVED, SERVICE_STARTED
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.sample.host import SampleContext
from test_coordinator.sample.options import now_ms

SERVICE = "exchange-simulator"


class OrderRequest(BaseModel):
    order_id: Annotated[str, Field(min_length=1, max_length=128)]
    symbol: Annotated[str, Field(min_length=1, max_length=32)]
    side: Literal["buy", "sell"]
    qty: Annotated[float, Field(gt=0)]


@dataclass(frozen=True, slots=True)
class Fill:
    order_id: str
    symbol: str
    side: str
    qty: float
    status: str
    filled_at_ms: int


class OrderBook:
    """Filled orders by id; in memory, so a new process starts with an empty book."""

    def __init__(self) -> None:
        self._fills: dict[str, Fill] = {}

    def __len__(self) -> int:
        return len(self._fills)

    def fill(self, order: OrderRequest, at_ms: int) -> tuple[Fill, bool]:
        """The fill of ``order`` and whether it is new (False: the id was filled before)."""
        known = self._fills.get(order.order_id)
        if known is not None:
            return known, False
        fill = Fill(order.order_id, order.symbol, order.side, order.qty, "filled", at_ms)
        self._fills[order.order_id] = fill
        return fill, True

    def get(self, order_id: str) -> Fill | None:
        return self._fills.get(order_id)


class ExchangeSimulator:
    def __init__(self, context: SampleContext) -> None:
        self.book = OrderBook()
        self._observations = context.observations
        metrics = context.metrics
        self._received = metrics.counter("orders_received", "New orders taken")
        self._filled = metrics.counter("orders_filled", "Orders filled")
        self._duplicates = metrics.counter(
            "orders_duplicate", "Orders received again with a known id (client retries)"
        )

    def dependency_health(self) -> list[DependencyHealth]:
        return []

    async def start(self) -> None:
        self._observations.report(SERVICE_STARTED, book_reset=True, orders_in_book=len(self.book))

    async def stop(self) -> None:
        return None

    def install(self, app: FastAPI) -> None:
        @app.post("/api/v1/orders", summary="Place an order; it is filled at once")
        async def place_order(order: OrderRequest) -> JSONResponse:
            fill, new = self.book.fill(order, now_ms())
            if new:
                self._received.inc()
                self._filled.inc()
                self._observations.report(ORDER_RECEIVED, order_id=order.order_id)
            else:
                self._duplicates.inc()
            return JSONResponse(asdict(fill), status_code=201 if new else 200)

        @app.get("/api/v1/orders/{order_id}", summary="One order, if this exchange has it")
        async def get_order(order_id: Annotated[str, Path(max_length=128)]) -> JSONResponse:
            fill = self.book.get(order_id)
            if fill is None:
                return JSONResponse({"detail": f"no order {order_id!r}"}, status_code=404)
            return JSONResponse(asdict(fill))


def build(context: SampleContext) -> ExchangeSimulator:
    return ExchangeSimulator(context)
