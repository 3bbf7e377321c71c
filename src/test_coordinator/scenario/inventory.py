"""The inventory: the services a scenario may touch (its blast radius) and how to run them."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from test_coordinator.domain.identity import check_name
from test_coordinator.scenario.probes import ProbeSpec
from test_coordinator.scenario.types import Duration, ServiceList, ServiceName, Strict, Text

DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_GRACE_S = 5.0
DEFAULT_SETUP_TIMEOUT_S = 60.0


class ProcessRun(Strict):
    """A local process: the executable, its arguments, extra environment, working directory.

    ``user``: run it (and its setup) as that user and the user's groups; the
    coordinator must be root to switch. ``dirs``: directories created before the
    setup (parents as needed), each owned by ``user`` with mode 0700 when a user is
    given: the place for data a non-root server writes (``${run_dir}/pg``).
    ``setup``: commands (argv lists) run once, in order, before the service's first
    start, with its env, cwd and user; each bounded by ``setup_timeout``.
    """

    command: Text
    args: tuple[Text, ...] = ()
    env: dict[str, Text] = Field(default_factory=dict)
    cwd: Text | None = None
    stop_grace: Duration = DEFAULT_STOP_GRACE_S
    user: Text | None = None
    dirs: tuple[Text, ...] = ()
    setup: tuple[tuple[Text, ...], ...] = ()
    setup_timeout: Duration = DEFAULT_SETUP_TIMEOUT_S

    @field_validator("user")
    @classmethod
    def _a_user_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or value != value.strip() or ":" in value):
            raise ValueError(f"{value!r} is not a user name")
        return value

    @field_validator("setup")
    @classmethod
    def _commands_not_empty(cls, value: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        empty = [index for index, argv in enumerate(value) if not argv or not argv[0]]
        if empty:
            raise ValueError(
                f"setup command(s) {empty} are empty; "
                "each is an argv list, such as [initdb, -D, DIR]"
            )
        return value

    @model_validator(mode="after")
    def _positive_setup_timeout(self) -> ProcessRun:
        if self.setup_timeout <= 0:
            raise ValueError("setup_timeout must be more than 0")
        return self

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.command, *self.args)


class DockerRun(Strict):
    """A container, through the Docker Engine API (Docker or Podman; ``DOCKER_HOST`` honoured).

    Either an existing ``container`` (by name or id: faulted and restored, never
    removed) or an ``image`` the run creates a container from, labelled with the
    run id, and removes at the end.
    """

    container: Text | None = None
    image: Text | None = None
    name: Text | None = None
    """The created container's name (default: ``tc-<run id>-<service>``)."""
    command: tuple[Text, ...] | None = None
    entrypoint: tuple[Text, ...] | None = None
    env: dict[str, Text] = Field(default_factory=dict)
    ports: dict[Text, int] = Field(default_factory=dict)
    """Container port (``8080`` or ``8080/tcp``) to a host port on 127.0.0.1."""
    network: Text | None = None
    labels: dict[str, Text] = Field(default_factory=dict)
    init: bool = True
    """Run an init as PID 1 in a created container, so SIGTERM stops it."""
    stop_grace: Duration = DEFAULT_STOP_GRACE_S

    @model_validator(mode="after")
    def _one_source(self) -> DockerRun:
        if (self.container is None) == (self.image is None):
            raise ValueError("a docker service needs exactly one of container, image")
        if self.container is not None:
            given = [
                key for key in ("name", "command", "network") if getattr(self, key) is not None
            ] + [key for key in ("env", "ports", "labels") if getattr(self, key)]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only for a container the run creates (image:); "
                    "an existing container is used as it is"
                )
        return self


