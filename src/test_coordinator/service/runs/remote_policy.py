"""What a scenario sent over the network may not do without ``ALLOW_REMOTE_EXECUTION``.

Anyone who can submit a scenario document could otherwise run any program on the
coordinator's host: a ``process:`` service, a ``command`` probe or load, a
container created from an ``image`` (through the Docker socket, as good as root).
Scenarios from the service's own library are trusted: an operator put them there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from test_coordinator.scenario.inventory import DockerRun, ProcessRun
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
    return found


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
