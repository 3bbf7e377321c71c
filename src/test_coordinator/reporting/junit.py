"""junit.xml: a test suite per scenario run, a test case per step and per check.

The layout follows the JUnit XML that CI servers read (Jenkins, GitLab,
GitHub Actions reporters): ``<testsuites>`` holding one ``<testsuite>`` per
run, each with ``<properties>`` (run id, seed, file, outcome) and
``<testcase classname=... name=... time=...>`` elements. A failed step or check
has a ``<failure message=...>``, an infrastructure problem an ``<error>``, a
step that never ran a ``<skipped>``. Besides steps and checks, each suite has
test cases for setup, each steady-state condition and the undo.
"""

from __future__ import annotations

import os
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from test_coordinator.engine.results import CheckResult, RunResult, Status, StepResult


def _case(
    suite: ET.Element, classname: str, name: str, seconds: float, status: Status, detail: str
) -> None:
    case = ET.SubElement(
        suite, "testcase", classname=classname, name=name, time=f"{max(seconds, 0.0):.3f}"
    )
    message = detail.splitlines()[0][:500] if detail else status.value
    if status is Status.FAILED:
        ET.SubElement(case, "failure", message=message, type="failure").text = detail
    elif status is Status.ERROR:
        ET.SubElement(case, "error", message=message, type="error").text = detail
    elif status is Status.SKIPPED:
        ET.SubElement(case, "skipped", message=message)
    elif detail:
        ET.SubElement(case, "system-out").text = detail


def _step_case(suite: ET.Element, prefix: str, result: StepResult, label: str) -> None:
    _case(suite, prefix, label, result.duration_ms / 1000.0, result.status, result.detail)


def _check_case(suite: ET.Element, prefix: str, result: CheckResult) -> None:
    _case(suite, prefix, f"check {result.index}: {result.name}", 0.0, result.status, result.detail)


def junit_suite(result: RunResult) -> ET.Element:
    started = datetime.fromtimestamp(result.started_at_epoch_ms / 1000.0, tz=UTC)
    suite = ET.Element(
        "testsuite",
        name=result.scenario,
        timestamp=started.replace(tzinfo=None).isoformat(timespec="seconds"),
        hostname=socket.gethostname(),
        id=result.run_id,
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", result.run_id),
        ("file", str(result.file)),
        ("seed", str(result.seed)),
        ("outcome", result.outcome.value),
        ("reason", result.reason),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    base = result.scenario
    if result.setup is not None:
        _step_case(suite, f"{base}.setup", result.setup, result.setup.name)
    for steady in result.steady_state:
        _step_case(suite, f"{base}.steady_state", steady, steady.name)
    for step in result.steps:
        _step_case(suite, f"{base}.steps", step, f"step {step.step_id}: {step.name}")
    for check in result.checks:
        _check_case(suite, f"{base}.checks", check)
    failed_undos = [u for u in result.undos if u.status != "done"]
    undo_detail = "; ".join(f"{u.action} {u.service}: {u.detail}" for u in result.undos)
    _case(
        suite,
        f"{base}.undo",
        "undo every fault",
        0.0,
        Status.ERROR if failed_undos else Status.PASSED,
        undo_detail or "nothing was left to undo",
    )
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("time", f"{result.duration_ms / 1000.0:.3f}")
    ET.SubElement(
        suite, "system-out"
    ).text = f"outcome {result.outcome.value}: {result.reason or 'every step and check passed'}"
    return suite


def junit_document(results: Sequence[RunResult]) -> ET.ElementTree:
    root = ET.Element("testsuites", name="test-coordinator")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for result in results:
        suite = junit_suite(result)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        seconds += result.duration_ms / 1000.0
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


XML_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"


def write_junit(results: Sequence[RunResult], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".xml.tmp")
    root = junit_document(results).getroot()
    assert root is not None
    text = ET.tostring(root, encoding="unicode")
    # errors="replace": as for journal.json, a file name that is not UTF-8 costs a character.
    temporary.write_text(XML_DECLARATION + text + "\n", encoding="utf-8", errors="replace")
    os.replace(temporary, path)
    return path
