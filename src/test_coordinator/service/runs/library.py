"""The service's scenario library: the scenario files under ``SCENARIO_DIR``, by name.

A scenario's name is its path below the library without the suffix
(``exchange-pause``, ``examples/network-latency``). Names are looked up in the
listing, never joined to a path, so a name cannot reach outside the library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from test_coordinator.scenario.discovery import DiscoveredValues
from test_coordinator.scenario.loader import (
    SCENARIO_SUFFIXES,
    LoadedScenario,
    load_scenario,
    load_scenario_text,
    placeholder_port,
)
from test_coordinator.scenario.problems import Position, ScenarioInvalid, ScenarioProblem
from test_coordinator.service.runs.requests import UnknownScenario

DOCUMENT_LABEL = "request"
"""The file name problems of a scenario sent in a request are reported under."""


@dataclass(frozen=True, slots=True)
class LibraryScenario:
    name: str
    path: Path


class ScenarioLibrary:
    def __init__(self, root: Path) -> None:
        self.root = root

    def scenarios(self) -> list[LibraryScenario]:
        """Every scenario file in the library, by name; none when the folder is missing."""
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.rglob("*")):
            if path.suffix in SCENARIO_SUFFIXES and path.is_file():
                name = path.relative_to(self.root).with_suffix("").as_posix()
                found.append(LibraryScenario(name, path))
        return found

    def find(self, name: str) -> LibraryScenario:
        for scenario in self.scenarios():
            if scenario.name == name:
                return scenario
        raise UnknownScenario(f"no scenario named {name!r} in the library ({self.root})")

    def source(self, *, name: str | None, document: str | None) -> Path | str:
        """The named scenario's file, or the document's text."""
        if name is not None:
            return self.find(name).path
        assert document is not None
        return document

    def problems(
        self, *, name: str | None = None, document: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> list[ScenarioProblem]:  # fmt: skip
        """Every problem of the named scenario or of ``document`` with ``overrides`` (a
        variable it does not declare is one); empty when it is valid."""
        overrides = overrides or {}
        try:
            loaded = self.load(name=name, document=document, overrides=overrides)
        except ScenarioInvalid as exc:
            return list(exc.problems)
        return undeclared_variables(name or DOCUMENT_LABEL, overrides, loaded)

    def load(
        self,
        *,
        name: str | None = None,
        document: str | None = None,
        overrides: Mapping[str, str],
        run_id: str = "validate",
        reports_dir: Path = Path("reports"),
        allocate_port: Callable[[], int] = placeholder_port,
        discovered: DiscoveredValues | None = None,
    ) -> LoadedScenario:
        """The scenario loaded for one run (or for validation); ScenarioInvalid if it is not.

        ``discovered``: the registry's records of its ``discover:`` services (placeholders
        without them, for validation)."""
        if name is not None:
            return load_scenario(
                self.find(name).path,
                overrides=overrides,
                allocate_port=allocate_port,
                run_id=run_id,
                reports_dir=reports_dir,
                discovered=discovered,
            )
        assert document is not None
        return load_scenario_text(
            document,
            label=DOCUMENT_LABEL,
            scenario_dir=self.root,
            overrides=overrides,
            allocate_port=allocate_port,
            run_id=run_id,
            reports_dir=reports_dir,
            discovered=discovered,
        )


def undeclared_variables(
    label: str, overrides: Mapping[str, str], loaded: LoadedScenario
) -> list[ScenarioProblem]:
    """A problem for each of ``overrides`` that ``loaded`` does not declare."""
    declared = ", ".join(sorted(loaded.declared_vars)) or "none"
    return [
        ScenarioProblem(
            label,
            Position(1, 1),
            f"vars.{name}",
            f"the scenario declares no variable {name!r}; it declares: {declared}",
        )
        for name in sorted(set(overrides) - loaded.declared_vars)
    ]
