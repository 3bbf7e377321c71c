"""Services found through discovery: an ecosystem instance named in the scenario, its
address read from the service registry (``services:{service}:{instance}``).

A service written ``discover: {service: exchange-simulator, instance: exchange-OKX}``
is observed, never run. Its address is known to the rest of the scenario as
variables named after the scenario's service, ``${<name>.host}``,
``${<name>.http_port}``, ``${<name>.grpc_port}``, ``${<name>.http_url}`` and
``${<name>.grpc_target}``: a service name holds no ``.``, and a declared variable
may not, so these names never meet any other.

Loading stays synchronous: the registry is asked before, by
:func:`resolve_discovered` (async, through the small :class:`InstanceLookup`
port), and its answer is passed to the loader as ``discovered``. Without it
(``validate``, ``plan``) the address is a placeholder: a host under ``.invalid``
and placeholder ports, so validation never needs the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from test_coordinator.domain.identity import InvalidName, check_name
from test_coordinator.ports.availability import DependencyUnavailable
from test_coordinator.ports.registry import ServiceRecord
from test_coordinator.scenario.problems import (
    Position,
    ScenarioInvalid,
    ScenarioProblem,
    format_path,
)
from test_coordinator.scenario.source import SourceTree, parse_source

DISCOVER_KEY = "discover"
KEY_PREFIX = "services"
HEALTH_PATH = "/api/v1/health"
"""The ecosystem's health endpoint; its JSON says ``"status": "healthy"``."""
FIELDS = ("host", "http_port", "grpc_port", "http_url", "grpc_target")
"""The variables each discovered service gives, as ``${<name>.<field>}``."""
PLACEHOLDER_DOMAIN = "discovered.invalid"
"""Placeholder hosts are ``<instance>.discovered.invalid``: a name that never resolves."""

DiscoveredValues = Mapping[str, ServiceRecord]
"""The registry's answer for one scenario: its service name → the record found."""


class InstanceLookup(Protocol):
    """Where discovery reads records: one instance at a time."""

    @property
    def location(self) -> str:
        """Where the registry is, for messages (``redis://127.0.0.1:6379/0``); no secrets."""
        ...

    async def lookup(self, service: str, instance: str) -> ServiceRecord | None:
        """The record at ``services:{service}:{instance}``, None when there is none.

        Raises DependencyUnavailable when the registry cannot be asked, ValueError
        when the value found is not a discovery record."""
        ...


@dataclass(frozen=True, slots=True)
class DiscoverSpec:
    """One ``discover:`` section as written, and where."""

    name: str
    """The scenario's service name (the key under ``services:``)."""
    service: str
    instance: str
    file: str
    position: Position
    path: str
    """Where to report what the registry says about it: its ``instance`` (or ``service``)."""

    @property
    def key(self) -> str:
        """``services:{service}:{instance}``: the ecosystem's key, not namespaced."""
        return f"{KEY_PREFIX}:{self.service}:{self.instance}"

    def problem(self, message: str) -> ScenarioProblem:
        return ScenarioProblem(self.file, self.position, self.path, message)


class DiscoveryFailed(ScenarioInvalid):
    """A discovered service cannot be resolved; each problem is at its ``discover:``.

    ``unavailable``: the registry did not answer (try later); otherwise an instance
    is missing or its record malformed, or no registry is configured."""

    def __init__(self, problems: Sequence[ScenarioProblem], *, unavailable: bool = False) -> None:
        super().__init__(problems)
        self.unavailable = unavailable


# -- finding the specs ---------------------------------------------------------------


def discovery_names(tree: SourceTree) -> list[str]:
    """The services that have a ``discover:`` key, whatever its shape."""
    services = tree.data.get("services") if isinstance(tree.data, dict) else None
    if not isinstance(services, dict):
        return []
    return [
        name
        for name, service in services.items()
        if isinstance(service, dict) and DISCOVER_KEY in service
    ]


def specs_in_tree(tree: SourceTree) -> tuple[list[DiscoverSpec], list[ScenarioProblem]]:
    """The well-formed ``discover:`` sections, and the problems only this finder sees.

    A section the model refuses anyway (not a mapping, a bad name) is left out
    without a problem here: validation reports it. Variables are refused here,
    because the registry is asked before the scenario's variables are known.
    """
    specs: list[DiscoverSpec] = []
    problems: list[ScenarioProblem] = []
    for name in discovery_names(tree):
        section = tree.data["services"][name][DISCOVER_KEY]
        path: tuple[str | int, ...] = ("services", name, DISCOVER_KEY)
        if not isinstance(section, dict):
            continue
        written = {key: section.get(key) for key in ("service", "instance")}
        variables = [
            key for key, value in written.items() if isinstance(value, str) and "${" in value
        ]
        for key in variables:
            problems.append(
                tree.problem(
                    (*path, key),
                    "variables are not allowed in discover: (the registry is asked before "
                    "the scenario's variables are resolved); write the name out, such as "
                    "exchange-OKX",
                )
            )
        service, instance = written["service"], written["instance"]
        if variables or not _a_name(service) or not (instance is None or _a_name(instance)):
            continue
        assert isinstance(service, str)
        at = (*path, "instance") if instance is not None else (*path, "service")
        specs.append(
            DiscoverSpec(
                name=name,
                service=service,
                instance=instance if isinstance(instance, str) else service,
                file=tree.file,
                position=tree.value_position(at),
                path=format_path(at),
            )
        )
    return specs, problems


