"""Validation of a log check's ``after:`` and a recovery check's ``max_from_restore``:
each problem at the file:line:column of the field that has it."""

from __future__ import annotations

from support.scenario_text import load_body, problems_of
from test_coordinator.scenario.checks import LogCheck, RecoveryTimeCheck, describe_check_text
from test_coordinator.scenario.loader import LoadedScenario

HEADER = """\
version: 1
services:
  api:
    process: {command: python, args: [server.py]}
    health: {http: {url: "http://127.0.0.1:8080/health"}}
  db:
    process: {command: db}
    health: {tcp: {port: 5432}}
"""
FIRST_BODY_LINE = HEADER.count("\n") + 1


def load(body: str) -> LoadedScenario:
    return load_body(HEADER, body)


def problems(body: str) -> list[str]:
    return problems_of(HEADER, body)


def line(offset: int) -> int:
    """The file's line number of the body's line ``offset`` (0: its first line)."""
    return FIRST_BODY_LINE + offset


def test_after_and_max_from_restore_load_when_they_refer_to_real_steps() -> None:
    loaded = load(
        """\
        steps:
          - name: freeze
            pause: api
          - name: thaw
            resume: api
        checks:
          - log: {service: api, present: "ready", after: thaw, min_count: 1}
          - recovery_time: {service: api, max_from_restore: 200ms}
          - recovery_time: {service: api, step: freeze, max: 2s, max_from_restore: 200ms}
        """
    )

    log, restore_only, both = loaded.model.checks
    assert isinstance(log, LogCheck) and "thaw" == log.log.after
    assert isinstance(restore_only, RecoveryTimeCheck)
    assert (None, 0.2) == (
        restore_only.recovery_time.max,
        restore_only.recovery_time.max_from_restore,
    )
    assert "log of api contains /ready/ after thaw" == describe_check_text(log)
    assert "recovery time of api <= 200ms from the restore" == describe_check_text(restore_only)
    assert "recovery time of api <= 2s, <= 200ms from the restore" == describe_check_text(both)


def test_an_after_that_names_no_step_is_refused_at_the_field() -> None:
    found = problems(
        """\
        steps:
          - name: kill db
            kill: db
          - start: db
        checks:
          - log: {service: db, present: "ready", after: "kill the db"}
        """
    )

    assert [
        f"s.yaml:{line(5)}:49: checks[0].log.after: no step is named 'kill the db'; "
        "did you mean 'kill db'? allowed: kill db"
    ] == found


def test_an_after_names_a_step_by_its_name_not_its_number_or_description() -> None:
    """Unnamed steps cannot be referred to (as with a load window's ``around``)."""
    found = problems(
        """\
        steps:
          - restart: api
        checks:
          - log: {service: api, present: "ready", after: "restart api"}
          - log: {service: api, absent: "panic", after: 1}
        """
    )

    assert [
        f"s.yaml:{line(3)}:50: checks[0].log.after: no step is named 'restart api'; "
        "allowed: name the step first",
        f"s.yaml:{line(4)}:49: checks[1].log.after: no step is named '1'; "
        "allowed: name the step first",
    ] == found


def test_a_recovery_check_needs_a_bound() -> None:
    found = problems(
        """\
        steps:
          - stop: db
        checks:
          - recovery_time: {service: db}
        """
    )

    assert [
        f"s.yaml:{line(3)}:20: checks[0].recovery_time: a recovery_time check needs at least "
        "one of max, max_from_restore"
    ] == found


def test_max_from_restore_needs_a_step_that_restores_the_service() -> None:
    """The undo at the end restores it too late for a check: it runs after the checks."""
    found = problems(
        """\
        steps:
          - pause: api
          - resume: api
          - stop: db
        checks:
          - recovery_time: {service: db, max_from_restore: 1s}
          - recovery_time: {service: api, max_from_restore: 1s}
        """
    )

    assert [
        f"s.yaml:{line(5)}:52: checks[0].recovery_time.max_from_restore: no step resumes or "
        "starts 'db', so no fault has a restore to measure from (the undo at the end comes "
        "after the checks); allowed: a resume or start step after the fault"
    ] == found


def test_max_from_restore_of_a_step_needs_a_restore_of_its_targets() -> None:
    found = problems(
        """\
        steps:
          - name: freeze
            pause: api
          - pause: db
          - resume: db
        checks:
          - recovery_time: {step: freeze, max_from_restore: 1s}
        """
    )

    assert [
        f"s.yaml:{line(6)}:53: checks[0].recovery_time.max_from_restore: no step resumes or "
        "starts 'api' (the target of step 'freeze'), so no fault has a restore to measure "
        "from (the undo at the end comes after the checks); allowed: a resume or start step "
        "after the fault"
    ] == found


def test_max_from_restore_of_a_restart_is_refused() -> None:
    found = problems(
        """\
        steps:
          - name: bounce
            restart: api
          - stop: api
          - start: api
        checks:
          - recovery_time: {step: bounce, max_from_restore: 1s}
        """
    )

    assert [
        f"s.yaml:{line(6)}:53: checks[0].recovery_time.max_from_restore: step 'bounce' is a "
        "restart, which restores the service itself: there is no restore to measure from; "
        "allowed: a pause, stop or kill that a resume or start step restores"
    ] == found


def test_max_from_restore_is_a_duration() -> None:
    [found] = problems(
        """\
        steps: [{pause: api}, {resume: api}]
        checks:
          - recovery_time: {service: api, max_from_restore: 200}
        """
    )

    assert found.startswith(f"s.yaml:{line(2)}:53: checks[0].recovery_time.max_from_restore: ")
    assert "200 has no unit" in found
