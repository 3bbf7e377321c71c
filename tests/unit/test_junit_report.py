"""junit.xml as CI tools read it (through junitparser), and journal.json."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
from engine_fakes import harness
from engine_scenarios import scenario

from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.results import RunResult
from test_coordinator.reporting import write_run_reports
from test_coordinator.reporting.junit import write_junit


async def a_run(tmp_path: Path, run_id: str, body: str) -> RunResult:
    return await run_scenario(scenario(body), harness().deps, RunOptions(run_id, 5, tmp_path))


FAILING = """
steps:
  - name: bounce
    restart: api
  - probe: {http: {url: "fake://value/none"}}
  - wait: 1ms
checks:
  - recovery_time: {service: api, max: 1s}
"""


async def test_a_testcase_per_step_and_check_with_failure_messages(tmp_path: Path) -> None:
    result = await a_run(tmp_path, "run-a", FAILING)

    journal_path, junit_path, _html_path = write_run_reports(result)

    [suite] = list(junitparser.JUnitXml.fromfile(str(junit_path)))
    cases = {case.name: case for case in suite}
    assert [
        "start services",
        "step 1: bounce",
        "step 2: probe http GET fake://value/none -> 200",
        "step 3: wait 1ms",
        "check 1: recovery time of api <= 1s",
        "undo every fault",
    ] == list(cases)
    assert cases["step 1: bounce"].is_passed
    [failure] = cases["step 2: probe http GET fake://value/none -> 200"].result
    assert isinstance(failure, junitparser.Failure)
    assert "no value none" in failure.message
    assert cases["step 3: wait 1ms"].is_skipped
    assert cases["check 1: recovery time of api <= 1s"].is_skipped
    assert (6, 1, 0, 2) == (suite.tests, suite.failures, suite.errors, suite.skipped)
    properties = {p.name: p.value for p in suite.properties()}
    assert {"run_id": "run-a", "seed": "5", "outcome": "failed"} == {
        k: properties[k] for k in ("run_id", "seed", "outcome")
    }
    journal = json.loads(journal_path.read_text())
    assert "failed" == journal["outcome"] and 1 == journal["exit_code"]
    assert [e["seq"] for e in journal["events"]] == list(range(1, len(journal["events"]) + 1))
    assert journal["events"][0]["kind"] == "run.started"


async def test_several_runs_give_one_file_with_a_suite_each(tmp_path: Path) -> None:
    first = await a_run(tmp_path, "run-1", "name: one\nsteps: [{wait: 1ms}]\n")
    second = await a_run(tmp_path, "run-2", "steps: [{wait: 1ms}]\n")

    path = write_junit([first, second], tmp_path / "junit.xml")

    xml = junitparser.JUnitXml.fromfile(str(path))
    assert ["one", "test"] == sorted(suite.name for suite in xml)
    assert 6 == xml.tests and 0 == xml.failures