def specs_in_text(text: str, file: str) -> list[DiscoverSpec]:
    """The well-formed ``discover:`` sections of a scenario's text (no variables
    substituted, nothing validated); ScenarioInvalid if the text is not YAML."""
    return specs_in_tree(parse_source(text, file))[0]


def _a_name(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        check_name(value)
    except InvalidName:
        return False
    return True


# -- resolving -----------------------------------------------------------------------


async def resolve_discovered(
    specs: Sequence[DiscoverSpec], lookup: InstanceLookup
) -> DiscoveredValues:
    """Ask the registry for every spec; DiscoveryFailed lists every one it cannot resolve.

    Each instance is asked once; a registry that cannot be asked ends the
    questions at once (one problem, at the first spec)."""
    found: dict[str, ServiceRecord] = {}
    asked: dict[tuple[str, str], ServiceRecord | str] = {}  # a record, or what is wrong
    problems: list[ScenarioProblem] = []
    for spec in specs:
        pair = (spec.service, spec.instance)
        if pair not in asked:
            asked[pair] = await _ask(spec, lookup)
        answer = asked[pair]
        if isinstance(answer, ServiceRecord):
            found[spec.name] = answer
        else:
            problems.append(spec.problem(answer))
    if problems:
        raise DiscoveryFailed(problems)
    return found


async def _ask(spec: DiscoverSpec, lookup: InstanceLookup) -> ServiceRecord | str:
    where = f"the registry at {lookup.location} (key {spec.key})"
    try:
        record = await lookup.lookup(spec.service, spec.instance)
    except DependencyUnavailable as exc:
        raise DiscoveryFailed(
            [
                spec.problem(
                    f"cannot look up instance {spec.instance}: {where} does not answer: {exc}"
                )
            ],
            unavailable=True,
        ) from None
    except ValueError as exc:
        return f"instance {spec.instance} in {where} is not a discovery record: {exc}"
    if record is None:
        return (
            f"no instance {spec.instance} in {where}: not registered, or its record "
            f"expired (a live {spec.service} renews it)"
        )
    return record


def no_registry(specs: Sequence[DiscoverSpec]) -> DiscoveryFailed:
    """The failure when no registry is configured: one problem per spec."""
    return DiscoveryFailed(
        [
            spec.problem(
                f"cannot find instance {spec.instance}: no service registry is configured; "
                f"set REDIS_URL to the ecosystem's Redis, where {spec.key} is published"
            )
            for spec in specs
        ]
    )


# -- the values the loader substitutes -----------------------------------------------


def variables_for(name: str, record: ServiceRecord) -> dict[str, str | int]:
    """``${<name>.host}`` and the rest, from ``record``."""
    host = f"[{record.host}]" if ":" in record.host else record.host
    return {
        f"{name}.host": record.host,
        f"{name}.http_port": record.http_port,
        f"{name}.grpc_port": record.grpc_port,
        f"{name}.http_url": f"http://{host}:{record.http_port}",
        f"{name}.grpc_target": f"{host}:{record.grpc_port}",
    }


def placeholder_record(service: str, instance: str, port: Callable[[], int]) -> ServiceRecord:
    """A stand-in record: a host that never resolves, placeholder ports."""
    return ServiceRecord(
        service=service,
        instance=instance,
        host=f"{instance}.{PLACEHOLDER_DOMAIN}",
        http_port=port(),
        grpc_port=port(),
        version="",
        environment="",
        status="placeholder",
        timestamp="",
    )


def default_health(name: str) -> dict[str, Any]:
    """The ecosystem's health check on the discovered address (before substitution)."""
    return {
        "http": {
            "url": f"${{{name}.http_url}}{HEALTH_PATH}",
            "json": {"status": "healthy"},
        }
    }


def discovery_values(
    tree: SourceTree,
    discovered: DiscoveredValues | None,
    placeholder_port: Callable[[], int],
    problems: list[ScenarioProblem],
) -> tuple[dict[str, str | int], dict[str, str]]:
    """The variables of every discovered service, and where each came from.

    From ``discovered`` when given (a service it lacks, or holds for another
    instance, is a problem: the run would otherwise aim at a placeholder), else
    placeholders. A discovered service without ``health:`` gets the ecosystem's
    health check, written into ``tree`` before its variables are substituted.
    """
    specs, found_problems = specs_in_tree(tree)
    problems.extend(found_problems)
    by_name = {spec.name: spec for spec in specs}
    values: dict[str, str | int] = {}
    origins: dict[str, str] = {}
    for name in discovery_names(tree):
        service = tree.data["services"][name]
        if "health" not in service:
            service["health"] = default_health(name)
        spec = by_name.get(name)
        record = discovered.get(name) if discovered is not None and spec is not None else None
        if spec is not None and discovered is not None:
            if record is None:
                problems.append(spec.problem(f"instance {spec.instance} was not resolved"))
            elif (record.service, record.instance) != (spec.service, spec.instance):
                problems.append(
                    spec.problem(
                        f"resolved as {record.service}/{record.instance}, not "
                        f"{spec.service}/{spec.instance}"
                    )
                )
                record = None
        if record is None:
            instance = spec.instance if spec is not None else name
            record = placeholder_record(spec.service if spec else "", instance, placeholder_port)
            origin = "placeholder"
        else:
            origin = f"discovered ({spec.key})" if spec is not None else "discovered"
        for variable, value in variables_for(name, record).items():
            values[variable] = value
            origins[variable] = origin
    return values, origins
