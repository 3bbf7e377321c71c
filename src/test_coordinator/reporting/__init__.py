"""Reports of a run: journal.json, junit.xml, report.html and the terminal summary.

The writers load when a report is written (or one of them is first named here), not
with the package: the terminal's tables live in it too, and a run that never gets to
write a report (an invalid scenario, a store that cannot open) should not pay for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from test_coordinator.engine.results import RunResult
    from test_coordinator.reporting.html import HTML_FILE as HTML_FILE
    from test_coordinator.reporting.html import write_html_report as write_html_report
    from test_coordinator.reporting.journal_json import write_journal as write_journal
    from test_coordinator.reporting.junit import write_junit as write_junit

JOURNAL_FILE = "journal.json"
JUNIT_FILE = "junit.xml"

_WRITERS = {
    "HTML_FILE": "html",
    "write_html_report": "html",
    "write_journal": "journal_json",
    "write_junit": "junit",
}


def write_run_reports(result: RunResult) -> list[Path]:
    """``<run_dir>/journal.json``, ``junit.xml`` and ``report.html``; the paths written."""
    from test_coordinator.reporting.html import write_html_report
    from test_coordinator.reporting.journal_json import write_journal
    from test_coordinator.reporting.junit import write_junit

    result.run_dir.mkdir(parents=True, exist_ok=True)
    journal = write_journal(result, result.run_dir / JOURNAL_FILE)
    junit = write_junit([result], result.run_dir / JUNIT_FILE)
    return [journal, junit, write_html_report(journal)]


def __getattr__(name: str) -> Any:
    module = _WRITERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "HTML_FILE",
    "JOURNAL_FILE",
    "JUNIT_FILE",
    "write_html_report",
    "write_journal",
    "write_junit",
    "write_run_reports",
]
