"""Which proxy services link two sets of services (what a ``partition`` cuts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from test_coordinator.scenario.inventory import Service


def linking_proxies(
    services: Mapping[str, Service], side: Iterable[str], other: Iterable[str]
) -> tuple[str, ...]:
    """The proxies in front of a service of one side that a service of the other side may
    use (its ``clients`` include one, or it names none), in inventory order."""
    one, two = set(side), set(other)
    found = []
    for name, service in services.items():
        proxy = service.proxy
        if proxy is None or proxy.to is None:
            continue
        users = set(proxy.clients) if proxy.clients is not None else None
        if (proxy.to in two and (users is None or users & one)) or (
            proxy.to in one and (users is None or users & two)
        ):
            found.append(name)
    return tuple(found)
