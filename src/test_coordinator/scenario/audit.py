"""The scenario's audit correlator: where the coordinator reports its faults, and who must see them.

``audit:`` at the top level makes the engine report every fault it injects and
every undo to the audit correlator at ``url`` (the run id is the correlation
id), and lets ``audit`` checks ask the correlator what happened.
"""

from __future__ import annotations

from pydantic import Field

from test_coordinator.scenario.types import Duration, ServiceName, Strict, Text

DEFAULT_FLUSH_TIMEOUT_S = 5.0
AUDIT_URL_ENV = "TC_AUDIT_URL"
"""When set, replaces ``audit.url`` (point a run at another correlator without editing it)."""


class AuditSettings(Strict):
    """The audit correlator of this scenario.

    ``affects`` names, for a service of the inventory, the services (as they
    report themselves to the correlator) that must observe a fault on it; a
    service not listed leaves it to the correlator (every service that reported
    a dependency of that name). An empty list: nobody has to observe it.
    """

    url: Text
    affects: dict[ServiceName, tuple[Text, ...]] = Field(default_factory=dict)
    flush_timeout: Duration = DEFAULT_FLUSH_TIMEOUT_S
