"""Existing proxies (``proxy: {control: ...}``): declared, validated, leased, and reached
through their control socket, never started or stopped by the run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.scenario_text import load_body, problems_of
from test_coordinator.netfault.client import NetfaultControl
from test_coordinator.netfault.model import Latency
from test_coordinator.netfault.proxy import NetfaultProxy
from test_coordinator.netfault.server import ControlServer
from test_coordinator.scenario.plan import render_plan
from test_coordinator.service.runs.target_keys import lease_keys
from test_coordinator.targets.existing_proxy import ExistingProxyBackend
from test_coordinator.targets.port import RunScope, TargetError, TargetSpec, TargetState
from test_coordinator.targets.wiring import backend_kind

HEADER = """\
version: 1
services:
  engine:
    process: {command: python, args: [engine.py]}
    health: {tcp: {port: 9000}}
  exchange:
    health: {tcp: {port: 9100}}
  exchange-link:
    proxy:
      control: /run/netfault/exchange-link.sock
      host: exchange-link
      listen: 8080
      to: exchange
      clients: [engine]
"""
FIRST_BODY_LINE = HEADER.count("\n") + 1


def test_an_existing_proxy_is_reached_where_it_listens_and_leased_by_its_socket() -> None:
    loaded = load_body(HEADER, "steps:\n  - partition: {between: [engine], and: [exchange]}\n")
    link = loaded.model.services["exchange-link"]

    assert link.proxy is not None and link.proxy.existing
    assert link.health.tcp is not None
    assert ("exchange-link", 8080) == (link.health.tcp.host, link.health.tcp.port)
    assert {"proxy:/run/netfault/exchange-link.sock"} == lease_keys(loaded.model)
    plan = render_plan(loaded, seed=1)
    assert "existing, controlled through /run/netfault/exchange-link.sock" in plan


@pytest.mark.parametrize(
    ("proxy", "expected"),
    [
        ("{control: run/link.sock, listen: 1}", "'run/link.sock' is not an absolute path"),
        (
            '{control: /run/link.sock, upstream: "x:1"}',
            "upstream: is for a proxy the run starts",
        ),
        ("{listen: 9101}", "needs listen: and upstream: (missing upstream)"),
        ("{to: engine}", "missing listen and upstream"),
    ],
)
def test_a_proxy_is_either_started_or_existing(proxy: str, expected: str) -> None:
    header = HEADER + f"  other-link:\n    proxy: {proxy}\n    health: {{tcp: {{port: 1}}}}\n"
    [problem] = problems_of(header, "steps:\n  - wait: 0ms\n")

    assert f"s.yaml:{HEADER.count(chr(10)) + 2}:" in problem
    assert expected in problem


@pytest.mark.parametrize("kind", ["kill", "restart", "stop", "pause"])
def test_the_run_never_stops_or_signals_an_existing_proxy(kind: str) -> None:
    [problem] = problems_of(HEADER, f"steps:\n  - {kind}: exchange-link\n")

    assert f"s.yaml:{FIRST_BODY_LINE + 1}:" in problem
    assert f"'{kind}' cannot act on 'exchange-link': it is an existing proxy" in problem


def test_an_existing_proxy_is_served_by_its_own_backend() -> None:
    existing = TargetSpec("link", "proxy", {"control": "/run/link.sock"})
    started = TargetSpec("link", "proxy", {"listen": 9101, "upstream": "x:1", "control": None})

    assert "existing-proxy" == backend_kind(existing)
    assert "proxy" == backend_kind(started)


@pytest.fixture
async def proxy_control(tmp_path: Path) -> AsyncIterator[Path]:
    """A netfault proxy with its control socket, in this process (our own code)."""
    proxy = NetfaultProxy(("127.0.0.1", 0), ("127.0.0.1", 9))
    path = tmp_path / "link.sock"
    control = ControlServer(proxy, path)
    await control.start()
    await proxy.start()
    try:
        yield path
    finally:
        await control.close()
        await proxy.close()


def backend(path: Path, tmp_path: Path) -> ExistingProxyBackend:
    spec = TargetSpec("link", "proxy", {"control": str(path)})
    return ExistingProxyBackend({"link": spec}, RunScope("r", tmp_path))


async def test_starting_an_existing_proxy_sees_it_answer(
    proxy_control: Path, tmp_path: Path
) -> None:
    targets = backend(proxy_control, tmp_path)

    identity = await targets.start("link")

    assert "-> 127.0.0.1:9" in identity and str(proxy_control) in identity
    assert TargetState.RUNNING is targets.state("link")
    assert not targets.owns("link")
    assert "left in place" in await targets.remove("link")
    with pytest.raises(TargetError, match="it is an existing proxy"):
        await targets.restart("link")


async def test_a_fault_left_on_an_existing_proxy_stops_the_run_and_stays(
    proxy_control: Path, tmp_path: Path
) -> None:
    control = NetfaultControl(proxy_control)
    await control.set("step2-link", Latency(ms=50))

    with pytest.raises(TargetError, match=r"already has faults set \(step2-link\)"):
        await backend(proxy_control, tmp_path).start("link")
    assert ["step2-link"] == [f["id"] for f in (await control.state())["faults"]]


async def test_an_existing_proxy_that_does_not_answer_is_named(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="link: the existing proxy does not answer"):
        await asyncio.wait_for(backend(tmp_path / "none.sock", tmp_path).start("link"), 5)
