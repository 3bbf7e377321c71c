"""Which targets a run shares with other runs (and leases), and which are its own."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

from test_coordinator.scenario.loader import load_scenario_text
from test_coordinator.service.runs.target_keys import lease_keys

SCENARIO = """
version: 1
ports: [own_port]
services:
  existing:
    docker: {container: exchange-OKX}
    health: {tcp: {port: 1}}
  named:
    docker: {image: "busybox:latest", name: fixed-name}
    health: {tcp: {port: 2}}
  created:
    docker: {image: "busybox:latest"}
    health: {tcp: {port: 3}}
  fixed_link:
    proxy: {listen: 19001, upstream: "127.0.0.1:8080"}
  own_link:
    proxy: {listen: "${own_port}", upstream: "127.0.0.1:8080"}
  process:
    process: {command: sleep, args: ["60"]}
    health: {tcp: {port: 4}}
steps:
  - wait: 1s
"""


def test_shared_targets_are_leased_and_the_run_own_ones_are_not() -> None:
    ports = itertools.count(40000)  # stand-in allocation, as validation gives
    loaded = load_scenario_text(
        textwrap.dedent(SCENARIO),
        label="request",
        scenario_dir=Path("."),
        allocate_port=lambda: next(ports),
    )

    keys = lease_keys(loaded.model, private_ports=set(loaded.ports.values()))

    assert {
        "container:exchange-OKX",
        "container:fixed-name",
        "listen:127.0.0.1:19001",
    } == keys
