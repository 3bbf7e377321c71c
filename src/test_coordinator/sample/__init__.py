"""The sample trading ecosystem: three small services that follow the ecosystem's conventions.

* ``exchange-simulator`` (:mod:`.exchange`): takes orders and fills them; its book
  is lost on restart.
* ``trading-system-engine`` (:mod:`.trading_engine`): sends orders at a steady
  rate, retries while the exchange is away, degraded while it cannot reach it.
* ``audit-correlator`` (:mod:`.audit_correlator`): stores what the others and the
  coordinator report and answers correlation queries.

Each runs as ``python -m test_coordinator.sample <service>``, configured by the
environment (SERVICE_NAME, SERVICE_INSTANCE_NAME, HTTP_PORT, ... as every
service of the ecosystem, plus its own variables, listed in its module).
"""

SERVICES = ("exchange-simulator", "trading-system-engine", "audit-correlator")

__all__ = ["SERVICES"]
