"""The ``test-coordinator`` command.

``run`` and ``validate`` with plain arguments (files, ``--var``, ``--seed``,
``--reports-dir``) start without Typer (:mod:`test_coordinator.entrypoints.quick_cli`):
importing it and building its parameters cost them about 25 ms.
Everything else (help, other commands, anything unusual in the arguments, every usage
error) goes to the Typer app, :data:`test_coordinator.entrypoints.cli_app.app`, which
is also importable from here as ``app``.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING

EXIT_INTERRUPTED = 130

if TYPE_CHECKING:
    from test_coordinator.entrypoints.cli_app import app as app


def main() -> None:
    """Console-script entry point.

    An interrupt before a command has taken over its own handling (while the modules
    load) exits with 130, and an output that cannot be written with 1 and one line on
    standard error: never a traceback.
    """
    try:
        code = _main()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except OSError as exc:
        from test_coordinator.runtime.stdout_loss import give_up_on, is_lost_output

        if not is_lost_output(exc):
            raise
        give_up_on(sys.stdout, exc)
        code = 1
    sys.exit(code)


def _main() -> int:
    from test_coordinator.entrypoints.quick_cli import quick_main

    code = quick_main(sys.argv[1:])
    if code is not None:
        # Nothing needs collecting on the way out: freezing what is left spares the
        # interpreter's last collections over what the command made (the start-up's
        # objects are frozen already: quick_cli). Files, the store and child processes
        # are closed or released by then.
        gc.freeze()
        return code
    from test_coordinator.entrypoints.cli_app import app

    app()  # exits itself (SystemExit passes through main)
    return 0


def __getattr__(name: str) -> object:
    if name == "app":  # imported on first use: a quick run or validate never needs Typer
        from test_coordinator.entrypoints.cli_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
