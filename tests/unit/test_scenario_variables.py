"""Variables: precedence, types, substitution, ports, captured values."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from test_coordinator.scenario.durations import format_duration, parse_duration
from test_coordinator.scenario.loader import load_text
from test_coordinator.scenario.probes import Condition
from test_coordinator.scenario.problems import ScenarioInvalid
from test_coordinator.scenario.variables import (
    OverrideError,
    resolve_values,
    substitute,
    substitute_model,
)

TEXT = """\
version: 1
vars: {max_ms: 2000, mode: fast, verbose: false, ratio: 0.5}
ports: [api_port]
services:
  api:
    process: {command: "${python}", args: [--port, "${api_port}", --mode, "${mode}"]}
    health: {tcp: {port: "${api_port}"}}
steps: [{wait: "${max_ms}ms"}]
"""


def load(overrides: dict[str, str] | None = None, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    ports = itertools.count(50001)
    return load_text(
        TEXT,
        path=Path("v.yaml"),
        overrides=overrides or {},
        environ=environ or {},
        allocate_port=lambda: next(ports),
        builtins={"python": "/usr/bin/python3", "scenario_dir": "/s", "run_id": "r"},
    )


def test_defaults_ports_and_builtins_are_substituted() -> None:
    loaded = load()

    service = loaded.model.services["api"]
    assert service.process is not None
    assert ("/usr/bin/python3", "--port", "50001", "--mode", "fast") == service.process.argv
    assert service.health.tcp is not None and 50001 == service.health.tcp.port
    assert 2.0 == loaded.model.steps[0].wait  # type: ignore[attr-defined]
    assert {"api_port": 50001} == dict(loaded.ports)


def test_var_beats_environment_beats_default() -> None:
    loaded = load(
        overrides={"max_ms": "5"},
        environ={"TC_VAR_MAX_MS": "7", "TC_VAR_MODE": "slow"},
    )

    assert 5 == loaded.values["max_ms"]
    assert "slow" == loaded.values["mode"]
    assert {"max_ms": "--var", "mode": "env"} == {
        k: v for k, v in loaded.origins.items() if k in ("max_ms", "mode")
    }
    assert 0.005 == loaded.model.steps[0].wait  # type: ignore[attr-defined]


def test_override_takes_the_type_of_its_default() -> None:
    values, _ = resolve_values(
        {"n": 1, "f": 0.5, "b": False, "s": "x"}, {"n": "3", "f": "2", "b": "yes", "s": "4"}, {}
    )

    assert {"n": 3, "f": 2.0, "b": True, "s": "4"} == values
    with pytest.raises(
        OverrideError, match=r"--var n='three': expected a whole number, like its default 1"
    ):
        resolve_values({"n": 1}, {"n": "three"}, {})
    with pytest.raises(  # spelled as the scenario spells it, not as Python does
        OverrideError, match=r"--var b='maybe': expected true or false, like its default true$"
    ):
        resolve_values({"b": True}, {"b": "maybe"}, {})


def test_bad_override_is_a_scenario_problem() -> None:
    with pytest.raises(ScenarioInvalid, match="expected a whole number"):
        load(overrides={"max_ms": "soon"})


def test_substitution_keeps_the_type_of_a_whole_reference() -> None:
    values = {"port": 8080, "on": True, "name": "api"}

    assert 8080 == substitute("${port}", values)
    assert "http://h:8080/x" == substitute("http://h:${port}/x", values)
    assert "flag=true" == substitute("flag=${on}", values)
    assert "${name} is literal" == substitute("$${name} is literal", values)
    assert "${later}" == substitute("${later}", values, deferred=frozenset({"later"}))


def test_unknown_reference_is_reported_once() -> None:
    unknown: list[str] = []

    substitute("${a}-${b}", {"a": 1}, on_unknown=unknown.append)

    assert ["b"] == unknown


def test_substitute_model_replaces_text_only() -> None:
    condition = Condition.model_validate(
        {"http": {"url": "http://x/${id}", "status": 201}, "equals": "${id}"}
    )

    resolved = substitute_model(condition, {"id": 42})

    assert resolved.http is not None and "http://x/42" == resolved.http.url
    assert 201 == resolved.http.status
    assert "42" == resolved.equals
    assert condition.http is not None and "http://x/${id}" == condition.http.url


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("2s", 2.0), ("1.5m", 90.0), ("1h", 3600.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert seconds == parse_duration(text)


@pytest.mark.parametrize("bad", ["5", "2 sec", "-1s", "", "1d"])
def test_bad_durations_say_what_is_allowed(bad: str) -> None:
    with pytest.raises(ValueError, match="allowed: a number with a unit"):
        parse_duration(bad)
    with pytest.raises(ValueError, match="has no unit"):
        parse_duration(5)


@pytest.mark.parametrize("long", ["721h", "1" + "0" * 30 + "s", "43201m"])
def test_durations_beyond_30_days_are_refused(long: str) -> None:
    assert 720 * 3600.0 == parse_duration("720h")
    with pytest.raises(ValueError, match=r"too long a duration; .* at most 720h"):
        parse_duration(long)


def test_durations_print_back_exactly() -> None:
    assert ["250ms", "2s", "90s", "2m", "1h", "1.5ms"] == [
        format_duration(s) for s in (0.25, 2.0, 90.0, 120.0, 3600.0, 0.0015)
    ]


def test_python_builtin_defaults_to_the_running_interpreter(tmp_path: Path) -> None:
    from test_coordinator.scenario.loader import load_scenario

    path = tmp_path / "p.yaml"
    path.write_text(TEXT)

    loaded = load_scenario(path)

    assert sys.executable == loaded.values["python"]
    assert str(tmp_path) == loaded.values["scenario_dir"]
