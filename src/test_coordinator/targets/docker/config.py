"""A ``docker:`` section as the backend needs it, and the labels that mark a run's containers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from test_coordinator.targets.port import TargetError, TargetSpec

KIND = "docker"
RUN_LABEL = "test-coordinator.run-id"
SERVICE_LABEL = "test-coordinator.service"
# Podman without CAP_SYS_RESOURCE: naming one ulimit resets the other to the host maximum,
# which cannot be raised ("error setting rlimit type 6/7"), so both are always given.
ULIMITS = (("nofile", 4096, 4096), ("nproc", 1024, 1024))


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """One service's ``docker:`` section: an existing ``container`` or an ``image`` to run."""

    service: str
    container: str | None
    image: str | None
    name: str | None
    command: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    network: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    init: bool = True
    stop_grace_s: float = 5.0

    @property
    def owned(self) -> bool:
        """True when the run creates (and removes) the container."""
        return self.image is not None

    def container_name(self, run_id: str) -> str:
        """The created container's name; for an existing one, the name or id it is known by."""
        if self.container is not None:
            return self.container
        return self.name or f"tc-{run_id}-{self.service}"

    def run_labels(self, run_id: str) -> dict[str, str]:
        return {**self.labels, RUN_LABEL: run_id, SERVICE_LABEL: self.service}

    def create_kwargs(self, run_id: str) -> dict[str, Any]:
        """Keyword arguments for ``client.containers.create`` (the image excepted)."""
        from docker.types import Ulimit

        kwargs: dict[str, Any] = {
            "name": self.container_name(run_id),
            "labels": self.run_labels(run_id),
            "environment": dict(self.env),
            "init": self.init,
            "ulimits": [Ulimit(name=n, soft=soft, hard=hard) for n, soft, hard in ULIMITS],
        }
        if self.command is not None:
            kwargs["command"] = list(self.command)
        if self.entrypoint is not None:
            kwargs["entrypoint"] = list(self.entrypoint)
        if self.ports:
            kwargs["ports"] = {
                (key if "/" in key else f"{key}/tcp"): ("127.0.0.1", host)
                for key, host in self.ports.items()
            }
        if self.network is not None:
            kwargs["network"] = self.network
        return kwargs


def container_config(spec: TargetSpec) -> ContainerConfig:
    """The config of a ``docker`` service, as dumped from the scenario (``DockerRun``)."""
    from pydantic import ValidationError

    from test_coordinator.scenario.inventory import DockerRun

    if spec.kind != KIND:
        raise TargetError(f"{spec.name}: a {spec.kind!r} service, not a docker one")
    try:
        run = DockerRun.model_validate(dict(spec.config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'docker'}: {e['msg']}" for e in exc.errors()
        )
        raise TargetError(f"{spec.name}: invalid docker section: {problems}") from None
    return ContainerConfig(
        service=spec.name,
        container=run.container,
        image=run.image,
        name=run.name,
        command=run.command,
        entrypoint=run.entrypoint,
        env=dict(run.env),
        ports=dict(run.ports),
        network=run.network,
        labels=dict(run.labels),
        init=run.init,
        stop_grace_s=run.stop_grace,
    )
