"""audit-correlator: stores the events services and the coordinator report, and answers
correlation queries over them.

Run it with ``python -m test_coordinator.sample audit-correlator``.

Environment:

* ``SERVICE_NAME`` (default ``audit-correlator``), ``SERVICE_INSTANCE_NAME``,
  ``HTTP_HOST``, ``HTTP_PORT``, ``REDIS_URL``, ``DATA_DIR``, ``LOG_LEVEL``,
  ``ENVIRONMENT``: the ecosystem's settings.
* ``AUDIT_DB``: the SQLite file that keeps the events across restarts; default
  ``DATA_DIR/<instance>/audit-events.sqlite3``; ``:memory:`` keeps them in memory only.
* ``AUDIT_DROP_EVENTS`` (false): true accepts events and throws them away, to
  show what a verification does when the audit trail is missing.

Endpoints:

* ``POST /api/v1/events``: one event or a JSON list of them, each
  ``{source, kind, at (epoch ms or ISO 8601), correlation_id?, data?, id?}``;
  202 ``{"accepted": n, "stored": new}``; an event id already stored is not
  stored again. 422 (nothing stored) if any event is malformed. The progress
  headers (``X-Audit-Source``, ``X-Audit-Complete-To``, ``X-Audit-Closed``; see
  :mod:`test_coordinator.adapters.audit.wire`) move that source's mark.
* ``GET /api/v1/events?correlation_id=&from=&to=&kind=&source=&limit=``: stored events.
* ``GET /api/v1/correlate?correlation_id=&from=&to=&slack_ms=&in_flight_ms=``:
  the correlation (see :mod:`test_coordinator.sample.correlation`); ``from``
  and ``to`` are epoch ms or ISO 8601; ``to`` defaults to now, ``from`` to the
  first event of ``correlation_id``. ``to`` is the orders' cut-off: they are
  counted as they stood at it, and what became of them since is told apart.
  ``sources``: how far each source with events in the window is delivered.
* ``GET /api/v1/health``, ``/api/v1/ready``, ``/metrics``
  (``audit_events_received_total``, ``audit_events_stored_total``,
  ``audit_events_dropped_total``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from test_coordinator.adapters.audit.wire import (
    MalformedAuditJson,
    correlation_to_json,
    event_from_json,
    event_to_json,
    parse_instant_ms,
    progress_from_headers,
)
from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.ports.audit import SERVICE_STARTED, AuditEvent, SourceProgress
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.sample.correlation import DEFAULT_IN_FLIGHT_MS, DEFAULT_SLACK_MS, correlate
from test_coordinator.sample.event_store import EventStore, EventStoreError
from test_coordinator.sample.host import SampleContext
from test_coordinator.sample.options import env_bool, env_text, now_ms

SERVICE = "audit-correlator"
IN_MEMORY = ":memory:"
MAX_EVENTS_LISTED = 10_000

log = get_logger("test_coordinator.sample.audit")

OptionalText = Annotated[str | None, Query()]


class AuditCorrelator:
    def __init__(self, context: SampleContext) -> None:
        settings, env = context.settings, context.environ
        db = env_text(env, "AUDIT_DB", str(settings.instance_data_dir / "audit-events.sqlite3"))
        self.db_path = None if db == IN_MEMORY else Path(db)
        self.drop_events = env_bool(env, "AUDIT_DROP_EVENTS", False)
        self._instance = settings.service_instance_name
        self._store: EventStore | None = None
        self._progress: dict[str, SourceProgress] = {}
        """How far each source's events are delivered, as its batches said (kept in memory)."""
        metrics = context.metrics
        self._received = metrics.counter("audit_events_received", "Events received")
        self._stored = metrics.counter("audit_events_stored", "Events stored (new ids)")
        self._dropped = metrics.counter(
            "audit_events_dropped", "Events accepted and thrown away (AUDIT_DROP_EVENTS)"
        )

    @property
    def store(self) -> EventStore:
        if self._store is None:
            raise RuntimeError("the audit correlator has not started")
        return self._store

    def dependency_health(self) -> list[DependencyHealth]:
        return []

    async def start(self) -> None:
        self._store = await EventStore.open(self.db_path)
        kept = len(self._store)
        await self._store.add(
            [
                AuditEvent(
                    SERVICE_STARTED,
                    now_ms(),
                    None,
                    self._instance,
                    {"events_kept": kept, "drop_events": self.drop_events},
                )
            ]
        )
        log.info(
            "audit events loaded",
            events=kept,
            file=str(self.db_path) if self.db_path else IN_MEMORY,
            drop_events=self.drop_events,
        )

    async def stop(self) -> None:
        if self._store is not None:
            await self._store.close()

    def install(self, app: FastAPI) -> None:
        @app.post("/api/v1/events", status_code=202, summary="Store one event or a list")
        async def post_events(request: Request) -> JSONResponse:
            try:
                body = json.loads(await request.body())
                items = body if isinstance(body, list) else [body]
                events = [event_from_json(item) for item in items]
                progress = progress_from_headers(request.headers)
            except (ValueError, MalformedAuditJson) as exc:
                return JSONResponse({"detail": f"not audit events: {exc}"}, status_code=422)
            self._received.inc(len(events))
            if self.drop_events:
                self._dropped.inc(len(events))
                return JSONResponse({"accepted": len(events), "stored": 0}, status_code=202)
            try:
                stored = await self.store.add(events)
            except EventStoreError as exc:
                log.error("audit events not stored", problem=str(exc))
                return JSONResponse({"detail": str(exc)}, status_code=503)
            self._stored.inc(stored)
            if progress is not None:
                self._note_progress(progress)
            return JSONResponse({"accepted": len(events), "stored": stored}, status_code=202)

        @app.get("/api/v1/events", summary="Stored events, oldest first")
        async def list_events(
            correlation_id: OptionalText = None,
            from_: Annotated[str | None, Query(alias="from")] = None,
            to: OptionalText = None,
            kind: OptionalText = None,
            source: OptionalText = None,
            limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_LISTED)] = 1000,
        ) -> JSONResponse:
            try:
                low = _instant(from_, default=0)
                high = _instant(to, default=now_ms())
            except MalformedAuditJson as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
            found = [
                event_to_json(e)
                for e in self.store.events()
                if low <= e.at_ms_epoch <= high
                and (correlation_id is None or e.correlation_id == correlation_id)
                and (kind is None or e.kind == kind)
                and (source is None or e.source == source)
            ]
            return JSONResponse({"count": len(found), "events": found[:limit]})

        @app.get("/api/v1/correlate", summary="Chaos events, outages and orders in a window")
        async def get_correlation(
            correlation_id: OptionalText = None,
            from_: Annotated[str | None, Query(alias="from")] = None,
            to: OptionalText = None,
            slack_ms: Annotated[int, Query(ge=0)] = DEFAULT_SLACK_MS,
            in_flight_ms: Annotated[int, Query(ge=0)] = DEFAULT_IN_FLIGHT_MS,
        ) -> JSONResponse:
            try:
                low = None if from_ is None else _instant(from_, default=0)
                high = _instant(to, default=now_ms())
            except MalformedAuditJson as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
            correlation = correlate(
                self.store.events(),
                correlation_id=correlation_id,
                from_ms=low,
                to_ms=high,
                slack_ms=slack_ms,
                in_flight_ms=in_flight_ms,
                progress=self._progress,
            )
            return JSONResponse(correlation_to_json(correlation))

    def _note_progress(self, told: SourceProgress) -> None:
        """A batch's word on its source: the mark only moves on; a batch after a close
        (the source started again) reopens it."""
        known = self._progress.get(told.source)
        before = known.complete_to_ms if known is not None else None
        marks = [m for m in (told.complete_to_ms, before) if m is not None]
        self._progress[told.source] = SourceProgress(
            told.source, max(marks, default=None), closed=told.closed
        )


def _instant(value: str | None, *, default: int) -> int:
    return default if value is None or not value.strip() else parse_instant_ms(value)


def build(context: SampleContext) -> AuditCorrelator:
    return AuditCorrelator(context)
