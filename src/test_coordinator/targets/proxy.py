"""Proxy services: a network fault proxy the run starts, as a local process.

A ``proxy:`` service is run by the process backend as
``python -m test_coordinator.netfault --listen ... --upstream ... --control ...``,
so it is started, marked, logged, stopped and removed (after a crash too) as
any other process of the run. Its control socket is :func:`control_socket`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from test_coordinator.netfault.paths import control_socket
from test_coordinator.targets.port import RunScope, TargetBackend, TargetSpec

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
    from test_coordinator.targets.process.backend import ProcessBackend

    processes = {name: proxy_process(spec, scope.run_id) for name, spec in specs.items()}
    return ProcessBackend(processes, scope)
