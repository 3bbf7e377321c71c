"""The ``test-coordinator`` command as a Typer app: every command, its options and help.

:func:`test_coordinator.entrypoints.cli.main` runs it, unless the arguments are a plain
``run`` or ``validate`` (see :mod:`test_coordinator.entrypoints.quick_cli`). Imports
here stay light: ``--help`` must answer in a blink, so each command imports what it
needs when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from test_coordinator import package_version

if TYPE_CHECKING:
    import asyncio

app = typer.Typer(
    name="test-coordinator",
    help="Resilience testing for the Trading Ecosystem: run chaos scenarios, or serve the API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 3


def _version(value: bool) -> None:
    if value:
        typer.echo(package_version())
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Resilience testing for the Trading Ecosystem."""


@app.command()
def serve() -> None:
    """Run the REST (HTTP_PORT) and gRPC (GRPC_PORT) servers until SIGINT or SIGTERM."""
    import asyncio

    from test_coordinator.config import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"test-coordinator: invalid configuration: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None

    from test_coordinator.entrypoints.http.auth import ExposedWithoutToken, check_exposure
    from test_coordinator.infrastructure.logging import configure_logging
    from test_coordinator.service.http_serving import StartupError

    try:
        check_exposure(settings)
    except ExposedWithoutToken as exc:
        typer.echo(f"test-coordinator: refusing to start: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    from test_coordinator.entrypoints.serve import serve as serve_forever

    configure_logging(settings)
    try:
        with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
            runner.run(serve_forever(settings))
    except StartupError as exc:
        typer.echo(f"test-coordinator: cannot start: {exc}", err=True)
        raise typer.Exit(EXIT_INFRASTRUCTURE) from None


# Scenario commands register themselves below.
from test_coordinator.entrypoints.scenario_cli import register_scenario_commands  # noqa: E402

register_scenario_commands(app)


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed: about 7 % more health checks a second."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    return uvloop.new_event_loop
