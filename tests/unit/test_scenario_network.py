"""Network faults in a scenario: proxy services, network/heal/partition steps, and what
validate refuses, each at the line of the field."""

from __future__ import annotations

from support.scenario_text import load_body, problems_of
from test_coordinator.engine.undo_actions import UndoAction, UndoKind
from test_coordinator.faults.network import NetworkStep
from test_coordinator.netfault.heal import Healed, describe_stats
from test_coordinator.netfault.model import fault_from_json
from test_coordinator.netfault.paths import control_socket
from test_coordinator.scenario.loader import LoadedScenario
from test_coordinator.scenario.network import linking_proxies
from test_coordinator.targets.port import TargetSpec
from test_coordinator.targets.proxy import proxy_process

HEADER = """\
version: 1
services:
  engine:
    process: {command: python, args: [engine.py]}
    health: {tcp: {port: 9000}}
  exchange:
    process: {command: python, args: [exchange.py]}
    health: {tcp: {port: 9100}}
  audit:
    process: {command: python, args: [audit.py]}
    health: {tcp: {port: 9200}}
  to-exchange:
    proxy: {listen: 9101, upstream: "127.0.0.1:9100", to: exchange, clients: [engine]}
  to-audit:
    proxy: {listen: 9201, upstream: "127.0.0.1:9200", to: audit, clients: [engine]}
  to-anyone:
    proxy: {listen: 9102, upstream: "127.0.0.1:9100"}
"""
FIRST_BODY_LINE = HEADER.count("\n") + 1


def load(body: str) -> LoadedScenario:
    return load_body(HEADER, body)


def problems(body: str) -> list[str]:
    return problems_of(HEADER, body)


def test_a_proxy_service_is_probed_on_its_listen_port_by_default() -> None:
    loaded = load("steps:\n  - wait: 0ms\n")
    service = loaded.model.services["to-exchange"]

    assert "proxy" == service.kind
    assert service.health.tcp is not None and 9101 == service.health.tcp.port


def test_each_network_fault_becomes_the_proxys_fault() -> None:
    loaded = load(
        """
        steps:
          - network: to-exchange
            latency: {delay: 200ms, jitter: 20ms, direction: both}
            pulse: {on: 1s, off: 500ms}
          - network: to-exchange
            cut: {}
          - network: to-exchange
            connection_loss: {probability: 0.5, how: close}
        """
    )
    latency, cut, loss = loaded.model.steps
    assert isinstance(latency, NetworkStep) and isinstance(cut, NetworkStep)
    assert isinstance(loss, NetworkStep)

    assert fault_from_json(latency.fault_json()).ms == 200.0  # type: ignore[union-attr]
    assert {"on_ms": 1000.0, "off_ms": 500.0} == latency.pulse_json()
    assert "partition" == cut.fault_json()["kind"]
    assert 0.5 == fault_from_json(loss.fault_json()).probability  # type: ignore[union-attr]


def test_a_network_step_needs_exactly_one_fault() -> None:
    found = problems(
        """
        steps:
          - network: to-exchange
            latency: {delay: 10ms}
            reset: {}
        """
    )

    assert any(
        "exactly one of latency, bandwidth" in p and "found latency, reset" in p for p in found
    )


def test_jitter_beyond_the_delay_is_refused_at_its_line() -> None:
    [problem] = problems(
        """
        steps:
          - network: to-exchange
            latency: {delay: 10ms, jitter: 20ms}
        """
    )

    assert problem.startswith(f"s.yaml:{FIRST_BODY_LINE + 3}:")
    assert "jitter: allowed: no more than delay" in problem


def test_network_and_heal_act_only_on_proxies() -> None:
    found = problems(
        """
        steps:
          - network: exchange
            reset: {}
          - heal: engine
        """
    )

    assert any("'network' acts on proxy services; 'exchange' is not one" in p for p in found)
    assert any("'heal' acts on proxy services; 'engine' is not one" in p for p in found)


def test_a_partition_needs_a_proxy_linking_its_sides() -> None:
    [problem] = problems(
        """
        steps:
          - partition: {between: [exchange], and: [audit]}
        """
    )

    assert f"s.yaml:{FIRST_BODY_LINE + 2}:" in problem
    assert "no proxy service links the two sides" in problem


def test_a_service_on_both_sides_is_refused() -> None:
    assert any(
        "engine: on both sides of the partition" in p
        for p in problems("steps:\n  - partition: {between: [engine], and: [engine]}\n")
    )


def test_the_proxies_that_link_two_sides() -> None:
    services = load("steps:\n  - wait: 0ms\n").model.services

    assert ("to-exchange",) == linking_proxies(services, ["engine"], ["exchange"])
    assert ("to-exchange",) == linking_proxies(services, ["exchange"], ["engine"])
    assert () == linking_proxies(services, ["audit"], ["exchange"])  # not their clients
    assert ("to-audit",) == linking_proxies(services, ["engine"], ["audit"])


def test_a_proxy_runs_as_a_netfault_process_with_its_control_socket() -> None:
    spec = TargetSpec("to-exchange", "proxy", {"listen": 9101, "upstream": "127.0.0.1:9100"})

    process = proxy_process(spec, "run-1")

    assert "process" == process.kind
    assert [
        "-m",
        "test_coordinator.netfault",
        "--listen",
        "127.0.0.1:9101",
        "--upstream",
        "127.0.0.1:9100",
        "--control",
        str(control_socket("run-1", "to-exchange")),
    ] == process.config["args"]


def test_a_control_socket_path_stays_short() -> None:
    assert len(str(control_socket("20261201-170508-a19a50", "x" * 200))) <= 100


def test_a_heal_undo_survives_its_journey_through_the_store() -> None:
    action = UndoAction(
        kind=UndoKind.HEAL,
        service="to-exchange",
        target=TargetSpec("to-exchange", "proxy", {"listen": 9101, "upstream": "h:1"}),
        handle={"control": "/tmp/x.sock", "fault_id": "step3-to-exchange"},
    )

    assert action == UndoAction.from_json(action.to_json())


def test_what_a_fault_did_is_said_plainly() -> None:
    stats = {"connections": 3, "bytes_delayed": 4500, "bytes_dropped": 0, "resets": 0}

    assert "acted on 3 connections: 4500 bytes delayed" == describe_stats(stats)
    assert "touched nothing" == describe_stats(dict.fromkeys(stats, 0))
    assert Healed("", dict.fromkeys(stats, 0)).untouched
    assert not Healed("", None).untouched
