"""``test-coordinator demo``: the flagship scenario against the sample trading ecosystem.

The scenario starts the audit correlator, the exchange simulator (exchange-OKX)
and the trading engine as local processes on free ports, restarts the exchange
while the engine trades, and checks through the audit correlator that the engine
observed the fault, recovered quickly and lost no order. Everything it started
is stopped before the command returns.

The scenario file is ``scenarios/exchange-restart-during-trading.yaml``: read
from the source tree when the package runs from one, else from the copy an
installed wheel keeps under ``<prefix>/share/test-coordinator/scenarios/``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import test_coordinator
from test_coordinator.engine.results import RunResult
from test_coordinator.entrypoints.scenario_session import (
    EXIT_USAGE,
    run_files_with_results,
)
from test_coordinator.reporting.terminal import terminal_for_stdout

DEMO_SCENARIO = "exchange-restart-during-trading.yaml"
SHARED_SCENARIOS = Path("share") / "test-coordinator" / "scenarios"
HTML_REPORT = "report.html"


def scenario_locations() -> list[Path]:
    """Where the demo scenario may be, in the order they are tried."""
    source_tree = Path(test_coordinator.__file__).resolve().parents[2] / "scenarios"
    prefixes = dict.fromkeys([Path(sys.prefix), Path(sys.base_prefix)])
    return [source_tree / DEMO_SCENARIO] + [p / SHARED_SCENARIOS / DEMO_SCENARIO for p in prefixes]


def demo_scenario() -> Path | None:
    return next((path for path in scenario_locations() if path.is_file()), None)


async def run_demo(overrides: Mapping[str, str], seed: int | None, reports_dir: Path) -> int:
    """Run the flagship with live progress; print the verdict and the HTML report's path."""
    terminal = terminal_for_stdout()
    scenario = demo_scenario()
    if scenario is None:
        terminal.line(
            "demo: the scenario is missing; looked in: "
            + ", ".join(str(p) for p in scenario_locations()),
            "red",
        )
        return EXIT_USAGE
    terminal.line(
        "demo: the sample trading ecosystem (audit-correlator, exchange-OKX, "
        "trading-system-engine) as local processes; the exchange restarts mid-trading.",
    )
    terminal.line(f"demo: {scenario}")
    code, results = await run_files_with_results([scenario], overrides, seed, reports_dir)
    for result in results:
        terminal.line(_verdict(result))
        html = result.run_dir / HTML_REPORT
        if html.is_file():
            terminal.line(f"demo: HTML report: {html}")
    return code


def _verdict(result: RunResult) -> str:
    verdict = "PASSED" if result.exit_code == 0 else result.outcome.value.upper()
    line = f"demo: {verdict} in {result.duration_ms / 1000:.1f} s"
    return f"{line}: {result.reason}" if result.reason else line
