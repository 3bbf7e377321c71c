"""One line to stdout or stderr, as ``typer.echo`` writes it, without importing Typer.

``typer.echo`` (Click's ``echo``) writes the line and flushes, and drops ANSI escape
sequences when the stream is not a terminal. That is all it does for a text stream that
can take any character; for anything else (an ASCII stream, which Click re-encodes as
UTF-8, a stream that is not a plain text file, a Jupyter kernel's) this hands the line
to ``typer.echo`` itself, so the output is the same byte for byte.
"""

from __future__ import annotations

import codecs
import re
import sys
from typing import TextIO

# Click's own pattern (click._compat._ansi_re).
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def echo(message: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if not _plain_text(stream):
        import typer

        typer.echo(message, err=err)
        return
    if "\033" in message and not _isatty(stream):
        message = _ANSI.sub("", message)
    stream.write(message + "\n")
    stream.flush()


def _plain_text(stream: TextIO | None) -> bool:
    """A text stream Click would write to as it is (see click._compat.get_text_stdout)."""
    if stream is None or type(stream).__module__.startswith("ipykernel."):
        return False
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str) or getattr(stream, "errors", None) is None:
        return False
    if not hasattr(stream, "buffer"):
        return False
    try:
        return codecs.lookup(encoding).name != "ascii"
    except LookupError:
        return False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except Exception:
        return False
