"""An ended run's files (journal.json, report.html, junit.xml), found through its summary.

What the REST and gRPC APIs both show of a run that ended comes from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DETAIL_LISTS = ("steady_state", "steps", "checks", "recoveries", "undos")


def run_file(summary: Mapping[str, Any], name: str) -> Path | None:
    """``name`` in the run's folder, if the run wrote it."""
    run_dir = summary.get("run_dir")
    if not isinstance(run_dir, str) or not run_dir:
        return None
    path = Path(run_dir) / name
    return path if path.is_file() else None


def journal_detail(path: Path) -> dict[str, Any]:
    """What the journal says the run did: ``setup`` (a dict) and the lists of
    :data:`DETAIL_LISTS` (of dicts); whatever of them is readable, nothing if none is."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    parts: dict[str, Any] = {}
    for key in DETAIL_LISTS:
        if isinstance(data.get(key), list):
            parts[key] = [item for item in data[key] if isinstance(item, dict)]
    if isinstance(data.get("setup"), dict):
        parts["setup"] = data["setup"]
    return parts
