"""journal.json: the whole run (outcome, steps, checks, recoveries, undos, every event)."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from test_coordinator.engine.results import RunResult

FORMAT = "test-coordinator/journal"
FORMAT_VERSION = 1


def journal_document(result: RunResult) -> dict[str, Any]:
    started = datetime.fromtimestamp(result.started_at_epoch_ms / 1000.0, tz=UTC)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run_id": result.run_id,
        "scenario": result.scenario,
        "file": str(result.file),
        "outcome": result.outcome.value,
        "status": result.run_status.value,
        "exit_code": result.exit_code,
        "reason": result.reason,
        "seed": result.seed,
        "started_at": started.isoformat(timespec="milliseconds"),
        "duration_ms": result.duration_ms,
        "monotonic_origin_s": result.clock_origin_s,
        "variables": dict(result.variables),
        "setup": _plain(result.setup),
        "steady_state": [_plain(r) for r in result.steady_state],
        "steps": [_plain(r) for r in result.steps],
        "checks": [_plain(r) for r in result.checks],
        "recoveries": [
            {
                **_plain(r),
                "recovery_ms": r.recovery_ms,
                "recovery_from_restore_ms": r.recovery_from_restore_ms,
            }
            for r in result.recoveries
        ],
        "undos": [_plain(u) for u in result.undos],
        "events": [
            {
                "seq": e.seq,
                "at_ms": e.data.get("at_ms", e.at_ms),
                "kind": e.kind,
                "data": {k: v for k, v in e.data.items() if k != "at_ms"},
            }
            for e in result.events
        ],
    }


def _plain(value: Any) -> Any:
    """A result dataclass as a dict (statuses are string enums, so JSON writes their value)."""
    if value is None:
        return None
    return dataclasses.asdict(value)


def write_journal(result: RunResult, path: Path) -> Path:
    """Write atomically (a temporary file renamed), so a reader never sees half a journal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(journal_document(result), indent=2, default=_fallback, ensure_ascii=False)
    temporary = path.with_suffix(".json.tmp")
    # errors="replace": a path the system gave in bytes that are not UTF-8 (a scenario file's
    # name) is written with a replacement character rather than lose the journal.
    temporary.write_text(text + "\n", encoding="utf-8", errors="replace")
    os.replace(temporary, path)
    return path


def _fallback(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
