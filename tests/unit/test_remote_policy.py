"""What a scenario sent over the network would run on the coordinator's host, each named by
where it is: processes, commands (probes, loads), containers from images."""

from __future__ import annotations

import textwrap
from pathlib import Path

from test_coordinator.scenario.loader import load_scenario_text
from test_coordinator.service.runs.remote_policy import local_execution


def found(text: str) -> list[str]:
    loaded = load_scenario_text(textwrap.dedent(text), label="request", scenario_dir=Path("."))
    return local_execution(loaded.model)


def test_processes_commands_and_images_are_each_named() -> None:
    places = found(
        """
        version: 1
        services:
          api:
            process: {command: /usr/bin/api, setup: [[initdb, /tmp/x]]}
            health: {command: {argv: [pg_isready]}}
          box:
            docker: {image: "busybox:latest"}
            health: {tcp: {port: 1}}
          existing:
            docker: {container: exchange-OKX}
            health: {tcp: {port: 2}}
        steps:
          - background:
              load: {command: {argv: [curl, x]}, rate: 1}
          - expect: {command: {argv: [true]}}
        """
    )

    assert [
        "services.api.process: starts the local process '/usr/bin/api'",
        "services.api.health.command: runs the command 'pg_isready'",
        "services.box.docker: creates a container from the image 'busybox:latest'",
        "steps[0].background.load.command: runs the command 'curl x'",
        "steps[1].expect.command: runs the command 'true'",
    ] == places


def test_observing_and_faulting_existing_targets_runs_nothing_here() -> None:
    assert [] == found(
        """
        version: 1
        services:
          existing:
            docker: {container: exchange-OKX}
            health: {http: {url: "http://127.0.0.1:8080/api/v1/health"}}
          link:
            proxy: {listen: 19000, upstream: "127.0.0.1:8080"}
        steps:
          - restart: existing
          - network: link
            latency: {delay: 50ms}
        """
    )


def test_reading_files_writing_to_sockets_and_relays_beyond_the_host_are_named() -> None:
    """A ``log:`` file is read and its matching lines reported (``/etc/shadow``, line by
    line); an existing proxy's ``control:`` is any Unix socket of the host; a proxy that
    listens beyond loopback opens the host's network to whoever can reach it."""
    places = found(
        """
        version: 1
        services:
          api:
            health: {tcp: {port: 8080}}
            log: /etc/shadow
          socket:
            proxy: {control: /run/docker.sock}
            health: {tcp: {port: 8081}}
          relay:
            proxy: {listen: 19000, host: 0.0.0.0, upstream: "db.internal:5432"}
          local:
            proxy: {listen: 19001, host: "::1", upstream: "127.0.0.1:8080"}
        steps:
          - wait: 1ms
        """
    )

    assert [
        "services.api.log: reads the local file '/etc/shadow'",
        "services.socket.proxy.control: writes to the local socket '/run/docker.sock'",
        "services.relay.proxy.host: opens a relay to 'db.internal:5432' on '0.0.0.0', "
        "beyond this host",
    ] == places
