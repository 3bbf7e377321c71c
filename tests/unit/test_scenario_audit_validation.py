"""Validation of ``audit:``, ``audit`` checks and ``depends_on``: each problem at its line."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from test_coordinator.scenario.checks import AuditCheck
from test_coordinator.scenario.loader import load_text, placeholder_port
from test_coordinator.scenario.problems import ScenarioInvalid
from test_coordinator.scenario.schema import schema_json

SERVICES = """\
version: 1
services:
  exchange:
    process: {command: exchange}
    health: {http: {url: "http://127.0.0.1:8081/health"}}
  engine:
    process: {command: engine}
    health: {http: {url: "http://127.0.0.1:8082/health"}}
    metrics_url: http://127.0.0.1:8082/metrics
steps:
  - restart: exchange
"""
AUDIT = """\
audit:
  url: http://127.0.0.1:9000
  affects: {exchange: [engine]}
"""


def load(text: str) -> object:
    return load_text(
        SERVICES + text,
        path=Path("s.yaml"),
        overrides={},
        environ={},
        allocate_port=placeholder_port,
        builtins={"python": sys.executable, "scenario_dir": "/x", "run_id": "r", "run_dir": "/r"},
    )


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as caught:
        load(text)
    return [str(problem) for problem in caught.value.problems]


def test_a_valid_audit_check_loads() -> None:
    loaded = load(
        AUDIT
        + textwrap.dedent(
            """
            checks:
              - audit:
                  faults_observed: true
                  orders_lost: {max: 0}
                  outage: {service: engine, dependency: exchange, max: 5s}
            """
        )
    )

    [check] = loaded.model.checks  # type: ignore[attr-defined]
    assert isinstance(check, AuditCheck)
    assert ("faults_observed", "orders_lost", "outage") == check.audit.criteria
    assert 5.0 == check.audit.outage.max  # type: ignore[union-attr]


def test_an_audit_check_needs_audit_settings() -> None:
    assert [
        "s.yaml:13:12: checks[0].audit: an audit check needs an audit correlator; allowed: add "
        "audit: {url: ...} at the top level"
    ] == problems("checks:\n  - audit: {faults_observed: true}\n")


def test_wrong_audit_options_are_reported_with_lines() -> None:
    found = problems(
        AUDIT
        + textwrap.dedent(
            """\
            checks:
              - audit: {faults_observd: true}
              - audit: {orders_lost: {max: -1}}
              - audit: {outage: {service: engine, max: soon}}
              - audit: {coordinator_events: some}
              - audit: {settle: 1s}
            """
        )
    )

    assert any(
        p.startswith("s.yaml:16:")
        and "unknown key 'faults_observd'; did you mean 'faults_observed'" in p
        for p in found
    ), found
    assert any(p.startswith("s.yaml:17:") and "orders_lost.max" in p for p in found), found
    assert any(p.startswith("s.yaml:18:") and "'soon' is not a duration" in p for p in found), found
    assert any(p.startswith("s.yaml:19:") and "coordinator_events" in p for p in found), found
    assert any(
        p.startswith("s.yaml:20:") and "needs at least one of faults_observed" in p for p in found
    ), found


def test_orders_reported_needs_a_service_with_metrics() -> None:
    found = problems(AUDIT + "checks:\n  - audit: {orders_reported: {service: exchange}}\n")

    assert ["service 'exchange' has no metrics_url; allowed: give it one"] == [
        p.split(": ", 2)[2] for p in found
    ]


def test_affects_names_services_of_the_inventory() -> None:
    found = problems("audit:\n  url: http://x\n  affects: {exchang: [engine]}\n")

    assert ["s.yaml:14:22: audit.affects.exchang: service 'exchang' is not in the inventory; "
            "did you mean 'exchange'? allowed (services:): engine, exchange"] == found  # fmt: skip


def test_depends_on_must_name_started_services_without_cycles() -> None:
    text = SERVICES.replace(
        "    process: {command: engine}",
        "    depends_on: [exchange]\n    process: {command: engine}",
    ).replace(
        "    process: {command: exchange}",
        "    depends_on: engine\n    process: {command: exchange}",
    )
    with pytest.raises(ScenarioInvalid) as caught:
        load_text(
            text,
            path=Path("s.yaml"),
            overrides={},
            environ={},
            allocate_port=placeholder_port,
            builtins={"python": sys.executable, "scenario_dir": "/x", "run_id": "r"},
        )

    [problem] = [str(p) for p in caught.value.problems]
    assert "services depend on each other in a cycle: exchange -> engine -> exchange" in problem
    assert problem.startswith("s.yaml:4:17: services.exchange.depends_on")


def test_the_schema_describes_audit() -> None:
    text = schema_json()

    assert '"faults_observed"' in text and '"affects"' in text and '"depends_on"' in text


def test_every_trading_scenario_is_valid_and_says_what_it_proves() -> None:
    from test_coordinator.scenario.loader import load_scenario

    scenarios = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))

    assert 4 <= len(scenarios)
    for path in scenarios:
        loaded = load_scenario(path)
        assert loaded.model.audit is not None, path
        assert path.read_text().startswith("# Proves that "), path
