"""Audit events that did not fit in memory, kept in a local file until they can be sent.

One JSON event per line, oldest first. Taking events (or putting older ones in
front) rewrites the file through a temporary file renamed over it, so a crash
leaves either the old or the new file, never half of one. The file is only
used when the in-memory buffer is full or the reporter closes with events
undelivered, so the rewrites are rare.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class SpillFile:
    """Every method raises OSError when the file cannot be read or written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending = len(self._read())

    def append(self, line: str) -> None:
        """Add one event (a JSON text without newlines) after the others."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as spill:
            spill.write(line + "\n")
        self.pending += 1

    def prepend(self, lines: Sequence[str]) -> None:
        """Put events older than those in the file in front of them."""
        if lines:
            self._write([*lines, *self._read()])

    def take(self, limit: int) -> list[str]:
        """Remove and return up to ``limit`` of the oldest events."""
        if self.pending == 0 or limit <= 0:
            return []
        lines = self._read()
        self._write(lines[limit:])
        return lines[:limit]

    def _read(self) -> list[str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def _write(self, lines: list[str]) -> None:
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_name(self.path.name + ".tmp")
            scratch.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            os.replace(scratch, self.path)
        else:
            self.path.unlink(missing_ok=True)
        self.pending = len(lines)
