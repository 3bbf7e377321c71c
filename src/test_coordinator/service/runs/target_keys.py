"""The targets a run shares with other runs, each named by a lease key.

A run's own services (a process it starts, a container it creates under its own
name) are private to it: two runs never meet there. What two runs can fault at
once is what exists outside them: an existing container, a container or proxy
whose name or listen port the scenario fixes, an existing proxy (by its control
socket), an instance found through service discovery. A run holds a lease on each
such key from before its setup until its undo is done, so no two runs, of one
coordinator or of several sharing a Redis, fault the same target at the same time.
"""

from __future__ import annotations

from collections.abc import Collection

from test_coordinator.scenario.model import Scenario


def lease_keys(model: Scenario, private_ports: Collection[int] = ()) -> frozenset[str]:
    """The lease keys of every shared target in ``model``'s inventory. ``private_ports``:
    the ports the run allocates itself (its ``ports:``): a proxy listening on one is its own."""
    keys = set()
    for service in model.services.values():
        docker = service.docker
        if docker is not None and docker.container is not None:
            keys.add(f"container:{docker.container}")
        elif docker is not None and docker.name is not None:
            keys.add(f"container:{docker.name}")
        proxy = service.proxy
        if proxy is not None and proxy.control is not None:
            keys.add(f"proxy:{proxy.control}")
        elif proxy is not None and proxy.listen not in private_ports:
            keys.add(f"listen:{proxy.host}:{proxy.listen}")
        discover = service.discover
        if discover is not None:
            keys.add(f"instance:{discover.service}:{discover.instance_name}")
    return frozenset(keys)
