"""Loading scenarios: every problem at once, each at its line and column, in plain words."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from test_coordinator.scenario.loader import (
    LoadedScenario,
    load_scenario,
    load_text,
    placeholder_port,
)
from test_coordinator.scenario.problems import ScenarioInvalid

HEADER = """\
version: 1
services:
  api:
    process: {command: python, args: [server.py]}
    health: {http: {url: "http://127.0.0.1:8080/health"}}
  db:
    process: {command: db}
    health: {tcp: {port: 5432}}
  feed:
    health: {tcp: {port: 9000}}
"""


def load(body: str, header: str = HEADER, **kwargs: object) -> LoadedScenario:
    return load_text(
        header + textwrap.dedent(body),
        path=Path("s.yaml"),
        overrides=kwargs.pop("overrides", {}),  # type: ignore[arg-type]
        environ=kwargs.pop("environ", {}),  # type: ignore[arg-type]
        allocate_port=placeholder_port,
        builtins={"python": sys.executable, "scenario_dir": "/x", "run_id": "r"},
    )


def problems(body: str, header: str = HEADER, **kwargs: object) -> list[str]:
    with pytest.raises(ScenarioInvalid) as caught:
        load(body, header, **kwargs)
    return [str(problem) for problem in caught.value.problems]


def test_a_valid_scenario_loads_into_frozen_models() -> None:
    loaded = load("steps:\n  - restart: api\n    timeout: 2s\n")

    [step] = loaded.model.steps
    assert ("api",) == step.restart.services  # type: ignore[attr-defined]
    assert 2.0 == step.timeout
    assert "s" == loaded.name
    with pytest.raises(ValueError):
        step.timeout = 3.0  # type: ignore[misc]


def test_misspelt_key_and_wrong_type_are_both_reported_with_lines() -> None:
    """The issue's acceptance case: two problems, one pass, exact positions."""
    found = problems(
        """\
        steps:
          - restart: api
            timout: 5s
          - expect: {healthy: api, within: soon}
        """
    )

    assert [
        "s.yaml:13:5: steps[0].timout: unknown key 'timout'; did you mean 'timeout'? "
        "allowed: name, timeout, restart",
        "s.yaml:14:36: steps[1].expect.within: 'soon' is not a duration; allowed: a number "
        "with a unit, such as 250ms, 2s, 1.5m or 1h",
    ] == found


def test_wrongly_typed_number_names_what_is_expected() -> None:
    found = problems("steps:\n  - background: {load: {url: 'http://x', rate: lots}}\n")

    assert ["s.yaml:12:48: steps[0].background.load.rate: expected a number, got 'lots'"] == found


def test_unknown_step_kind_suggests_the_closest() -> None:
    [found] = problems("steps:\n  - restrat: api\n")

    assert found.startswith(
        "s.yaml:12:5: steps[0]: unknown step 'restrat'; did you mean 'restart'?"
    )
    assert "allowed: start, stop, restart" in found


def test_two_action_keys_in_one_step() -> None:
    [found] = problems("steps:\n  - restart: api\n    kill: api\n")

    assert "a step has exactly one kind key; found restart, kill" in found


def test_service_outside_the_inventory_is_refused() -> None:
    """The blast radius: steps touch only listed services."""
    found = problems(
        """\
        steady_state: [{healthy: dbb}]
        steps:
          - restart: apx
          - pause: {random: [api, web]}
        """
    )

    assert [
        "s.yaml:11:26: steady_state[0].healthy: service 'dbb' is not in the inventory; "
        "did you mean 'db'? allowed (services:): api, db, feed",
        "s.yaml:13:14: steps[0].restart: service 'apx' is not in the inventory; "
        "did you mean 'api'? allowed (services:): api, db, feed",
        "s.yaml:14:12: steps[1].pause: service 'web' is not in the inventory; "
        "allowed (services:): api, db, feed",
    ] == found


def test_unknown_service_reported_alongside_structural_errors() -> None:
    found = problems("steps:\n  - restart: apx\n    timout: 1s\n")

    assert 2 == len(found)
    assert any("service 'apx' is not in the inventory" in line for line in found)


def test_an_observed_service_cannot_be_faulted() -> None:
    [found] = problems("steps:\n  - kill: feed\n")

    assert "service 'feed' is only observed (no process: or docker:)" in found


def test_kubernetes_is_reserved() -> None:
    header = HEADER.replace("    process: {command: db}\n", "    kubernetes: {deployment: db}\n")

    [found] = problems("steps: [{wait: 1ms}]\n", header)

    assert found.startswith("s.yaml:7:")
    assert found.endswith(
        "services.db.kubernetes: kubernetes services are not supported yet; "
        "allowed: process, docker"
    )


