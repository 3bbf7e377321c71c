"""End-of-run checks: load windows, metrics, logs and probe values."""

from __future__ import annotations

from pathlib import Path

from engine_fakes import harness
from engine_scenarios import scenario

from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.results import CheckResult, Outcome, Status
from test_coordinator.runtime.load import LoadSummary

METRICS_SERVICES = """
services:
  api:
    process: {command: fake-api}
    health: {http: {url: "fake://api/health"}}
    metrics_url: fake://api/metrics
"""


async def checks_of(
    body: str, tmp_path: Path, **harness_kwargs: object
) -> tuple[list[CheckResult], object]:
    h = harness(**harness_kwargs)  # type: ignore[arg-type]
    loaded = scenario(body, services=METRICS_SERVICES)
    result = await run_scenario(loaded, h.deps, RunOptions("r", 1, tmp_path))
    return list(result.checks), h


async def test_load_check_over_a_window_around_a_step(tmp_path: Path) -> None:
    summary = LoadSummary(200, 10, 0.05, 2.0, 40.0, 90.0, 120.0)
    checks, h = await checks_of(
        """
        steps:
          - name: traffic
            background: {load: {url: "fake://api/", rate: 100}}
          - name: bounce
            restart: api
        checks:
          - load:
              generator: traffic
              window: {around: bounce, before: 1s, after: 2s}
              max_error_rate: 0.1
              max_p95: 50ms
          - load: {max_p99: 80ms}
        """,
        tmp_path,
        load_summary=summary,
    )

    assert [Status.PASSED, Status.FAILED] == [c.status for c in checks]
    [(start, end), whole_run] = h.loads[0].windows  # type: ignore[attr-defined]
    assert 3000.0 == end - start
    assert (None, None) == whole_run
    assert "p99 90.0 ms above 80ms" in checks[1].detail
    assert h.loads[0].stopped  # type: ignore[attr-defined]


async def test_metric_check_reports_the_value_and_the_bound(tmp_path: Path) -> None:
    checks, _ = await checks_of(
        """
        steps: [{wait: 1ms}]
        checks:
          - metric: {service: api, name: errors_total, max: 3}
          - metric: {service: api, name: requests_total, labels: {path: /}, min: 1}
          - metric: {url: "fake://other/metrics", name: absent_metric, min: 1}
        """,
        tmp_path,
        metrics={"errors_total": 5.0, "requests_total": 9.0},
    )

    assert [Status.FAILED, Status.PASSED, Status.FAILED] == [c.status for c in checks]
    assert "errors_total: value 5 is above the maximum 3" == checks[0].detail
    assert 'requests_total{path="/"} is 9' == checks[1].detail
    assert "absent_metric is not exposed at fake://other/metrics" == checks[2].detail


async def test_log_checks_read_the_service_log(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("starting\nlistening on 8080\nWARNING slow disk\n")
    services = METRICS_SERVICES + f"    log: {log}\n"
    h = harness()
    loaded = scenario(
        """
        steps: [{wait: 1ms}]
        checks:
          - log: {service: api, present: "listening on \\\\d+"}
          - log: {service: api, absent: "WARNING"}
          - log: {service: api, present: "ready"}
        """,
        services=services,
    )

    result = await run_scenario(loaded, h.deps, RunOptions("r", 1, tmp_path))

    passed, leaked, missing = result.checks
    assert Status.PASSED == passed.status and "api.log:2: listening on 8080" in passed.detail
    assert Status.FAILED == leaked.status
    assert "/WARNING/ must not appear, but api.log:3: WARNING slow disk" == leaked.detail
    assert Status.FAILED == missing.status and "no line matches /ready/" in missing.detail
    assert Outcome.FAILED == result.outcome and "(and 1 more)" in result.reason


async def test_checks_are_skipped_when_a_step_failed(tmp_path: Path) -> None:
    checks, _ = await checks_of(
        """
        steps: [{probe: {http: {url: "fake://value/none"}}}]
        checks: [{metric: {service: api, name: x, min: 0}}]
        """,
        tmp_path,
    )

    [check] = checks
    assert Status.SKIPPED == check.status
    assert check.detail.startswith("not judged: step 1")


async def test_a_load_with_a_duration_is_recorded_stopped_once(tmp_path: Path) -> None:
    """Its own end and the run's cleanup both stop it; the journal says so once."""
    h = harness()
    loaded = scenario(
        """
        steps:
          - name: burst
            background: {load: {url: "fake://api/", rate: 100, duration: 10ms}}
          - wait: 50ms
        """,
        services=METRICS_SERVICES,
    )

    result = await run_scenario(loaded, h.deps, RunOptions("r", 1, tmp_path))

    stopped = [e for e in result.events if e.kind == "load.stopped"]
    assert 1 == len(stopped)
    assert h.loads[0].stopped


async def test_a_check_with_nothing_to_judge_fails_unless_allowed(tmp_path: Path) -> None:
    """No request made, no log written: nothing to judge is not a pass."""
    checks, _ = await checks_of(
        """
        steps:
          - name: traffic
            background: {load: {url: "fake://api/", rate: 100}}
          - wait: 1ms
        checks:
          - load: {max_error_rate: 0.1, min_requests: 0}
          - log: {service: api, absent: "ERROR"}
          - log: {service: api, absent: "ERROR"}
            allow_empty: true
        """,
        tmp_path,
        load_summary=LoadSummary(0, 0, 0.0, None, None, None, None),
    )

    assert [Status.FAILED, Status.FAILED, Status.PASSED] == [c.status for c in checks]
    assert checks[0].detail.startswith("nothing to judge: no request was made")
    assert "allow_empty: true accepts that" in checks[0].detail
    assert checks[1].detail.startswith("nothing to judge: no log to read")
    assert checks[2].detail.startswith("nothing to judge (allowed): no log to read")


async def test_a_log_check_counts_matching_lines(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("retry 1\nretry 2\nok\nretry 3\n")
    services = METRICS_SERVICES + f"    log: {log}\n"
    h = harness()
    loaded = scenario(
        """
        steps: [{wait: 1ms}]
        checks:
          - log: {service: api, present: "^retry", min_count: 3}
          - log: {service: api, present: "^retry", min_count: 4}
        """,
        services=services,
    )

    result = await run_scenario(loaded, h.deps, RunOptions("r", 1, tmp_path))

    enough, short = result.checks
    assert Status.PASSED == enough.status and "3 lines match /^retry/" in enough.detail
    assert Status.FAILED == short.status and "3 lines match" in short.detail
    assert "fewer than 4" in short.detail


async def test_min_error_rate_proves_the_fault_hurt(tmp_path: Path) -> None:
    """A load that saw 5 % errors meets min_error_rate 1 % and fails min_error_rate 10 %."""
    checks, _ = await checks_of(
        """
        steps:
          - name: traffic
            background: {load: {url: "fake://api/", rate: 100}}
          - wait: 1ms
        checks:
          - load: {min_error_rate: 0.01}
          - load: {min_error_rate: 0.1}
        """,
        tmp_path,
        load_summary=LoadSummary(200, 10, 0.05, 2.0, 40.0, 90.0, 120.0),
    )

    assert [Status.PASSED, Status.FAILED] == [c.status for c in checks]
    assert "the fault did not hurt the load as expected" in checks[1].detail
