"""Hostile scenario files: every one is a located, one-line problem, never a traceback or a hang."""

from __future__ import annotations

import signal
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from typer.testing import CliRunner

from test_coordinator.entrypoints.cli import app
from test_coordinator.scenario.loader import load_scenario
from test_coordinator.scenario.problems import ScenarioInvalid

HEADER = """\
version: 1
services:
  api:
    process: {command: python, args: [server.py]}
    health: {tcp: {port: 8080}}
steps: [{restart: api}]
"""
BOMB = "".join(
    f"{name}: &{name} [{','.join([f'*{previous}'] * 9 if previous else ['x'] * 9)}]\n"
    for previous, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: the code before the fix loops for minutes on some files."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still loading after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def problems_in(tmp_path: Path, content: str | bytes, name: str = "s.yaml") -> list[str]:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    with deadline(10), pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path)
    found = [str(problem) for problem in caught.value.problems]
    assert all("\n" not in line and "\r" not in line for line in found), found
    return [line.removeprefix(f"{tmp_path}/") for line in found]


def test_a_file_over_one_mib_is_refused_before_parsing(tmp_path: Path) -> None:
    padding = "#" * 100 + "\n"
    content = HEADER + padding * (1024 * 1024 // len(padding) + 1)

    assert [
        "s.yaml:1:1: the file is larger than 1 MiB (1048576 bytes), the limit for a scenario"
    ] == problems_in(tmp_path, content)


@pytest.mark.parametrize(
    ("nested", "where"),
    [
        ("[\n" * 5000 + "]\n" * 5000, "70:1"),
        ("{a: " * 5000 + "}" * 5000, "7:259"),
        ("[" * 5000 + "]" * 5000, "7:"),  # libyaml stops at its own limit (1000) when reading ahead
    ],
    ids=["lists-on-lines", "mappings", "lists-on-one-line"],
)
def test_deep_nesting_is_refused_at_the_level_past_the_limit(
    tmp_path: Path, nested: str, where: str
) -> None:
    [found] = problems_in(tmp_path, HEADER + f"vars: {nested}\n")

    assert found.startswith(f"s.yaml:{where}")
    assert found.endswith(": nested more than 64 levels deep, the limit for a scenario")


def test_alias_bomb_is_refused_fast_at_the_alias_that_passes_the_limit(tmp_path: Path) -> None:
    """The issue's 370-byte bomb expands to 9**9 values; it grew past 1 GB before."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 400

    tracemalloc.start()
    try:
        with deadline(10), pytest.raises(ScenarioInvalid) as caught:
            load_scenario(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    started = time.perf_counter()
    with deadline(10), pytest.raises(ScenarioInvalid):
        load_scenario(path)
    elapsed = time.perf_counter() - started

    assert [
        f"{path}:5:23: more than 50000 values after expanding aliases, the limit for a scenario"
    ] == [str(problem) for problem in caught.value.problems]
    assert elapsed < 0.1
    assert peak < 5 * 1024 * 1024


def test_a_recursive_alias_is_refused_at_the_alias(tmp_path: Path) -> None:
    assert [
        "s.yaml:7:35: alias *s is inside the value it names; a value cannot contain itself"
    ] == problems_in(tmp_path, HEADER + "steady_state: &s [{healthy: api}, *s]\n")


def test_unknown_tags_are_reported_at_their_lines(tmp_path: Path) -> None:
    found = problems_in(
        tmp_path,
        HEADER + "name: !!python/object/apply:os.system [true]\ndescription: !shout hi\n",
    )

    assert [
        "s.yaml:7:7: name: unknown tag '!!python/object/apply:os.system'; allowed: "
        "!!str, !!int, !!float, !!bool, !!null, !!seq, !!map",
        "s.yaml:8:14: description: unknown tag '!shout'; allowed: "
        "!!str, !!int, !!float, !!bool, !!null, !!seq, !!map",
    ] == found


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!int ''", "'' is not a valid !!int"),
        ("!!bool maybe", "'maybe' is not a valid !!bool"),
        ("!!float 1.2.3", "'1.2.3' is not a valid !!float"),
    ],
    ids=["empty-int", "bad-bool", "bad-float"],
)
def test_values_the_yaml_library_cannot_build_are_problems(
    tmp_path: Path, value: str, message: str
) -> None:
    assert [f"s.yaml:7:7: name: {message}"] == problems_in(tmp_path, HEADER + f"name: {value}\n")


def test_dates_stay_as_written_even_when_the_day_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEADER + "name: 2020-13-45\ndescription: 2020-01-02\n")

    loaded = load_scenario(path)

    assert ("2020-13-45", "2020-01-02") == (loaded.model.name, loaded.model.description)


def test_a_control_character_is_reported_at_its_line(tmp_path: Path) -> None:
    found = problems_in(tmp_path, HEADER + 'name: "a\x01b"\ndescription: "\x1b[31m"\n')

    assert [
        "s.yaml:7:9: control character U+0001 is not allowed; inside double quotes write \\x01",
        "s.yaml:8:15: control character U+001B is not allowed; inside double quotes write \\x1b",
    ] == found


def test_a_tab_in_the_indentation_is_named(tmp_path: Path) -> None:
    """YAML's own words ('found character that cannot start any token') do not say tab."""
    indented = problems_in(tmp_path, "version: 1\nsteps:\n\t- wait: 1s\n")
    inside = problems_in(tmp_path, 'version: 1\nname: "a\tb"\nsteps: [\n')

    assert 1 == len(indented)
    assert indented[0].endswith("(a tab in the indentation: YAML indents with spaces)")
    assert "a tab" not in inside[0]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(".nan", "nan"), ("-.inf", "-inf"), ("18446744073709551617", "18446744073709551617")],
)
def test_nan_inf_and_huge_integers_where_a_list_is_expected(
    tmp_path: Path, value: str, shown: str
) -> None:
    found = problems_in(tmp_path, HEADER + f"steady_state: {value}\nchecks: {value}\n")

    assert [
        f"s.yaml:7:15: steady_state: expected a list, got {shown}",
        f"s.yaml:8:9: checks: expected a list, got {shown}",
    ] == found


