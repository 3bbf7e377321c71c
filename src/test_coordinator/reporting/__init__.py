"""Reports of a run: journal.json, junit.xml, report.html and the terminal summary."""

from __future__ import annotations

from pathlib import Path

from test_coordinator.engine.results import RunResult
from test_coordinator.reporting.html import HTML_FILE, write_html_report
from test_coordinator.reporting.journal_json import write_journal
from test_coordinator.reporting.junit import write_junit

JOURNAL_FILE = "journal.json"
JUNIT_FILE = "junit.xml"


def write_run_reports(result: RunResult) -> list[Path]:
    """``<run_dir>/journal.json``, ``junit.xml`` and ``report.html``; the paths written."""
    result.run_dir.mkdir(parents=True, exist_ok=True)
    journal = write_journal(result, result.run_dir / JOURNAL_FILE)
    junit = write_junit([result], result.run_dir / JUNIT_FILE)
    return [journal, junit, write_html_report(journal)]


__all__ = [
    "HTML_FILE",
    "JOURNAL_FILE",
    "JUNIT_FILE",
    "write_html_report",
    "write_journal",
    "write_junit",
    "write_run_reports",
]