def test_a_docker_service_is_an_image_or_an_existing_container() -> None:
    header = HEADER.replace("    process: {command: db}\n", "    docker: {image: postgres}\n")
    loaded = load("steps: [{restart: db}]\n", header)
    assert "docker" == loaded.model.services["db"].kind

    both = HEADER.replace(
        "    process: {command: db}\n", "    docker: {image: postgres, container: pg}\n"
    )
    [found] = problems("steps: [{wait: 1ms}]\n", both)
    assert "services.db.docker" in found and "exactly one of container, image" in found

    existing = HEADER.replace(
        "    process: {command: db}\n", "    docker: {container: pg, env: {A: b}}\n"
    )
    [found] = problems("steps: [{wait: 1ms}]\n", existing)
    assert "env: only for a container the run creates" in found


def test_unknown_variable_is_an_error_at_its_line() -> None:
    [found] = problems("steps:\n  - wait: ${dealy}\n", header="vars: {delay: 1s}\n" + HEADER)

    assert found.startswith(
        "s.yaml:13:11: steps[0].wait: unknown variable '${dealy}'; did you mean 'delay'?"
    )


def test_captured_variable_used_before_its_capture() -> None:
    found = problems(
        """\
        steps:
          - probe: {http: {url: "http://x/${token}"}}
          - probe: {http: {url: "http://x/login"}, json_path: token}
            capture: token
        """
    )

    assert [
        "s.yaml:12:25: steps[0].probe.http.url: '${token}' is captured by a step, but it is "
        "used before the step that captures it"
    ] == found


def test_captured_variable_in_a_number_field_is_explained() -> None:
    [found] = problems(
        """\
        steps:
          - probe: {http: {url: "http://x/a"}}
            capture: n
          - probe: {tcp: {port: "${n}"}}
        """
    )

    assert "known only while the run goes; captured variables may be used in text only" in found


def test_timeout_shorter_than_the_wait_it_bounds() -> None:
    [found] = problems("steps:\n  - expect: {healthy: api, within: 5s}\n    timeout: 1s\n")

    assert "timeout 1s is shorter than within 5s" in found


def test_checks_refer_to_existing_faults_steps_and_loads() -> None:
    found = problems(
        """\
        steps:
          - name: bounce
            restart: api
        checks:
          - recovery_time: {service: db, max: 1s}
          - load: {max_p95: 10ms}
          - metric: {service: api, name: up, min: 1}
        """
    )

    assert 3 == len(found)
    assert "no step injects a fault into 'db'" in found[0]
    assert "there is no background load in this scenario" in found[1]
    assert "service 'api' has no metrics_url" in found[2]


def test_duplicate_keys_and_yaml_syntax_errors_have_positions() -> None:
    assert ["s.yaml:12:1: duplicate key 'steps' (first at line 11)"] == problems(
        "steps: [{wait: 1s}]\nsteps: [{wait: 2s}]\n"
    )
    [syntax] = problems("steps: [{wait: 1s}\n")
    assert syntax.startswith("s.yaml:12:1: not valid YAML or JSON")


def test_missing_keys_point_at_their_mapping() -> None:
    found = problems("steps:\n  - expect: {within: 1s}\n")

    assert [
        "s.yaml:12:13: steps[0].expect: a condition needs exactly one of healthy, http, "
        "tcp, grpc, command; found none"
    ] == found
    assert ["s.yaml:1:1: missing required key 'version'"] == problems(
        "steps: [{wait: 1s}]\n", header=HEADER.replace("version: 1\n", "")
    )


def test_wrong_version_says_which_is_allowed() -> None:
    [found] = problems("steps: [{wait: 1s}]\n", header=HEADER.replace("version: 1", "version: 2"))

    assert "s.yaml:1:10: version: 2 is not allowed; allowed: 1" == found


def test_json_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        '{"version": 1, "services": {"api": {"process": {"command": "x"},'
        ' "health": {"tcp": {"port": 1}}}}, "steps": [{"stop": "api"}]}'
    )

    loaded = load_scenario(path)

    assert "stop" in type(loaded.model.steps[0]).model_fields


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioInvalid, match="cannot read: No such file"):
        load_scenario(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ScenarioInvalid, match="the file is empty"):
        load_scenario(tmp_path / "empty.yaml")


def test_every_example_is_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "scenarios" / "examples"

    names = [load_scenario(path).name for path in sorted(examples.glob("*.yaml"))]

    assert {"restart-recovery", "always-breaks", "pause-resume"} <= set(names)


def test_a_comparison_that_can_never_hold_is_flagged() -> None:
    """validate names the condition whose equals/min/max/regex contradict each other."""
    [found] = problems("steps:\n  - probe: {command: {argv: [echo, '5']}, equals: 5, max: 3}\n")

    assert "steps[0].probe" in found
    assert "lies outside min/max: they can never hold together" in found
