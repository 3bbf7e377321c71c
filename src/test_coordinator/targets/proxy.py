"""Proxy services: a network fault proxy the run starts, as a local process.

A ``proxy:`` service is run by the process backend as
``python -m test_coordinator.netfault --listen ... --upstream ... --control ...``,
so it is started, marked, logged, stopped and removed (after a crash too) as
any other process of the run. Its control socket is :func:`control_socket`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from test_coordinator.netfault.paths import control_socket
from test_coordinator.targets.port import RunScope, TargetBackend, TargetSpec
from test_coordinator.targets.process.backend import ProcessBackend

PROXY_STOP_GRACE = "2s"


def proxy_process(spec: TargetSpec, run_id: str) -> TargetSpec:
    """The process that runs ``spec``'s proxy (its ``proxy:`` section as ``config``)."""
    config: Mapping[str, Any] = spec.config
    socket = control_socket(run_id, spec.name)
    return TargetSpec(
        spec.name,
        "process",
        {
            "command": sys.executable,
            "args": [
                "-m",
                "test_coordinator.netfault",
                "--listen",
                f"{config.get('host', '127.0.0.1')}:{config['listen']}",
                "--upstream",
                str(config["upstream"]),
                "--control",
                str(socket),
            ],
            "env": {},
            "stop_grace": PROXY_STOP_GRACE,
            "dirs": [str(socket.parent)],
        },
    )


def proxy_backend(specs: Mapping[str, TargetSpec], scope: RunScope) -> TargetBackend:
    processes = {name: proxy_process(spec, scope.run_id) for name, spec in specs.items()}
    return ProxyBackend(processes, scope)


class ProxyBackend(ProcessBackend):
    """The proxies' processes; removing one also removes what its socket left."""

    async def remove(self, name: str) -> str:
        done = await super().remove(name)
        _remove_socket_folder(control_socket(self._scope.run_id, name))
        return done


def _remove_socket_folder(socket: Path) -> None:
    """Once a proxy is removed, its socket (left by a proxy killed before it could remove
    it) and the run's socket folder, once no other proxy's socket is in it."""
    with contextlib.suppress(FileNotFoundError):
        socket.unlink()
    with contextlib.suppress(OSError):  # not empty: another proxy of the run is still there
        socket.parent.rmdir()