class ProxyRun(Strict):
    """A network fault proxy: one the run starts, or one that is always there.

    Started by the run (``listen`` and ``upstream``): it listens on ``host:listen``
    and forwards each connection to ``upstream``. Dependents are pointed at
    ``listen`` (through variables); ``network`` and ``partition`` steps then break
    the link.

    Existing (``control``): a proxy started outside the run (``python -m
    test_coordinator.netfault``, e.g. a container of a compose stack, its control
    socket on a shared volume). The run sets and clears faults through that socket
    and never starts or stops it; ``host`` and ``listen``, when given, are where it
    is reached (its default health: a TCP connect there).

    ``to`` names the service behind it, ``clients`` the services that connect through
    it: a ``partition`` between two sets of services cuts the proxies that link them.
    """

    listen: int | None = Field(default=None, ge=1, le=65535)
    host: Text = "127.0.0.1"
    upstream: Text | None = None
    control: Text | None = None
    to: ServiceName | None = None
    clients: ServiceList | None = None

    @field_validator("upstream")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, colon, port = value.rpartition(":")
        if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    @field_validator("control")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r} is not an absolute path (the proxy's control socket)")
        return value

    @model_validator(mode="after")
    def _started_or_existing(self) -> ProxyRun:
        if self.control is not None:
            if self.upstream is not None:
                raise ValueError(
                    "an existing proxy (control:) forwards where it was started to; "
                    "upstream: is for a proxy the run starts (listen: and upstream:)"
                )
        elif self.listen is None or self.upstream is None:
            missing = " and ".join(
                f for f, v in (("listen", self.listen), ("upstream", self.upstream)) if v is None
            )
            raise ValueError(
                f"a proxy the run starts needs listen: and upstream: (missing {missing}); "
                "an existing proxy needs control: (its control socket)"
            )
        return self

    @property
    def existing(self) -> bool:
        """True for a proxy the run does not start (``control:``)."""
        return self.control is not None


class DiscoverRun(Strict):
    """An instance of the ecosystem, found in the service registry at
    ``services:{service}:{instance}``: ``{service: exchange-simulator, instance: exchange-OKX}``.

    ``instance`` is the whole instance name (SERVICE_INSTANCE_NAME); without it, the
    singleton (the instance named like the service). The service is observed, never
    run; its address is ``${<name>.host}``, ``${<name>.http_port}``,
    ``${<name>.grpc_port}``, ``${<name>.http_url}`` and ``${<name>.grpc_target}``.
    """

    service: str
    instance: str | None = None

    @field_validator("service", "instance")
    @classmethod
    def _a_name(cls, value: str | None, info: Any) -> str | None:
        return check_name(value, what=f"{info.field_name} name") if value is not None else None

    @property
    def instance_name(self) -> str:
        return self.instance if self.instance is not None else self.service

    @property
    def key(self) -> str:
        """The registry key: ``services:{service}:{instance}`` (not namespaced)."""
        return f"services:{self.service}:{self.instance_name}"


class Service(Strict):
    """One service: how it runs (``process``, ``docker`` or ``proxy``), or where it is found
    (``discover``), how to tell it is healthy, where its metrics are.

    A service that is not run (none of the three) is only observed: probes and
    checks may read it, but no step may start, stop or signal it. ``kubernetes``
    is reserved for the backend that will follow.
    """

    process: ProcessRun | None = None
    docker: DockerRun | None = None
    proxy: ProxyRun | None = None
    discover: DiscoverRun | None = None
    kubernetes: dict[str, Any] | None = None
    health: ProbeSpec
    """Required, except for a ``proxy`` (a TCP connect to its listen port) and a
    ``discover`` (the ecosystem's ``/api/v1/health``, set by the loader)."""
    metrics_url: Text | None = None
    log: Text | None = None
    autostart: bool = True
    start_timeout: Duration = DEFAULT_START_TIMEOUT_S
    depends_on: ServiceList | None = None
    """Setup starts this service once these services are healthy (others start at once)."""

    @field_validator("kubernetes", mode="before")
    @classmethod
    def _not_supported_yet(cls, value: Any, info: Any) -> Any:
        if value is not None:
            raise ValueError(
                f"{info.field_name} services are not supported yet; allowed: process, docker"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _proxy_health(cls, data: Any) -> Any:
        proxy = data.get("proxy") if isinstance(data, dict) else None
        if isinstance(proxy, dict) and "health" not in data and "listen" in proxy:
            host = proxy.get("host", "127.0.0.1")
            return {**data, "health": {"tcp": {"host": host, "port": proxy["listen"]}}}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Service:
        kinds = [k for k in ("process", "docker", "proxy") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ValueError(
                f"a service runs one way: a process, a docker container or a proxy; "
                f"found {', '.join(kinds)}"
            )
        if kinds and self.discover is not None:
            raise ValueError(
                f"a service found through discover: is observed, not run; "
                f"found discover and {kinds[0]}; allowed: one of them"
            )
        return self

    @property
    def kind(self) -> str | None:
        """``process``, ``docker`` or ``proxy``: the backend that runs it; None when only
        observed."""
        if self.process is not None:
            return "process"
        if self.docker is not None:
            return "docker"
        if self.proxy is not None:
            return "proxy"
        return None

    @property
    def discovered(self) -> bool:
        """True when its address comes from the service registry (``discover``)."""
        return self.discover is not None

    @property
    def managed(self) -> bool:
        """True when the coordinator acts on this service (it has ``process`` or ``docker``)."""
        return self.kind is not None

    @property
    def run_config(self) -> dict[str, Any]:
        """The ``process:``, ``docker:`` or ``proxy:`` section as plain JSON (for the backends)."""
        section = self.process or self.docker or self.proxy
        return section.model_dump(mode="json", by_alias=True) if section is not None else {}
