"""Services found through discovery: the ``discover:`` section, the variables of the address
found, placeholders for validation, resolution through the lookup port, the lease key."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import pytest

from test_coordinator.adapters.registry.discovery import discover_for
from test_coordinator.config import Settings
from test_coordinator.ports.availability import RegistryUnavailable
from test_coordinator.ports.registry import ServiceRecord
from test_coordinator.scenario.discovery import (
    PLACEHOLDER_DOMAIN,
    DiscoveredValues,
    DiscoveryFailed,
    resolve_discovered,
    specs_in_text,
    variables_for,
)
from test_coordinator.scenario.loader import LoadedScenario, load_text, placeholder_port
from test_coordinator.scenario.problems import ScenarioInvalid
from test_coordinator.scenario.schema import schema_json
from test_coordinator.service.runs.target_keys import lease_keys

SCENARIO = """\
version: 1
services:
  exchange-OKX:
    discover: {service: exchange-simulator, instance: exchange-OKX}
steps:
  - name: the exchange answers
    expect:
      http: {url: "${exchange-OKX.http_url}/api/v1/health", json: {status: healthy}}
  - name: its gRPC port accepts
    expect: {tcp: {host: "${exchange-OKX.host}", port: "${exchange-OKX.grpc_port}"}}
"""


def record(
    instance: str = "exchange-OKX", *, service: str = "exchange-simulator", **changes: object
) -> ServiceRecord:
    fields: dict[str, object] = {
        "service": service,
        "instance": instance,
        "host": "10.0.0.7",
        "http_port": 8081,
        "grpc_port": 50052,
        "version": "1.0.0",
        "environment": "docker",
        "status": "healthy",
        "timestamp": "2025-10-07T12:34:56Z",
    }
    fields.update(changes)
    return ServiceRecord(**fields)  # type: ignore[arg-type]


def load(text: str, discovered: DiscoveredValues | None = None) -> LoadedScenario:
    return load_text(
        textwrap.dedent(text),
        path=Path("s.yaml"),
        overrides={},
        environ={},
        allocate_port=placeholder_port,
        builtins={"python": sys.executable, "scenario_dir": "/x", "run_id": "r"},
        discovered=discovered,
    )


def problems(text: str, discovered: DiscoveredValues | None = None) -> list[str]:
    with pytest.raises(ScenarioInvalid) as caught:
        load(text, discovered)
    return [str(problem) for problem in caught.value.problems]


@dataclasses.dataclass
class FakeLookup:
    records: dict[tuple[str, str], ServiceRecord]
    location: str = "redis://fake:6379/0"
    down: bool = False
    malformed: frozenset[tuple[str, str]] = frozenset()
    asked: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    async def lookup(self, service: str, instance: str) -> ServiceRecord | None:
        self.asked.append((service, instance))
        if self.down:
            raise RegistryUnavailable("redis: ConnectionError: refused")
        if (service, instance) in self.malformed:
            raise ValueError("http_port is missing or not a int")
        return self.records.get((service, instance))


# -- the section ---------------------------------------------------------------------


def test_the_specs_are_found_in_the_text_with_where_they_are() -> None:
    (spec,) = specs_in_text(SCENARIO, "s.yaml")

    assert (spec.name, spec.service, spec.instance) == (
        "exchange-OKX",
        "exchange-simulator",
        "exchange-OKX",
    )
    assert spec.key == "services:exchange-simulator:exchange-OKX"
    assert (spec.file, spec.position.line, spec.position.column) == ("s.yaml", 4, 55)
    assert spec.path == "services.exchange-OKX.discover.instance"


def test_without_an_instance_the_singleton_is_meant() -> None:
    text = SCENARIO.replace(
        "{service: exchange-simulator, instance: exchange-OKX}", "{service: audit-correlator}"
    )
    (spec,) = specs_in_text(text, "s.yaml")

    assert (spec.service, spec.instance) == ("audit-correlator", "audit-correlator")
    model = load(text).model
    assert model.services["exchange-OKX"].discover is not None
    assert model.services["exchange-OKX"].discover.key == (
        "services:audit-correlator:audit-correlator"
    )


def test_a_malformed_section_is_left_to_validation() -> None:
    text = SCENARIO.replace("instance: exchange-OKX}", "instance: exchange OKX}")

    assert specs_in_text(text, "s.yaml") == []
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith("s.yaml:4:55: services.exchange-OKX.discover.instance: ")
    assert "instance name 'exchange OKX' is not allowed" in found[0]


def test_variables_are_refused_in_the_section() -> None:
    text = SCENARIO.replace("version: 1\n", "version: 1\nvars: {which: exchange-OKX}\n").replace(
        "instance: exchange-OKX}", 'instance: "${which}"}'
    )

    assert specs_in_text(text, "s.yaml") == []
    (found,) = problems(text)
    assert found.startswith("s.yaml:5:55: services.exchange-OKX.discover.instance: variables")


def test_a_service_is_discovered_or_run_not_both() -> None:
    text = SCENARIO.replace(
        "    discover: {service: exchange-simulator, instance: exchange-OKX}\n",
        "    discover: {service: exchange-simulator, instance: exchange-OKX}\n"
        "    process: {command: sleep, args: ['60']}\n",
    )

    (found,) = problems(text)
    assert "found discover and process" in found


def test_a_discovered_service_is_only_observed() -> None:
    text = SCENARIO + "  - name: stop it\n    stop: exchange-OKX\n"

    (found,) = problems(text)
    assert "s.yaml:12:11: steps[2].stop: service 'exchange-OKX' is only observed" in found


def test_the_schema_knows_the_section() -> None:
    assert '"DiscoverRun"' in schema_json()


# -- placeholders (validate, plan) ---------------------------------------------------


def test_without_the_registry_the_address_is_a_placeholder() -> None:
    loaded = load(SCENARIO)
    service = loaded.model.services["exchange-OKX"]

    host = f"exchange-OKX.{PLACEHOLDER_DOMAIN}"
    assert loaded.values["exchange-OKX.host"] == host
    assert isinstance(loaded.values["exchange-OKX.grpc_port"], int)
    assert loaded.origins["exchange-OKX.host"] == "placeholder"
    assert service.kind is None and not service.managed and service.discovered
    assert service.health.http is not None
    assert service.health.http.url.startswith(f"http://{host}:")
    assert service.health.http.json_fields == {"status": "healthy"}


def test_a_reference_to_an_unknown_field_is_caught_with_a_hint() -> None:
    text = SCENARIO.replace("${exchange-OKX.host}", "${exchange-OKX.hots}")

    (found,) = problems(text)
    assert found.startswith("s.yaml:10:")
    assert "unknown variable '${exchange-OKX.hots}'; did you mean 'exchange-OKX.host'?" in found


def test_scenarios_without_discovery_get_no_such_variables() -> None:
    text = """\
    version: 1
    services:
      api: {health: {tcp: {port: 9}}}
    steps: [{name: look, probe: {healthy: api}}]
    """

    assert not any("." in name for name in load(text).values)


# -- resolved ------------------------------------------------------------------------


def test_the_record_found_gives_the_address_and_the_default_health() -> None:
    loaded = load(SCENARIO, {"exchange-OKX": record()})
    service = loaded.model.services["exchange-OKX"]
    expect, tcp = loaded.model.steps

    assert service.health.http is not None
    assert service.health.http.url == "http://10.0.0.7:8081/api/v1/health"
    assert expect.expect.http.url == "http://10.0.0.7:8081/api/v1/health"  # type: ignore[attr-defined]
    assert tcp.expect.tcp.host == "10.0.0.7"  # type: ignore[attr-defined]
    assert tcp.expect.tcp.port == 50052  # type: ignore[attr-defined]
    assert loaded.origins["exchange-OKX.http_port"] == (
        "discovered (services:exchange-simulator:exchange-OKX)"
    )


def test_a_health_written_out_is_kept() -> None:
    text = SCENARIO.replace(
        "    discover: {service: exchange-simulator, instance: exchange-OKX}\n",
        "    discover: {service: exchange-simulator, instance: exchange-OKX}\n"
        '    health: {grpc: {target: "${exchange-OKX.grpc_target}"}}\n',
    )

    service = load(text, {"exchange-OKX": record()}).model.services["exchange-OKX"]

    assert service.health.grpc is not None and service.health.http is None
    assert service.health.grpc.target == "10.0.0.7:50052"


def test_a_service_the_answer_lacks_is_a_problem_not_a_placeholder() -> None:
    (found,) = problems(SCENARIO, {})

    assert found == (
        "s.yaml:4:55: services.exchange-OKX.discover.instance: "
        "instance exchange-OKX was not resolved"
    )


def test_an_answer_for_another_instance_is_refused() -> None:
    (found,) = problems(SCENARIO, {"exchange-OKX": record("exchange-Binance")})

    assert "resolved as exchange-simulator/exchange-Binance" in found


def test_an_ipv6_host_is_bracketed_in_urls_and_targets() -> None:
    values = variables_for("x", record(host="fd00::7"))

    assert values["x.host"] == "fd00::7"
    assert values["x.http_url"] == "http://[fd00::7]:8081"
    assert values["x.grpc_target"] == "[fd00::7]:50052"


# -- resolving through the port ------------------------------------------------------


async def test_resolution_asks_each_instance_once() -> None:
    text = SCENARIO.replace(
        "steps:",
        "  okx-again:\n    discover: {service: exchange-simulator, instance: exchange-OKX}\nsteps:",
    )
    lookup = FakeLookup({("exchange-simulator", "exchange-OKX"): record()})

    found = await resolve_discovered(specs_in_text(text, "s.yaml"), lookup)

    assert found == {"exchange-OKX": record(), "okx-again": record()}
    assert lookup.asked == [("exchange-simulator", "exchange-OKX")]


async def test_a_missing_instance_is_a_problem_at_its_line_and_column() -> None:
    with pytest.raises(DiscoveryFailed) as caught:
        await resolve_discovered(specs_in_text(SCENARIO, "s.yaml"), FakeLookup({}))

    (problem,) = caught.value.problems
    assert not caught.value.unavailable
    assert str(problem).startswith(
        "s.yaml:4:55: services.exchange-OKX.discover.instance: no instance exchange-OKX in "
        "the registry at redis://fake:6379/0 (key services:exchange-simulator:exchange-OKX)"
    )


async def test_a_malformed_record_is_named() -> None:
    lookup = FakeLookup({}, malformed=frozenset({("exchange-simulator", "exchange-OKX")}))

    with pytest.raises(DiscoveryFailed) as caught:
        await resolve_discovered(specs_in_text(SCENARIO, "s.yaml"), lookup)

    assert "is not a discovery record: http_port is missing" in str(caught.value)


async def test_a_registry_that_does_not_answer_is_unavailable() -> None:
    with pytest.raises(DiscoveryFailed) as caught:
        await resolve_discovered(specs_in_text(SCENARIO, "s.yaml"), FakeLookup({}, down=True))

    assert caught.value.unavailable
    assert "does not answer: redis: ConnectionError: refused" in str(caught.value)


# -- discover_for: what a run calls --------------------------------------------------


def settings(tmp_path: Path, redis_url: str | None = None) -> Settings:
    return Settings(data_dir=tmp_path, postgres_url=None, redis_url=redis_url)


async def test_discover_for_asks_nothing_when_nothing_is_discovered(tmp_path: Path) -> None:
    text = "version: 1\nservices: {api: {health: {tcp: {port: 9}}}}\nsteps: []\n"

    assert await discover_for(text, settings(tmp_path)) == {}


async def test_discover_for_without_a_registry_says_what_to_set(tmp_path: Path) -> None:
    path = tmp_path / "okx.yaml"
    path.write_text(SCENARIO)

    with pytest.raises(DiscoveryFailed) as caught:
        await discover_for(path, settings(tmp_path))

    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{path}:4:55: ")
    assert "no service registry is configured; set REDIS_URL" in problem.message
    assert not caught.value.unavailable


async def test_discover_for_uses_the_lookup_given(tmp_path: Path) -> None:
    lookup = FakeLookup({("exchange-simulator", "exchange-OKX"): record()})

    found = await discover_for(SCENARIO, settings(tmp_path), redis=lookup, label="request")

    assert found == {"exchange-OKX": record()}


# -- the lease -----------------------------------------------------------------------


def test_a_discovered_instance_is_a_shared_target() -> None:
    text = SCENARIO.replace(
        "steps:",
        "  audit:\n    discover: {service: audit-correlator}\nsteps:",
    )

    assert lease_keys(load(text).model) == {
        "instance:exchange-simulator:exchange-OKX",
        "instance:audit-correlator:audit-correlator",
    }
