"""Running the ``test-coordinator`` command as a user would, in a scratch directory."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "scenarios" / "examples"
COMMAND_TIMEOUT_S = 120.0


def command() -> list[str]:
    script = Path(sys.executable).parent / "test-coordinator"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from test_coordinator.entrypoints.cli import main; main()"]


@dataclass
class Cli:
    workdir: Path
    env: dict[str, str]

    def run(
        self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command(), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*command(), *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"
