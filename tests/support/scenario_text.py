"""Loading scenario text in unit tests: a header of services, then the body under test."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from test_coordinator.scenario.loader import LoadedScenario, load_text, placeholder_port
from test_coordinator.scenario.problems import ScenarioInvalid


def load_body(header: str, body: str) -> LoadedScenario:
    """``header`` followed by ``body`` (dedented), loaded as file ``s.yaml``."""
    return load_text(
        header + textwrap.dedent(body),
        path=Path("s.yaml"),
        overrides={},
        environ={},
        allocate_port=placeholder_port,
        builtins={"python": sys.executable, "scenario_dir": "/x", "run_id": "r"},
    )


def problems_of(header: str, body: str) -> list[str]:
    """Every problem ``validate`` reports for it, as printed."""
    with pytest.raises(ScenarioInvalid) as caught:
        load_body(header, body)
    return [str(problem) for problem in caught.value.problems]
