"""Writes as data: what the outbox keeps and replays, and how domain objects travel.

A :class:`PendingWrite` is one call of a store's write method, captured as JSON so
it survives a process restart. Every write is idempotent (an upsert, an insert
that ignores duplicates, an overwrite), so replaying one that had in fact reached
the server before a crash does no harm.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from test_coordinator.ports.live_state import LiveRun
from test_coordinator.ports.storage import (
    JournalEvent,
    RunRecord,
    RunStatus,
    UndoRecord,
    UndoStatus,
)


class WriteKind(StrEnum):
    SAVE_RUN = "save_run"
    APPEND_EVENTS = "append_events"
    RECORD_UNDO = "record_undo"
    FINISH_UNDO = "finish_undo"
    PUBLISH_LIVE_RUN = "publish_live_run"


@dataclass(frozen=True, slots=True)
class PendingWrite:
    kind: WriteKind
    payload: Mapping[str, Any]

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind.value, "payload": self.payload}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PendingWrite:
        data = json.loads(text)
        return cls(WriteKind(data["kind"]), data["payload"])


def save_run(run: RunRecord) -> PendingWrite:
    return PendingWrite(WriteKind.SAVE_RUN, run_to_row(run))


def append_events(events: Sequence[JournalEvent]) -> PendingWrite:
    return PendingWrite(WriteKind.APPEND_EVENTS, {"events": [event_to_row(e) for e in events]})


def record_undo(undo: UndoRecord) -> PendingWrite:
    return PendingWrite(WriteKind.RECORD_UNDO, undo_to_row(undo))


def finish_undo(undo_id: str, status: UndoStatus, detail: str) -> PendingWrite:
    payload = {"undo_id": undo_id, "status": status.value, "detail": detail}
    return PendingWrite(WriteKind.FINISH_UNDO, payload)


def publish_live_run(run: LiveRun) -> PendingWrite:
    return PendingWrite(WriteKind.PUBLISH_LIVE_RUN, live_run_to_row(run))


def run_to_row(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "scenario": run.scenario,
        "status": run.status.value,
        "started_at_ms": run.started_at_ms,
        "ended_at_ms": run.ended_at_ms,
        "summary": dict(run.summary),
    }


def run_from_row(row: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        scenario=row["scenario"],
        status=RunStatus(row["status"]),
        started_at_ms=row["started_at_ms"],
        ended_at_ms=row["ended_at_ms"],
        summary=row["summary"] or {},
    )


def event_to_row(event: JournalEvent) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "at_ms": event.at_ms,
        "kind": event.kind,
        "data": dict(event.data),
    }


def event_from_row(row: Mapping[str, Any]) -> JournalEvent:
    return JournalEvent(row["run_id"], row["seq"], row["at_ms"], row["kind"], row["data"] or {})


def undo_to_row(undo: UndoRecord) -> dict[str, Any]:
    return {
        "undo_id": undo.undo_id,
        "run_id": undo.run_id,
        "target": undo.target,
        "action": dict(undo.action),
        "status": undo.status.value,
        "created_at_ms": undo.created_at_ms,
        "detail": undo.detail,
    }


def undo_from_row(row: Mapping[str, Any]) -> UndoRecord:
    return UndoRecord(
        undo_id=row["undo_id"],
        run_id=row["run_id"],
        target=row["target"],
        action=row["action"] or {},
        status=UndoStatus(row["status"]),
        created_at_ms=row["created_at_ms"],
        detail=row["detail"],
    )


def live_run_to_row(run: LiveRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "scenario": run.scenario,
        "status": run.status.value,
        "updated_at_ms": run.updated_at_ms,
    }


def live_run_from_row(row: Mapping[str, Any]) -> LiveRun:
    return LiveRun(
        run_id=row["run_id"],
        scenario=row["scenario"],
        status=RunStatus(row["status"]),
        updated_at_ms=int(row["updated_at_ms"]),
    )
