"""validate, plan and schema through the command line (in process): outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from test_coordinator.entrypoints.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "examples"
RANDOM = """\
version: 1
services:
  a: {process: {command: x}, health: {tcp: {port: 1}}}
  b: {process: {command: x}, health: {tcp: {port: 2}}}
  c: {process: {command: x}, health: {tcp: {port: 3}}}
steps:
  - kill: {random: [a, b, c]}
  - restart: {random: [a, b, c], pick: 2}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_validate_reports_problems_and_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nservices: {}\nsteps:\n  - wiat: 1s\n")

    result = runner.invoke(app, ["validate", str(bad), str(EXAMPLES / "restart-recovery.yaml")])

    assert 2 == result.exit_code
    assert f"{bad}:2:11: services: needs at least 1 item(s)" in result.output
    assert f"{bad}:4:5: steps[0]: unknown step 'wiat'; did you mean 'wait'?" in result.output
    assert "restart-recovery.yaml: ok (2 services, 2 steps, 1 check)" in result.output
    assert "Traceback" not in result.output


def test_validate_refuses_an_unknown_var(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["validate", str(EXAMPLES / "restart-recovery.yaml"), "--var", "max_recovery=1"]
    )

    assert 2 == result.exit_code
    assert (
        "--var max_recovery: no scenario declares it; did you mean 'max_recovery_ms'? "
        "allowed: " in result.output
    )


def test_an_unknown_var_with_nothing_close_lists_what_is_allowed(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["validate", str(EXAMPLES / "restart-recovery.yaml"), "--var", "zzz=1"]
    )

    assert 2 == result.exit_code
    assert "--var zzz: no scenario declares it; allowed: " in result.output


def test_var_without_equals_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES), "--var", "oops"])

    assert 2 == result.exit_code
    assert "expected NAME=VALUE" in result.output


def test_plan_shows_the_resolved_timeline(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["plan", str(EXAMPLES / "restart-recovery.yaml"), "--var", "max_recovery_ms=1"]
    )

    assert 0 == result.exit_code, result.output
    assert "max_recovery_ms=1 (--var)" in result.output
    assert (
        "1      restart orders  (timeout 1m)  [fault: undo (start) recorded first" in result.output
    )
    assert "check 1  orders recovers quickly" in result.output


def test_plan_draws_random_targets_from_the_seed(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "random.yaml"
    path.write_text(RANDOM)

    def choices(seed: int) -> tuple[str, ...]:
        output = runner.invoke(app, ["plan", str(path), "--seed", str(seed)]).output
        return tuple(
            line.split("(timeout")[0] for line in output.splitlines() if "random from" in line
        )

    assert choices(11) == choices(11)
    assert 2 == len(choices(11))
    assert "kill " in choices(11)[0] and "restart " in choices(11)[1]
    assert len({choices(seed) for seed in range(8)}) > 1


def test_plan_shows_the_pick_of_a_named_random_step(runner: CliRunner) -> None:
    """A named step's line shows its name: the services the seed picks are in its note,
    the same ones the run with that seed acts on."""
    example = str(EXAMPLES / "random-target.yaml")
    lines = {
        seed: next(
            line
            for line in runner.invoke(app, ["plan", example, "--seed", str(seed)]).output.split(
                "\n"
            )
            if "random from" in line
        )
        for seed in range(6)
    }

    picks = {
        line.split("random from alpha, beta, gamma: ")[1].split("]")[0] for line in lines.values()
    }
    assert picks <= {"alpha", "beta", "gamma"} and len(picks) > 1
    assert all("kill one" in line for line in lines.values())


def test_schema_describes_steps_and_checks(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])

    assert 0 == result.exit_code
    schema = json.loads(result.output)
    defs = schema["$defs"]
    assert {"RestartStep", "ExpectStep", "RecoveryTimeCheck", "Service"} <= set(defs)
    assert (
        "additionalProperties" in defs["RestartStep"]
        and not defs["RestartStep"]["additionalProperties"]
    )
    assert "pattern" in defs["WaitStep"]["properties"]["wait"]


def test_report_renders_html_again_from_a_stored_journal(runner: CliRunner, tmp_path: Path) -> None:
    run_dir = tmp_path / "20261123-000000-abcdef"
    run_dir.mkdir()
    (run_dir / "journal.json").write_text(
        json.dumps({"scenario": "stored-run", "outcome": "passed", "steps": [], "checks": []})
    )

    result = runner.invoke(app, ["report", str(run_dir)])

    assert 0 == result.exit_code, result.output
    page = (run_dir / "report.html").read_text()
    assert "stored-run" in page


def test_report_on_a_broken_journal_names_it_and_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "journal.json"
    broken.write_text("{not json")

    result = runner.invoke(app, ["report", str(broken), str(tmp_path / "missing")])

    assert 2 == result.exit_code
    assert f"{broken}: cannot render a report" in result.output
    assert f"{tmp_path / 'missing'}: cannot render a report: No such file" in result.output
    assert "Traceback" not in result.output
