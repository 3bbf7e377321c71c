"""When standard output cannot be written: a closed pipe, a full disk, a terminal gone.

A closed pipe (``| head``) is the reader's choice and is passed over in silence, as
Click does. Any other failure to write (``> /dev/full``, a disk quota, an I/O error)
is said once, in one line on standard error, never as a traceback. Either way the
stream's file is then pointed at /dev/null, so that nothing written later, nor the
interpreter's last flush at exit, fails again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import IO

LOST_OUTPUT = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
"""The errors of a write to an output that is gone or full."""


def is_lost_output(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in LOST_OUTPUT


def give_up_on(stream: IO[str] | None, exc: OSError, consequence: str = "") -> None:
    """Say why standard output (``stream``) failed, unless its reader closed it, and
    silence it. ``consequence`` is what happens next, for the one line: "the runs go on".
    """
    if exc.errno != errno.EPIPE:
        reason = exc.strerror or str(exc)
        tail = f"; {consequence}" if consequence else ""
        try:
            sys.stderr.write(f"test-coordinator: cannot write to standard output: {reason}{tail}\n")
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
    silence(stream)


def silence(stream: IO[str] | None) -> None:
    """Point ``stream``'s file at /dev/null and drop what its buffer holds."""
    if stream is None:
        return
    try:
        fileno = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # what the buffer held now goes to /dev/null
