"""The run's audit trail: each fault injected and undone, reported to the audit correlator.

When the scenario has ``audit:``, every fault step reports ``fault.injected``
(with the services that must observe it) at the moment of injection, and
``fault.undone`` when the fault ends: the restart that brings the service back,
the ``start`` or ``resume`` step that reverts it, or the undo at the end. The
run id is the correlation id and the fault id is the undo record's id, so an
injection and its undo pair up. Reporting only queues the event (it never
blocks nor raises); the link delivers it in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from test_coordinator.engine.journal import Journal
from test_coordinator.engine.ports import AuditLink
from test_coordinator.engine.undo import UndoEntry

if TYPE_CHECKING:  # loaded with a link (audit:): a run without one never needs them
    from test_coordinator.engine.order_accounting import OrderCutOff
    from test_coordinator.ports.audit import AuditEvent

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ReportedFault:
    """A fault the coordinator reported: its id, service, kind and step."""

    fault_id: str
    target: str
    fault: str
    step: str


class RunAudit:
    """The audit trail of one run; without a link (no ``audit:``) it only remembers nothing."""

    def __init__(
        self,
        link: AuditLink | None,
        *,
        run_id: str,
        journal: Journal,
        wall_clock_ms: Callable[[], int],
        affects: Mapping[str, Sequence[str]] | None = None,
        url: str = "",
    ) -> None:
        self.link = link
        self.url = url
        self._run_id = run_id
        self._journal = journal
        self._wall_clock_ms = wall_clock_ms
        self._affects = dict(affects or {})
        self.emitted: list[AuditEvent] = []
        self.faults: list[ReportedFault] = []
        self._open: dict[str, ReportedFault] = {}
        self._closed = False
        self.cut_off: OrderCutOff | None = None
        """The run's order cut-off, taken by the first audit check and shared by the rest."""

    @property
    def enabled(self) -> bool:
        return self.link is not None

    def injected(self, entry: UndoEntry, fault: str, step: str) -> None:
        """Report ``fault`` on the entry's service, injected now by ``step``."""
        if self.link is None:
            return
        from test_coordinator.ports.audit import fault_injected

        reported = ReportedFault(entry.record.undo_id, entry.service, fault, step)
        affects = self._affects.get(entry.service)
        self._emit(
            fault_injected(
                run_id=self._run_id,
                fault_id=reported.fault_id,
                target=reported.target,
                fault=fault,
                at_ms=self._wall_clock_ms(),
                step=step,
                affects=None if affects is None else list(affects),
            )
        )
        self.faults.append(reported)
        self._open[reported.fault_id] = reported

    def undone(self, entry: UndoEntry) -> None:
        """The fault of ``entry`` ended now (reverted by a step or undone)."""
        if self.link is None or self._open.pop(entry.record.undo_id, None) is None:
            return
        from test_coordinator.ports.audit import fault_undone

        self._emit(
            fault_undone(
                run_id=self._run_id,
                fault_id=entry.record.undo_id,
                target=entry.service,
                at_ms=self._wall_clock_ms(),
            )
        )

    def _emit(self, event: AuditEvent) -> None:
        assert self.link is not None
        try:
            self.link.sink.emit(event)
        except Exception:  # the port says emit never raises; a broken sink must not break a run
            log.exception("audit: emitting %s failed", event.kind)
            return
        self.emitted.append(event)
        data: dict[str, Any] = {
            "event": event.kind,
            "event_id": event.event_id,
            "fault_id": event.data.get("fault_id"),
            "target": event.data.get("target"),
            "at_ms_epoch": event.at_ms_epoch,
        }
        if "affects" in event.data:
            data["affects"] = list(event.data["affects"])
        self._journal.record("audit.emitted", **data)

    async def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until every event emitted so far is delivered."""
        if self.link is None:
            return True
        try:
            return await self.link.sink.flush(timeout_s)
        except Exception:
            log.exception("audit: flush failed")
            return False

    def stats(self) -> dict[str, Any]:
        """The reporter's counts, with how many events this run emitted."""
        if self.link is None:
            return {"emitted": 0}
        try:
            counts = dict(self.link.stats())
        except Exception as exc:
            counts = {"problem": repr(exc)}
        return {"emitted": len(self.emitted), **counts}

    async def close(self) -> None:
        """Deliver what can be delivered (bounded), stop, and journal the reporter's counts."""
        if self.link is None or self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.link.close()
        except Exception:
            log.exception("audit: closing the link failed")
        self._journal.record("audit.reporter", url=self.url, **self.stats())
