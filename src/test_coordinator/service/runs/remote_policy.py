"""What a scenario sent over the network may not do without ``ALLOW_REMOTE_EXECUTION``.

Anyone who can submit a scenario document could otherwise run any program on the
coordinator's host (a ``process:`` service, a ``command`` probe or load, a
container created from an ``image``, through the Docker socket, as good as root),
read any of its files (a service's ``log:``, whose matching lines ``log`` checks
report: ``/etc/shadow``, line by line), open a relay from its network to any
address (a ``proxy:`` the run starts, listening beyond loopback) or write to any
of its Unix sockets (an existing proxy's ``control:``). Scenarios from the
service's own library are trusted: an operator put them there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from test_coordinator.scenario.inventory import DockerRun, ProcessRun, ProxyRun, Service
from test_coordinator.scenario.model import Scenario
from test_coordinator.scenario.probes import CommandProbeSpec
from test_coordinator.scenario.steps import LoadCommand


def local_execution(model: Scenario) -> list[str]:
    """Each place where ``model`` would run something on this host, as ``path: what``."""
    found = []
    for path, node in _walk(model, ""):
        if isinstance(node, ProcessRun):
            found.append(f"{path}: starts the local process {node.command!r}")
        elif isinstance(node, CommandProbeSpec | LoadCommand):
            found.append(f"{path}: runs the command {' '.join(node.argv)!r}")
        elif isinstance(node, DockerRun) and node.image is not None:
            found.append(f"{path}: creates a container from the image {node.image!r}")
        elif isinstance(node, Service) and node.log is not None:
            found.append(f"{path}.log: reads the local file {node.log!r}")
        elif isinstance(node, ProxyRun) and node.control is not None:
            found.append(f"{path}.control: writes to the local socket {node.control!r}")
        elif isinstance(node, ProxyRun) and not _loopback(node.host):
            found.append(
                f"{path}.host: opens a relay to {node.upstream!r} on {node.host!r}, "
                "beyond this host"
            )
    return found


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if value is not None:
                yield from _walk(value, f"{path}.{name}" if path else name)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
