"""Partitions of containers: disconnecting a container from a network and connecting it back
as it was (same address, same aliases), through the Docker Engine API.

Blocking SDK calls; callers run them in a thread. Every SDK error becomes a
:class:`NetworkPartitionError` naming the container and the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from test_coordinator.targets.docker.backend import new_client


class NetworkPartitionError(Exception):
    """The engine refused or failed a disconnect, connect or inspect; the message says which."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A container's place on one network: what reconnecting must give back."""

    container: str
    network: str
    ipv4: str | None
    aliases: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "docker_container": self.container,
            "network": self.network,
            "ipv4": self.ipv4,
            "aliases": list(self.aliases),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attachment:
        return cls(
            str(data["docker_container"]),
            str(data["network"]),
            data.get("ipv4") or None,
            tuple(str(a) for a in data.get("aliases") or ()),
        )


def attachments(container: str) -> list[Attachment]:
    """The user-defined networks ``container`` is on (not ``host`` or ``none``)."""
    attrs = _call(container, "inspect", lambda api: api.inspect_container(container))
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    found = []
    for name, settings in networks.items():
        if name in ("host", "none"):
            continue
        settings = settings or {}
        configured = settings.get("IPAMConfig") or {}
        ipv4 = configured.get("IPv4Address") or None
        short_id = str(attrs.get("Id", ""))[:12]
        aliases = tuple(
            a for a in settings.get("Aliases") or () if a not in (short_id, attrs.get("Id"))
        )
        found.append(Attachment(str(attrs["Id"]), str(name), ipv4, aliases))
    return found


def disconnect(attachment: Attachment) -> None:
    _call(
        attachment.container,
        f"disconnect from {attachment.network}",
        lambda api: api.disconnect_container_from_network(
            attachment.container, attachment.network, force=True
        ),
    )


def reconnect(attachment: Attachment) -> str:
    """Connect the container back as it was; what was seen. Already there: nothing to do."""
    if attached(attachment):
        return f"already on {attachment.network}"
    _call(
        attachment.container,
        f"connect to {attachment.network}",
        lambda api: api.connect_container_to_network(
            attachment.container,
            attachment.network,
            aliases=list(attachment.aliases) or None,
            ipv4_address=attachment.ipv4,
        ),
    )
    if not attached(attachment):
        raise NetworkPartitionError(
            f"container {attachment.container[:12]} is still not on {attachment.network}"
        )
    return f"connected to {attachment.network} again"


def attached(attachment: Attachment) -> bool:
    return any(a.network == attachment.network for a in attachments(attachment.container))


def _call(container: str, doing: str, fn: Any) -> Any:
    from docker.errors import DockerException

    client = new_client()
    try:
        return fn(client.api)
    except DockerException as exc:
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise NetworkPartitionError(
            f"container {container[:12]}: cannot {doing}: {explanation}"
        ) from None
    finally:
        client.close()
