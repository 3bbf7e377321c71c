"""The scenario commands: validate, plan, run, demo, schema, recover.

Registered on the root app by :func:`register_scenario_commands`. Module import
costs nothing beyond Typer: each command imports what it needs when it runs, so
``--help`` and ``validate`` answer quickly. A plain ``run`` or ``validate`` does not
come here at all (:mod:`test_coordinator.entrypoints.quick_cli`): keep the two in step.

Exit codes: 0 passed, 1 a check failed or the system deviated (or did not
reach its steady state), 2 an invalid scenario or usage, 3 an infrastructure
error, 130 interrupted (Ctrl-C or SIGTERM; faults undone).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 3

VarOption = Annotated[
    Optional[list[str]],  # noqa: UP045 - Typer needs Optional here
    typer.Option(
        "--var",
        metavar="NAME=VALUE",
        help="Set a scenario variable (repeatable); also TC_VAR_<NAME> in the environment.",
    ),
]
SeedOption = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--seed", help="Seed for random targets; the same seed replays the same run."),
]


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; exit 2 on a pair without ``=``."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            typer.echo(f"--var {pair!r}: expected NAME=VALUE", err=True)
            raise typer.Exit(EXIT_USAGE)
        values[name.strip()] = value
    return values


def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Scenario files or directories.", metavar="PATH")
    ],
    var: VarOption = None,
) -> None:
    """Check scenario files; print every problem with file:line:column. Touches nothing."""
    from test_coordinator.entrypoints.scenario_text import validate_files

    raise typer.Exit(validate_files(files, parse_vars(var)))


def plan(
    file: Annotated[Path, typer.Argument(help="A scenario file.", metavar="FILE")],
    var: VarOption = None,
    seed: SeedOption = None,
) -> None:
    """Print the resolved timeline of a scenario; touches nothing."""
    from test_coordinator.entrypoints.scenario_text import plan_file

    raise typer.Exit(plan_file(file, parse_vars(var), seed))


def run(
    paths: Annotated[
        list[Path], typer.Argument(help="Scenario files or directories.", metavar="PATH")
    ],
    var: VarOption = None,
    seed: SeedOption = None,
    reports_dir: Annotated[
        Path, typer.Option("--reports-dir", help="Where reports/<run-id>/ folders go.")
    ] = Path("reports"),
) -> None:
    """Run scenarios: live progress, a summary table, reports in --reports-dir/<run-id>/."""
    from test_coordinator.entrypoints.quick_cli import run_scenarios

    raise typer.Exit(run_scenarios(paths, parse_vars(var), seed, reports_dir))


def demo(
    var: VarOption = None,
    seed: SeedOption = None,
    reports_dir: Annotated[
        Path, typer.Option("--reports-dir", help="Where reports/<run-id>/ folders go.")
    ] = Path("reports"),
) -> None:
    """Run the flagship scenario on the sample trading ecosystem: an exchange restart mid-trading,
    verified through the audit correlator. Prints the verdict and the HTML report's path."""
    import asyncio

    from test_coordinator.entrypoints.scenario_demo import run_demo

    overrides = parse_vars(var)
    with _no_traceback():
        code = asyncio.run(run_demo(overrides, seed, reports_dir))
    raise typer.Exit(code)


def schema() -> None:
    """Print the JSON Schema of the scenario format (for editor completion)."""
    from test_coordinator.scenario.schema import schema_json

    typer.echo(schema_json())


def recover() -> None:
    """Undo what a killed coordinator left (resume, start, remove), verify it, report the runs.

    Exit 0 when everything was undone and seen restored, 3 when an undo failed.
    """
    import asyncio

    from test_coordinator.entrypoints.recovery_session import recover_command
    from test_coordinator.reporting.terminal import terminal_for_stdout

    with _no_traceback():
        code = asyncio.run(recover_command(terminal_for_stdout()))
    raise typer.Exit(code)


def report(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders (reports/<run-id>) or their journal.json files.", metavar="RUN"
        ),
    ],
) -> None:
    """Render report.html again from a stored journal."""
    from test_coordinator.reporting.html import write_html_report

    code = 0
    for run_path in runs:
        journal = run_path / "journal.json" if run_path.is_dir() else run_path
        try:
            typer.echo(str(write_html_report(journal)))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            typer.echo(f"{journal}: cannot render a report: {reason}", err=True)
            code = EXIT_USAGE
    raise typer.Exit(code)


@contextmanager
def _no_traceback() -> Iterator[None]:
    """An unexpected error is one line and exit code 3 (the traceback goes to the log)."""
    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        import logging

        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        typer.echo(f"test-coordinator: internal error: {exc!r}", err=True)
        raise typer.Exit(EXIT_INFRASTRUCTURE) from None


def register_scenario_commands(app: typer.Typer) -> None:
    """Add validate, plan, run, demo, report, schema and recover to ``app``."""
    for command in (validate, plan, run, demo, report, schema, recover):
        app.command(command.__name__)(command)
