"""Scenario models are built on first use, except in a process that asks for all at once
(``serve``, which validates from several threads)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
from test_coordinator.scenario.loader import load_scenario_text
from test_coordinator.scenario.types import Strict, build_every_model

def models():
    pending, found = [Strict], []
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not Strict:
            found.append(cls)
    return found

before = sum(1 for cls in models() if cls.__pydantic_complete__)
build_every_model()
after = [cls.__name__ for cls in models() if not cls.__pydantic_complete__]
print(before, len(models()), after)
"""


def test_models_wait_for_first_use_unless_all_are_built_at_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    before, total, incomplete = done.stdout.split(" ", 2)

    assert 0 == int(before), "a model was built at import"
    assert int(total) > 50
    assert "[]" == incomplete.strip()
