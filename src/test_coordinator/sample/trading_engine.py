"""trading-system-engine: sends orders to the exchange at a steady rate and keeps at it.

Run it with ``python -m test_coordinator.sample trading-system-engine``.

Environment:

* ``SERVICE_NAME`` (default ``trading-system-engine``), ``SERVICE_INSTANCE_NAME``,
  ``HTTP_HOST``, ``HTTP_PORT``, ``GRPC_PORT`` (50051; 0 picks a free one),
  ``REDIS_URL``, ``DATA_DIR``, ``LOG_LEVEL``, ``ENVIRONMENT``: the ecosystem's settings.
* ``EXCHANGE_URL`` (``http://127.0.0.1:8081``): the exchange simulator's base URL.
* ``EXCHANGE_NAME`` (``exchange``): the dependency's name in health and audit events.
* ``ORDER_RATE_PER_S`` (20): new orders per second; 0 sends none.
* ``ORDER_RETRY`` (true): retry an order the exchange did not answer, with
  exponential backoff (50 ms doubling up to ``ORDER_RETRY_MAX_DELAY_MS``, 1000)
  until it does; false counts such an order failed and drops it.
* ``ORDER_TIMEOUT_MS`` (300): one attempt's deadline, so a paused (SIGSTOP)
  exchange shows as timeouts, and the engine recovers once it resumes.
* ``ORDER_SYMBOL`` (``BTC-USD``), ``MAX_PENDING_ORDERS`` (1000: past that many
  orders awaiting an answer, no new ones are made).
* ``AUDIT_URL``: the audit correlator; the engine reports ``service.started``,
  ``dependency.lost`` / ``dependency.regained`` (dependency ``exchange``) and
  ``order.sent`` / ``order.acknowledged`` / ``order.failed`` with each order id.

Endpoints: ``GET /api/v1/health`` (``degraded`` with ``failing: ["exchange"]``
while the exchange cannot be reached), ``/api/v1/ready``, ``/metrics``
(``orders_sent_total``, ``orders_acknowledged_total``, ``orders_failed_total``,
``order_retries_total``), ``GET /api/v1/orders/stats`` (``sent``,
``acknowledged``, ``failed``, ``pending``, ``retries``, ``halted``), and
``POST /api/v1/orders/halt``: no new order from then on (the close of trading, a
cut-off for the books); the pending ones go on until the exchange answers or they
are given up, so that once ``pending`` is 0 every count stands still. The answer
is the stats at the halt.

gRPC: the standard health service answers SERVING for as long as the process
runs, the exchange outage included: it says the engine is alive, while the
HTTP health says whether it can trade.
"""

from __future__ import annotations

from dataclasses import asdict

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from test_coordinator.adapters.audit.circuit_breaker import ExponentialBackoff
from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.ports.audit import SERVICE_STARTED
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.sample.host import STOP_GRACE_S, SampleContext
from test_coordinator.sample.options import env_bool, env_float, env_text
from test_coordinator.sample.order_flow import ExchangeLink, FlowStats, OrderFlow, order_ids
from test_coordinator.sample.order_retry import OrderRetryPolicy

SERVICE = "trading-system-engine"
DEFAULT_EXCHANGE_URL = "http://127.0.0.1:8081"

log = get_logger("test_coordinator.sample.engine")


class TradingSystemEngine:
    def __init__(self, context: SampleContext) -> None:
        env = context.environ
        exchange_url = env_text(env, "EXCHANGE_URL", DEFAULT_EXCHANGE_URL).rstrip("/")
        timeout_s = env_float(env, "ORDER_TIMEOUT_MS", 300.0, minimum=1.0) / 1000.0
        max_delay_s = env_float(env, "ORDER_RETRY_MAX_DELAY_MS", 1000.0, minimum=1.0) / 1000.0
        self.retry = env_bool(env, "ORDER_RETRY", True)
        self.rate_per_s = env_float(env, "ORDER_RATE_PER_S", 20.0)
        self._observations = context.observations
        self.link = ExchangeLink(env_text(env, "EXCHANGE_NAME", "exchange"), self._observations)
        self._client = httpx.AsyncClient(
            trust_env=False,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self.flow = OrderFlow(
            client=self._client,
            orders_url=f"{exchange_url}/api/v1/orders",
            link=self.link,
            observations=self._observations,
            metrics=context.metrics,
            policy=OrderRetryPolicy(
                retry=self.retry, backoff=ExponentialBackoff(base_s=0.05, max_s=max_delay_s)
            ),
            rate_per_s=self.rate_per_s,
            next_order_id=order_ids(context.settings.service_instance_name),
            symbol=env_text(env, "ORDER_SYMBOL", "BTC-USD"),
            max_pending=int(env_float(env, "MAX_PENDING_ORDERS", 1000.0, minimum=1.0)),
        )
        self._exchange_url = exchange_url

    def dependency_health(self) -> list[DependencyHealth]:
        return self.link.dependency_health()

    async def start(self) -> None:
        self._observations.report(
            SERVICE_STARTED, exchange=self._exchange_url, order_retry=self.retry,
            order_rate_per_s=self.rate_per_s,
        )  # fmt: skip
        await self.flow.start()

    async def stop(self) -> None:
        try:
            await self.flow.stop(STOP_GRACE_S)
        finally:
            await self._client.aclose()

    def install(self, app: FastAPI) -> None:
        @app.get("/api/v1/orders/stats", summary="Orders sent, acknowledged, failed, pending")
        async def order_stats() -> JSONResponse:
            return self._stats_json(self.flow.stats)

        @app.post("/api/v1/orders/halt", summary="Make no new order; pending ones go on")
        async def halt_orders() -> JSONResponse:
            stats = await self.flow.halt()
            log.info("orders halted", sent=stats.sent, pending=stats.pending)
            return self._stats_json(stats)

    def _stats_json(self, stats: FlowStats) -> JSONResponse:
        return JSONResponse(
            {**asdict(stats), "exchange_reachable": self.link.reachable, "order_retry": self.retry}
        )


def build(context: SampleContext) -> TradingSystemEngine:
    return TradingSystemEngine(context)
