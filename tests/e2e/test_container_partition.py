"""A partition of containers: the engine disconnects one from the network it shares with the
other, measured from inside (one container fetching from the other), and connects it back
with its address, by a heal step and by the guard after a kill -9 of the coordinator."""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.cli_harness import Cli
from e2e.test_containers import (
    HTTPD_IMAGE,
    engine_cli,  # noqa: F401 - a fixture
    require_image,
    run_containers,
    run_ids,
    sdk,  # noqa: F401 - a fixture
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SCENARIO = """
version: 1
name: container-partition
timeout: 2m
ports: [a_port, b_port]
services:
  a:
    docker:
      image: "{image}"
      name: "{prefix}-a"
      network: "{network}"
      ports: {{"8080": "${{a_port}}"}}
      stop_grace: 1s
    health: {{http: {{url: "http://127.0.0.1:${{a_port}}/api/v1/health"}}}}
  b:
    docker:
      image: "{image}"
      name: "{prefix}-b"
      network: "{network}"
      ports: {{"8080": "${{b_port}}"}}
      stop_grace: 1s
    health: {{http: {{url: "http://127.0.0.1:${{b_port}}/api/v1/health"}}}}
steps:
  - name: before
    wait: {before}
  - name: split
    partition: {{between: [a], and: [b]}}
  - name: hold
    wait: {hold}
  - name: mend
    heal: a
  - name: after
    wait: {after}
"""


@pytest.fixture
def network(sdk: Any) -> Iterator[str]:  # noqa: F811 - the fixture imported above
    name = f"tc-part-{uuid.uuid4().hex[:8]}"
    created = sdk.networks.create(name, driver="bridge")
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            created.remove()


def fetch(engine: Any, container: str, address: str) -> bool:
    """Whether ``container`` gets a 200 from the httpd at ``address`` within 2 s (busybox nc:
    the image's wget is not usable everywhere)."""
    request = "printf 'GET /api/v1/health HTTP/1.0\\r\\n\\r\\n'"
    command = f"{request} | nc -w 2 {address} 8080 | grep -q '200 OK'"
    result = engine.api.exec_create(container, ["sh", "-c", command])
    engine.api.exec_start(result["Id"])
    return bool(engine.api.exec_inspect(result["Id"])["ExitCode"] == 0)


def address_on(engine: Any, container: str, network: str) -> str | None:
    networks = engine.api.inspect_container(container)["NetworkSettings"]["Networks"] or {}
    settings = networks.get(network)
    return settings.get("IPAddress") if settings else None


def write(cli: Cli, network: str, prefix: str, hold: str, after: str, before: str = "0s") -> str:
    path = cli.workdir / f"{prefix}.yaml"
    path.write_text(
        SCENARIO.format(
            image=HTTPD_IMAGE, prefix=prefix, network=network, hold=hold, after=after, before=before
        )
    )
    return str(path)


def test_a_partition_cuts_a_container_off_and_the_heal_connects_it_back(
    engine_cli: Cli,  # noqa: F811 - the fixture imported above
    sdk: Any,  # noqa: F811
    network: str,
) -> None:
    require_image(sdk, HTTPD_IMAGE, "scripts/docker-engine.sh")
    prefix = f"tc-part-{uuid.uuid4().hex[:6]}"
    a, b = f"{prefix}-a", f"{prefix}-b"
    run = engine_cli.popen("run", write(engine_cli, network, prefix, "15s", "15s", before="5s"))
    try:
        wait_for(lambda: _running(sdk, a) and _running(sdk, b), "both containers", 60.0)
        a_address = _address_when_up(sdk, a, network)
        b_address = _address_when_up(sdk, b, network)
        assert fetch(sdk, a, b_address), "a reaches b before the partition"
        wait_for(lambda: address_on(sdk, a, network) is None, "a to be cut off", 30.0)
        assert not fetch(sdk, a, b_address), "a must not reach b while cut"
        assert not fetch(sdk, b, a_address), "b must not reach a while cut"
        wait_for(lambda: address_on(sdk, a, network) is not None, "a to be connected back", 30.0)
        new_address = address_on(sdk, a, network)
        assert new_address is not None
        assert fetch(sdk, a, b_address), "a reaches b after the heal"
        assert fetch(sdk, b, new_address), "b reaches a after the heal"
        assert 0 == run.wait(timeout=120), "the run passed"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
        if run.stdout is not None:
            run.stdout.close()


def test_sigkill_while_cut_the_guard_connects_it_back(
    engine_cli: Cli,  # noqa: F811 - the fixture imported above
    sdk: Any,  # noqa: F811
    network: str,
) -> None:
    require_image(sdk, HTTPD_IMAGE, "scripts/docker-engine.sh")
    prefix = f"tc-part-{uuid.uuid4().hex[:6]}"
    a = f"{prefix}-a"
    run = engine_cli.popen("run", write(engine_cli, network, prefix, "60s", "1s"))
    try:
        wait_for(lambda: _running(sdk, a), "container a", 60.0)
        _address_when_up(sdk, a, network)
        wait_for(lambda: address_on(sdk, a, network) is None, "a to be cut off", 30.0)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        [run_id] = run_ids(engine_cli)
        wait_for(
            lambda: not run_containers(sdk, run_id), "the guard to remove the run's containers"
        )
        journal = engine_cli.workdir / "reports" / run_id / "journal.json"
        wait_for(journal.exists, "the aborted run's journal")
        import json

        undos = json.loads(journal.read_text())["undos"]
        assert ("heal", "done") in {(u["action"], u["status"]) for u in undos}, undos
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
        if run.stdout is not None:
            run.stdout.close()


def _running(engine: Any, name: str) -> bool:
    from docker.errors import APIError

    try:
        return bool(engine.api.inspect_container(name)["State"]["Running"])
    except APIError:
        return False


def _address_when_up(engine: Any, name: str, network: str) -> str:
    wait_for(lambda: bool(address_on(engine, name, network)), f"{name}'s address on {network}")
    address = address_on(engine, name, network)
    assert address is not None
    return address
