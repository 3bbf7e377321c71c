"""Load a scenario file: parse, substitute variables, validate, and check cross-references.

Every problem in the file is collected and raised at once as
:class:`ScenarioInvalid`, each with its file, line and column.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from test_coordinator.scenario.diagnostics import problems_from
from test_coordinator.scenario.discovery import DiscoveredValues, discovery_values
from test_coordinator.scenario.model import Scenario
from test_coordinator.scenario.problems import Position, ScenarioInvalid, ScenarioProblem, shown
from test_coordinator.scenario.semantics import semantic_problems, unknown_service_references
from test_coordinator.scenario.source import (
    MAX_FILE_BYTES,
    SourceTree,
    parse_source,
    position_at,
    too_large,
)
from test_coordinator.scenario.types import VAR_PATTERN
from test_coordinator.scenario.variables import (
    OverrideError,
    Scalar,
    resolve_values,
    substitute,
    unknown_message,
)

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")
BUILTIN_VARIABLES = ("python", "scenario_dir", "run_id", "run_dir")
DEFAULT_REPORTS_DIR = Path("reports")
_PLACEHOLDER_PORTS = itertools.count(40000)


def placeholder_port() -> int:
    """A stand-in port number for validation and plans, where nothing is allocated."""
    return next(_PLACEHOLDER_PORTS) % 20000 + 40000


@dataclass(frozen=True, slots=True)
class LoadedScenario:
    """A valid scenario with its variables resolved for one run."""

    path: Path
    model: Scenario
    values: Mapping[str, Any]
    origins: Mapping[str, str]
    ports: Mapping[str, int]
    captures: frozenset[str]
    declared_vars: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        return self.model.name or self.path.stem


def load_scenario(
    path: Path,
    *,
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    allocate_port: Callable[[], int] = placeholder_port,
    run_id: str = "validate",
    reports_dir: Path = DEFAULT_REPORTS_DIR,
    discovered: DiscoveredValues | None = None,
) -> LoadedScenario:
    """Read and validate ``path``; raise ScenarioInvalid listing every problem.

    ``${run_dir}`` is ``reports_dir/run_id`` as an absolute path. ``discovered``: the
    registry's records for its ``discover:`` services (scenario.discovery); without
    it, their addresses are placeholders (fine to validate, not to run).
    """
    file = str(path)
    text = _read(path, file)
    builtins = {
        "python": sys.executable,
        "scenario_dir": str(path.resolve().parent),
        "run_id": run_id,
        "run_dir": str((reports_dir / run_id).absolute()),
    }
    return load_text(
        text,
        path=path,
        overrides=overrides or {},
        environ=os.environ if environ is None else environ,
        allocate_port=allocate_port,
        builtins=builtins,
        discovered=discovered,
    )


def load_scenario_text(
    text: str,
    *,
    label: str,
    scenario_dir: Path,
    overrides: Mapping[str, str] | None = None,
    allocate_port: Callable[[], int] = placeholder_port,
    run_id: str = "validate",
    reports_dir: Path = DEFAULT_REPORTS_DIR,
    discovered: DiscoveredValues | None = None,
) -> LoadedScenario:
    """A scenario sent as text (not read from a file), named ``label`` in its problems.

    Its variables come from its defaults and ``overrides`` only, never from this
    process's environment; ``${scenario_dir}`` is ``scenario_dir``. ``discovered``:
    as for :func:`load_scenario`."""
    builtins = {
        "python": sys.executable,
        "scenario_dir": str(scenario_dir.absolute()),
        "run_id": run_id,
        "run_dir": str((reports_dir / run_id).absolute()),
    }
    return load_text(
        text,
        path=Path(label),
        overrides=overrides or {},
        environ={},
        allocate_port=allocate_port,
        builtins=builtins,
        discovered=discovered,
    )


def _read(path: Path, file: str) -> str:
    """The file's text; at most MAX_FILE_BYTES are read, so /dev/zero cannot fill memory."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioInvalid(
            [ScenarioProblem(file, Position(1, 1), "", f"cannot read: {exc.strerror or exc}")]
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioInvalid([too_large(file)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        raise ScenarioInvalid(
            [
                ScenarioProblem(
                    file,
                    position_at(before, len(before)),
                    "",
                    f"cannot read: not UTF-8 text (byte 0x{data[exc.start]:02x})",
                )
            ]
        ) from None


def load_text(
    text: str,
    *,
    path: Path,
    overrides: Mapping[str, str],
    environ: Mapping[str, str],
    allocate_port: Callable[[], int],
    builtins: Mapping[str, str],
    discovered: DiscoveredValues | None = None,
) -> LoadedScenario:
    tree = parse_source(text, str(path))
    if not isinstance(tree.data, dict):
        raise ScenarioInvalid(
            [tree.problem((), "expected a mapping with version: 1, services: and steps:")]
        )
    problems: list[ScenarioProblem] = []
    declared = _declared_vars(tree, problems)
    port_names = _port_names(tree)
    captures = _captures(tree.data.get("steps"))
    try:
        values, origins = resolve_values(declared, overrides, environ)
    except OverrideError as exc:
        problems.append(tree.problem(("vars",), str(exc)))
        values, origins = dict(declared), {name: "default" for name in declared}
    ports = {name: allocate_port() for name in port_names}
    for name in port_names:
        if name in values:
            problems.append(tree.problem(("ports",), f"'{name}' is both a port and a variable"))
    for name in sorted(captures & (set(values) | set(ports) | set(builtins))):
        problems.append(tree.problem(("steps",), f"capture '{name}' hides a variable of that name"))
    found, found_origins = discovery_values(tree, discovered, placeholder_port, problems)
    known: dict[str, Any] = {**builtins, **values, **ports, **found}
    origins = {**origins, **{name: "port" for name in ports}, **found_origins}
    _substitute_tree(tree, known, captures, problems)

    model: Scenario | None = None
    try:
        model = Scenario.model_validate(tree.data)
    except ValidationError as exc:
        reported = {(p.position, p.path) for p in problems}
        problems.extend(
            p for p in problems_from(exc, tree, Scenario) if (p.position, p.path) not in reported
        )
        problems.extend(unknown_service_references(tree))
    if model is not None:
        problems.extend(semantic_problems(model, tree, captures))
    if problems or model is None:
        raise ScenarioInvalid(problems)
    return LoadedScenario(
        path=path,
        model=model,
        values=known,
        origins=origins,
        ports=ports,
        captures=captures,
        declared_vars=frozenset(declared),
    )


def _declared_vars(tree: SourceTree, problems: list[ScenarioProblem]) -> dict[str, Scalar]:
    raw = tree.data.get("vars")
    if not isinstance(raw, dict):
        return {}  # the model reports a wrong type
    declared: dict[str, Scalar] = {}
    for name, value in raw.items():
        if isinstance(value, str | int | float | bool) and re.fullmatch(VAR_PATTERN, name):
            declared[name] = value
        elif isinstance(value, str | int | float | bool):
            problems.append(
                tree.problem(
                    ("vars", name),
                    f"{shown(name)} is not a variable name; allowed: letters, digits and '_'",
                    at_key=True,
                )
            )
    return declared


def _port_names(tree: SourceTree) -> list[str]:
    raw = tree.data.get("ports")
    if not isinstance(raw, list):
        return []
    return [name for name in raw if isinstance(name, str)]


def _captures(steps: Any) -> frozenset[str]:
    found: set[str] = set()
    if isinstance(steps, list):
        for step in steps:
            if isinstance(step, dict):
                capture = step.get("capture")
                if isinstance(capture, str):
                    found.add(capture)
                found |= _captures(step.get("parallel"))
    return frozenset(found)


def _substitute_tree(
    tree: SourceTree,
    known: Mapping[str, Any],
    captures: frozenset[str],
    problems: list[ScenarioProblem],
) -> None:
    names = sorted({*known, *captures})

    def visit(node: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(node, str):

            def unknown(name: str) -> None:
                problems.append(tree.problem(path, unknown_message(name, names)))

            return substitute(node, known, deferred=captures, on_unknown=unknown)
        if isinstance(node, dict):
            for key, value in node.items():
                if path == () and key in ("vars", "ports"):
                    continue
                node[key] = visit(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                node[index] = visit(value, (*path, index))
        return node

    visit(tree.data, ())


def scenario_files(paths: list[Path]) -> list[Path]:
    """The scenario files named, directories expanded (sorted, not recursive)."""
    files: list[Path] = []
    for path in paths:
        try:
            if path.is_dir():
                files.extend(
                    sorted(
                        p for p in path.iterdir() if p.suffix in SCENARIO_SUFFIXES and p.is_file()
                    )
                )
                continue
        except OSError:  # a name too long, a folder that cannot be read: loading says why
            pass
        files.append(path)
    return files
