"""validate and plan: text only, no Rich, no storage, no Typer, so they start fast."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from test_coordinator.entrypoints.echo import echo
from test_coordinator.scenario.loader import load_scenario, scenario_files
from test_coordinator.scenario.problems import ScenarioInvalid, escape

EXIT_OK = 0
EXIT_INVALID = 2


def validate_files(paths: list[Path], overrides: Mapping[str, str]) -> int:
    files = scenario_files(paths)
    if not files:
        echo("no scenario files found (*.yaml, *.yml, *.json)", err=True)
        return EXIT_INVALID
    invalid = 0
    declared: set[str] = set()
    for file in files:
        shown = escape(str(file))
        try:
            loaded = load_scenario(file, overrides=overrides)
        except ScenarioInvalid as exc:
            invalid += 1
            for problem in exc.problems:
                echo(str(problem))
            echo(f"{shown}: {_count(len(exc.problems), 'problem')}")
            continue
        except Exception as exc:  # a bug, not the file's fault: say so and check the next file
            invalid += 1
            echo(f"{shown}:1:1: internal error, please report it: {escape(repr(exc))}")
            echo(f"{shown}: 1 problem")
            continue
        declared |= loaded.declared_vars
        model = loaded.model
        counts = (
            _count(len(model.services), "service"),
            _count(len(model.steps), "step"),
            _count(len(model.checks), "check"),
        )
        echo(f"{shown}: ok ({', '.join(counts)})")
    if not unknown_overrides_ok(overrides, declared, all_valid=invalid == 0):
        return EXIT_INVALID
    return EXIT_INVALID if invalid else EXIT_OK


def unknown_overrides_ok(
    overrides: Mapping[str, str], declared: set[str], *, all_valid: bool
) -> bool:
    """Every --var must name a variable some scenario declares; print those that don't."""
    import difflib

    if not all_valid:
        return True
    unknown = sorted(set(overrides) - declared)
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(declared), n=1)
        hint = f"; did you mean '{close[0]}'? " if close else "; "
        allowed = ", ".join(sorted(declared)) or "none declared"
        echo(f"--var {name}: no scenario declares it{hint}allowed: {allowed}", err=True)
    return not unknown


def plan_file(path: Path, overrides: Mapping[str, str], seed: int | None) -> int:
    from test_coordinator.scenario.plan import render_plan

    try:
        loaded = load_scenario(path, overrides=overrides)
    except ScenarioInvalid as exc:
        for problem in exc.problems:
            echo(str(problem), err=True)
        return EXIT_INVALID
    if not unknown_overrides_ok(overrides, set(loaded.declared_vars), all_valid=True):
        return EXIT_INVALID
    sys.stdout.write(render_plan(loaded, seed) + "\n")
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
