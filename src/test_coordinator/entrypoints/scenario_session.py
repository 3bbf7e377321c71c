"""run and recover: settings, storage, leftovers from a killed coordinator, then the runs.

Signals: SIGINT (Ctrl-C) and SIGTERM interrupt the run in progress, which undoes
its faults and stops its services before the command exits with 130; a second
signal while undoing is ignored with a note (undo is bounded in time).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from test_coordinator.engine.executor import (
    RunControl,
    RunOptions,
    new_run_id,
    new_seed,
    run_scenario,
)
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import Outcome, RunResult
from test_coordinator.ports.storage import RunStore
from test_coordinator.reporting.terminal import Terminal, terminal_for_stdout
from test_coordinator.scenario.audit import AUDIT_URL_ENV
from test_coordinator.scenario.discovery import DiscoveredValues, DiscoveryFailed
from test_coordinator.scenario.loader import LoadedScenario, load_scenario, scenario_files
from test_coordinator.scenario.problems import ScenarioInvalid

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 3
EXIT_INTERRUPTED = 130
COMBINED_JUNIT = "junit.xml"


class StoreUnavailable(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class RunsStopped(Exception):
    """A scenario could not be run (its ``discover:`` services could not be resolved):
    no further run starts; ``results`` are the runs before it."""

    def __init__(self, code: int, results: list[RunResult]) -> None:
        super().__init__(f"runs stopped (exit {code})")
        self.code = code
        self.results = results


@contextlib.asynccontextmanager
async def open_store() -> AsyncIterator[RunStore]:
    """The configured RunStore for the block's duration.

    PostgreSQL when POSTGRES_URL is set; otherwise the SQLite file under DATA_DIR,
    opened without SQLAlchemy (a CLI run stays light).
    """
    from test_coordinator.config import SettingsError, load_settings

    try:
        settings = load_settings(log_level=os.environ.get("LOG_LEVEL", "WARNING"))
    except SettingsError as exc:
        raise StoreUnavailable(f"invalid configuration: {exc}", EXIT_USAGE) from None
    from test_coordinator.infrastructure.logging import configure_logging

    configure_logging(settings)
    if not settings.postgres_url:
        from test_coordinator.adapters.storage.sqlite_file import open_sqlite_file

        try:
            store = await open_sqlite_file(settings.instance_data_dir)
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the run store: {exc}", EXIT_INFRASTRUCTURE
            ) from None
        try:
            yield store
        finally:
            store.close()
        return

    from test_coordinator.adapters.storage import DataAdapter

    try:
        adapter = DataAdapter.from_settings(settings)
        await adapter.start()
    except Exception as exc:
        raise StoreUnavailable(f"cannot open the run store: {exc}", EXIT_INFRASTRUCTURE) from None
    try:
        yield adapter.runs
    finally:
        await adapter.close()


def _load_all(
    paths: list[Path], overrides: Mapping[str, str], terminal: Terminal
) -> list[LoadedScenario] | None:
    from test_coordinator.entrypoints.scenario_text import unknown_overrides_ok

    files = scenario_files(paths)
    if not files:
        terminal.line("no scenario files found (*.yaml, *.yml, *.json)")
        return None
    loaded, invalid = [], False
    for file in files:
        try:
            loaded.append(load_scenario(file, overrides=overrides))
        except ScenarioInvalid as exc:
            invalid = True
            for problem in exc.problems:
                terminal.line(str(problem))
    if invalid:
        return None
    declared = {name for item in loaded for name in item.declared_vars}
    if not unknown_overrides_ok(overrides, declared, all_valid=True):
        return None
    return loaded


def exit_code(results: list[RunResult]) -> int:
    outcomes = {result.outcome for result in results}
    if Outcome.INTERRUPTED in outcomes:
        return EXIT_INTERRUPTED
    if Outcome.ERROR in outcomes:
        return EXIT_INFRASTRUCTURE
    if any(result.exit_code for result in results):
        return EXIT_FAILED
    return EXIT_OK


async def run_files(
    paths: list[Path], overrides: Mapping[str, str], seed: int | None, reports_dir: Path
) -> int:
    code, _ = await run_files_with_results(paths, overrides, seed, reports_dir)
    return code


async def run_files_with_results(
    paths: list[Path],
    overrides: Mapping[str, str],
    seed: int | None,
    reports_dir: Path,
    terminal: Terminal | None = None,
) -> tuple[int, list[RunResult]]:
    """Validate every file, then run each; the exit code and the results of the runs."""
    terminal = terminal or terminal_for_stdout()
    validated = _load_all(paths, overrides, terminal)
    if validated is None:
        return EXIT_USAGE, []
    problem = _unusable_reports_dir(reports_dir)
    if problem is not None:
        terminal.line(f"test-coordinator: --reports-dir {reports_dir}: {problem}", "red")
        return EXIT_USAGE, []
    from test_coordinator.engine.wiring import runtime_deps
    from test_coordinator.entrypoints.recovery_session import print_recovery, recover_and_report

    stopped: int | None = None
    try:
        async with open_store() as store, runtime_deps(store) as deps:
            report = await recover_and_report(store, deps)
            print_recovery(terminal, report, quiet_if_empty=True)
            results = await _run_all(validated, overrides, seed, reports_dir, deps, terminal)
    except StoreUnavailable as exc:
        terminal.line(f"test-coordinator: {exc}", "red")
        return exc.code, []
    except RunsStopped as exc:
        results, stopped = exc.results, exc.code
    if results:
        from test_coordinator.reporting.junit import write_junit

        combined = write_junit(results, reports_dir / COMBINED_JUNIT)
        if len(results) > 1:
            terminal.line(f"{len(results)} scenarios; combined JUnit report: {combined}")
    code = exit_code(results)
    if stopped is not None and code not in (EXIT_INTERRUPTED, EXIT_INFRASTRUCTURE):
        code = stopped
    return code, results


def _unusable_reports_dir(reports_dir: Path) -> str | None:
    """Why reports cannot be written there (checked before anything is run), or None."""
    from test_coordinator.runtime.os_errors import os_error_reason

    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "is not a directory"
    except OSError as exc:
        return f"cannot be created: {os_error_reason(exc)}"
    if not os.access(reports_dir, os.W_OK | os.X_OK):
        return "is not writable"
    return None


async def _run_all(
    validated: list[LoadedScenario],
    overrides: Mapping[str, str],
    seed: int | None,
    reports_dir: Path,
    deps: EngineDeps,
    terminal: Terminal,
) -> list[RunResult]:
    from test_coordinator.reporting import write_run_reports
    from test_coordinator.reporting.terminal import Progress, print_summary
    from test_coordinator.runtime.ports_alloc import free_port

    results: list[RunResult] = []
    current: list[RunControl] = []
    stop_requested: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        stop_requested.append(name)
        if current and not current[0].interrupt(name):
            terminal.line(f"{name}: still undoing faults and stopping services; please wait")

    def on_suspend() -> None:
        terminal.line(
            "SIGTSTP: a run is not suspended, since its faults would stay in place; "
            "Ctrl-C stops it and undoes them"
        )

    installed = []
    for sig, handler, args in (
        (signal.SIGINT, on_signal, (signal.SIGINT.name,)),
        (signal.SIGTERM, on_signal, (signal.SIGTERM.name,)),
        # The terminal closed: the run is interrupted and undone by the coordinator itself
        # (its output, gone with the terminal, is dropped).
        (signal.SIGHUP, on_signal, (signal.SIGHUP.name,)),
        (signal.SIGTSTP, on_suspend, ()),
    ):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler, *args)
            installed.append(sig)
    try:
        for item in validated:
            if stop_requested:
                break
            run_id = new_run_id()
            try:
                discovered = await _discover(item)
            except DiscoveryFailed as exc:
                _print_unresolved(terminal, item, exc)
                raise RunsStopped(
                    EXIT_INFRASTRUCTURE if exc.unavailable else EXIT_USAGE, results
                ) from None
            loaded = load_scenario(
                item.path,
                overrides=overrides,
                allocate_port=free_port,
                run_id=run_id,
                reports_dir=reports_dir,
                discovered=discovered,
            )
            control = RunControl()
            current[:] = [control]
            options = RunOptions(
                run_id=run_id,
                seed=seed if seed is not None else new_seed(),
                reports_dir=reports_dir,
                audit_url=os.environ.get(AUDIT_URL_ENV) or None,
            )
            with Progress(terminal, loaded.name) as progress:
                result = await run_scenario(
                    loaded, deps, options, control=control, listeners=(progress,)
                )
            current.clear()
            report_paths = write_run_reports(result)
            print_summary(terminal, result, report_paths)
            results.append(result)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return results


async def _discover(item: LoadedScenario) -> DiscoveredValues | None:
    """The registry's records for the scenario's ``discover:`` services (REDIS_URL), asked
    afresh for each run; None when it has none (Redis is then never imported)."""
    if not any(service.discovered for service in item.model.services.values()):
        return None
    from test_coordinator.adapters.registry.discovery import discover_for
    from test_coordinator.config import load_settings

    # open_store() has loaded the same settings already, so they are valid here.
    settings = load_settings(log_level=os.environ.get("LOG_LEVEL", "WARNING"))
    return await discover_for(item.path, settings)


def _print_unresolved(terminal: Terminal, item: LoadedScenario, failed: DiscoveryFailed) -> None:
    what = (
        "the service registry does not answer"
        if failed.unavailable
        else "a service it discovers (discover:) cannot be resolved"
    )
    terminal.line(f"test-coordinator: cannot run {item.name}: {what}", "red")
    for problem in failed.problems:
        terminal.line(str(problem))
