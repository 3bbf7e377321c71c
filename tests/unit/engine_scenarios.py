"""Building loaded scenarios from YAML text for engine tests."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

from test_coordinator.scenario.loader import LoadedScenario, load_text, placeholder_port

SERVICES = """
services:
  api:
    process: {command: fake-api}
    health: {http: {url: "fake://api/health"}}
  db:
    process: {command: fake-db}
    health: {http: {url: "fake://db/health"}}
"""


def scenario(
    body: str, *, overrides: Mapping[str, str] | None = None, services: str = SERVICES
) -> LoadedScenario:
    """A loaded scenario: ``version: 1``, the two fake services, then ``body``."""
    body = textwrap.dedent(body)
    named = any(line.startswith("name:") for line in body.splitlines())
    text = "version: 1\n" + ("" if named else "name: test\n") + textwrap.dedent(services) + body
    return load_text(
        text,
        path=Path("test.yaml"),
        overrides=overrides or {},
        environ={},
        allocate_port=placeholder_port,
        builtins={"python": sys.executable, "scenario_dir": ".", "run_id": "test"},
    )