def test_a_number_with_thousands_of_digits_is_a_problem(tmp_path: Path) -> None:
    found = problems_in(tmp_path, HEADER + f"checks: {'1' * 5000}\n")

    assert ["s.yaml:7:9: checks: number too long (5000 characters; at most 100)"] == found


def test_a_byte_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    found = problems_in(tmp_path, HEADER.encode() + b"name: caf\xe9\n")

    assert ["s.yaml:7:10: cannot read: not UTF-8 text (byte 0xe9)"] == found


def test_names_with_line_breaks_are_escaped_so_each_problem_is_one_line(tmp_path: Path) -> None:
    found = problems_in(
        tmp_path,
        HEADER.replace("[{restart: api}]", '[{restart: "api\\nb: x\\u2028"}]')
        + '"evil\\rkey": 1\n',
    )

    assert [
        "s.yaml:6:19: steps[0].restart: 'api\\nb: x\\u2028' is not a service name; allowed: "
        "letters, digits, '_' and '-', starting with a letter",
        "s.yaml:6:19: steps[0].restart: service 'api\\nb: x\\u2028' is not in the inventory; "
        "allowed (services:): api",
        "s.yaml:7:1: evil\\rkey: unknown key 'evil\\rkey'; allowed: version, name, description, "
        "timeout, vars, ports, services, audit, steady_state, steps, checks",
    ] == found


@pytest.mark.parametrize(
    "duration", ["\uff11s", "\u0663s", "1\u2007s"]
)  # full-width 1, Arabic-Indic 3
def test_durations_accept_ascii_digits_only(tmp_path: Path, duration: str) -> None:
    found = problems_in(tmp_path, HEADER.replace("{restart: api}", f"{{wait: {duration}}}"))

    assert [
        f"s.yaml:6:16: steps[0].wait: {duration!r} is not a duration; allowed: a number with "
        "a unit, such as 250ms, 2s, 1.5m or 1h"
    ] == found


def test_validate_dir_goes_on_past_a_bad_file_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a-crash.yaml").write_text(HEADER + "steady_state: .nan\n")
    (tmp_path / "b-control.yaml").write_text(HEADER + "name: \x00\n")
    (tmp_path / "c-good.yaml").write_text(HEADER)

    with deadline(10):
        result = CliRunner().invoke(app, ["validate", str(tmp_path)])

    assert 2 == result.exit_code
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert [
        f"{tmp_path}/a-crash.yaml:7:15: steady_state: expected a list, got nan",
        f"{tmp_path}/a-crash.yaml: 1 problem",
        f"{tmp_path}/b-control.yaml:7:7: control character U+0000 is not allowed; "
        "inside double quotes write \\x00",
        f"{tmp_path}/b-control.yaml: 1 problem",
        f"{tmp_path}/c-good.yaml: ok (1 service, 1 step, 0 checks)",
    ] == result.output.splitlines()


def test_validate_reports_an_internal_error_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the loader must not hide the other files' results either."""
    from test_coordinator.entrypoints import scenario_text

    (tmp_path / "a.yaml").write_text(HEADER)
    (tmp_path / "b.yaml").write_text(HEADER)
    real = scenario_text.load_scenario

    def load(path: Path, **kwargs: object) -> object:
        if path.name == "a.yaml":
            raise RuntimeError("boom\nsecond line")
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scenario_text, "load_scenario", load)

    result = CliRunner().invoke(app, ["validate", str(tmp_path)])

    assert 2 == result.exit_code
    assert [
        f"{tmp_path}/a.yaml:1:1: internal error, please report it: "
        "RuntimeError('boom\\nsecond line')",
        f"{tmp_path}/a.yaml: 1 problem",
        f"{tmp_path}/b.yaml: ok (1 service, 1 step, 0 checks)",
    ] == result.output.splitlines()


def test_a_trailing_line_break_does_not_make_a_name_valid(tmp_path: Path) -> None:
    """``$`` matches before a final newline; names are matched whole."""
    found = problems_in(
        tmp_path,
        HEADER.replace("[{restart: api}]", '[{restart: "api\\n"}]') + 'vars: {"x\\n": 1}\n',
    )

    assert [
        "s.yaml:6:19: steps[0].restart: 'api\\n' is not a service name; allowed: "
        "letters, digits, '_' and '-', starting with a letter",
        "s.yaml:6:19: steps[0].restart: service 'api\\n' is not in the inventory; "
        "did you mean 'api'? allowed (services:): api",
        "s.yaml:7:8: vars.x\\n: 'x\\n' is not a variable name; allowed: letters, digits and '_'",
    ] == found


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("---", "s.yaml:1:4: expected a mapping with version: 1, services: and steps:"),
        ("a: [b", "s.yaml:1:6: not valid YAML or JSON: while parsing a flow sequence "),
    ],
)
def test_the_end_of_a_file_without_a_final_line_break_is_on_its_last_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    [found] = problems_in(tmp_path, content)

    assert found.startswith(expected)


def test_a_regular_expression_nested_too_deep_is_a_problem(tmp_path: Path) -> None:
    nested = "(" * 1000 + ")" * 1000
    [found] = problems_in(
        tmp_path, HEADER + f'checks: [{{log: {{service: api, present: "{nested}"}}}}]\n'
    )

    assert found.startswith("s.yaml:7:")
    assert "checks[0].log.present: not a valid regular expression" in found
