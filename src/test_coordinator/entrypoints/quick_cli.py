"""``run`` and ``validate`` without Typer, when their arguments are plain.

Typer costs a command about 25 ms before it runs (its import, and a pydantic
TypeAdapter built for each parameter). For the two commands users run most, this
reads the arguments itself, as Typer would, and runs the same code with the same
exit codes (130 on an interrupt, 1 on a closed pipe, as Typer's main does, and 1 on
an output that cannot be written). Their start-up imports run with the garbage
collector paused (:func:`_import_without_gc`).

It takes only what it can read exactly as Typer does: the command, scenario paths,
and ``--var NAME=VALUE``, ``--seed N`` and ``--reports-dir DIR`` (also written
``--option=value``). Anything else (``--help``, ``--``, an unknown option, a value
starting with ``-``, a malformed ``--var`` or ``--seed``, no paths, a path Typer would
refuse as unreadable, a shell-completion request) returns None, and the caller hands
the arguments to Typer, which answers or reports the usage error as it always has.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from test_coordinator.entrypoints.echo import echo
from test_coordinator.runtime.stdout_loss import give_up_on, is_lost_output

EXIT_INFRASTRUCTURE = 3
EXIT_INTERRUPTED = 130
DEFAULT_REPORTS_DIR = "reports"

_OPTIONS: dict[str, tuple[str, ...]] = {
    "validate": ("--var",),
    "run": ("--var", "--seed", "--reports-dir"),
}
_SEED = re.compile(r"[0-9]{1,18}")
_STARTS_WITH = {
    "validate": ("test_coordinator.entrypoints.scenario_text",),
    "run": ("asyncio", "test_coordinator.entrypoints.scenario_session"),
}


class QuickArgs:
    """A plain ``run`` or ``validate``, with its arguments as Typer would pass them."""

    __slots__ = ("command", "overrides", "paths", "reports_dir", "seed")

    def __init__(
        self,
        command: str,
        paths: list[Path],
        overrides: dict[str, str],
        seed: int | None,
        reports_dir: Path,
    ) -> None:
        self.command = command
        self.paths = paths
        self.overrides = overrides
        self.seed = seed
        self.reports_dir = reports_dir


def parse(argv: Sequence[str]) -> QuickArgs | None:
    """``argv`` (without the program name) as a plain run or validate; None for Typer."""
    if not argv or argv[0] not in _OPTIONS or _completion_requested():
        return None
    command, allowed = argv[0], _OPTIONS[argv[0]]
    values: dict[str, list[str]] = {}
    paths: list[str] = []
    rest = list(argv[1:])
    while rest:
        token = rest.pop(0)
        if token.startswith("-"):
            name, eq, value = token.partition("=")
            if name not in allowed:
                return None
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            if not value or value.startswith("-") or "\0" in value:
                return None
            values.setdefault(name, []).append(value)
        elif not token or "\0" in token:
            return None
        else:
            paths.append(token)
    if not paths:
        return None
    overrides: dict[str, str] = {}
    for pair in values.get("--var", []):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            return None  # Typer's command says what is wrong with it
        overrides[name.strip()] = value
    seed: int | None = None
    if "--seed" in values:
        written = values["--seed"][-1]  # the last one counts, as with Click
        if not _SEED.fullmatch(written):
            return None
        seed = int(written)
    reports_dir = values.get("--reports-dir", [DEFAULT_REPORTS_DIR])[-1]
    if not all(_readable_or_absent(path) for path in (*paths, reports_dir)):
        return None
    return QuickArgs(command, [Path(p) for p in paths], overrides, seed, Path(reports_dir))


def quick_main(argv: Sequence[str]) -> int | None:
    """Run a plain ``run`` or ``validate`` and return its exit code; None: not plain."""
    args = parse(argv)
    if args is None:
        return None
    try:
        _import_without_gc(args.command)
        if args.command == "validate":
            from test_coordinator.entrypoints.scenario_text import validate_files

            return validate_files(args.paths, args.overrides)
        return run_scenarios(args.paths, args.overrides, args.seed, args.reports_dir)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as exc:
        if not is_lost_output(exc):
            raise
        give_up_on(sys.stdout, exc)
        return 1


def run_scenarios(
    paths: list[Path], overrides: Mapping[str, str], seed: int | None, reports_dir: Path
) -> int:
    """The ``run`` command: its exit code; an unexpected error is one line and exit code 3
    (the traceback goes to the log)."""
    import asyncio

    from test_coordinator.entrypoints.scenario_session import run_files

    try:
        return asyncio.run(run_files(paths, overrides, seed, reports_dir))
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        import logging

        logging.getLogger("test_coordinator.entrypoints.scenario_cli").debug(
            "unexpected error", exc_info=True
        )
        echo(f"test-coordinator: internal error: {exc!r}", err=True)
        return EXIT_INFRASTRUCTURE


def _import_without_gc(command: str) -> None:
    """Import what the command starts with, the cyclic garbage collector paused.

    Imports create tens of thousands of objects (modules, classes, pydantic's schemas)
    that live until the process exits, and the collector would walk them again and
    again while they are made: about a tenth of a run's start-up. Once they are made,
    they are frozen (``gc.freeze``: later collections skip them) and collection goes
    on as usual for everything the command itself creates.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for module in _STARTS_WITH[command]:
            importlib.import_module(module)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _completion_requested() -> bool:
    """Click answers shell completion when ``_<PROG>_COMPLETE`` is set: Typer's job."""
    return any(key.startswith("_") and key.endswith("_COMPLETE") for key in os.environ)


def _readable_or_absent(path: str) -> bool:
    """Typer refuses a path argument that exists but cannot be read."""
    try:
        os.stat(path)
    except OSError:
        return True
    except ValueError:
        return False
    return os.access(path, os.R_OK)
