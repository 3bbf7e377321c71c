"""Dotted paths into decoded JSON: ``a.b[0].c``, ``$.items[-1]``, ``headers["x.y"]``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(
    r"""(?P<dot>\.)?(?P<name>[^.\[\]"']+)"""
    r"""|\[(?P<index>-?\d+)\]"""
    r"""|\[(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\]"""
)

PathPart = str | int


class JsonPathError(LookupError):
    """The path is malformed, or the value has nothing at it."""


@lru_cache(maxsize=1024)
def parse_json_path(path: str) -> tuple[PathPart, ...]:
    """The keys (str) and list indexes (int) of ``path``; ``""`` or ``$`` is the whole value."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    parts: list[PathPart] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or (match["name"] is not None and pos > 0 and match["dot"] is None):
            raise JsonPathError(f"malformed JSON path {path!r} at character {pos + 1}")
        if match["name"] is not None:
            parts.append(match["name"])
        elif match["index"] is not None:
            parts.append(int(match["index"]))
        else:
            parts.append(match["dq"] if match["dq"] is not None else match["sq"])
        pos = match.end()
    return tuple(parts)


def json_path(value: Any, path: str) -> Any:
    """The part of ``value`` at ``path``, or JsonPathError naming where the walk stopped.

    Keys index mappings; integers (``[0]``, ``[-1]``, or a bare ``.0``) index lists.
    """
    current = value
    walked = "$"
    for part in parse_json_path(path):
        if isinstance(current, Mapping):
            key = str(part)
            if key not in current:
                raise JsonPathError(f"{path}: no key {key!r} at {walked}")
            current = current[key]
            walked = f"{walked}.{key}"
        elif isinstance(current, Sequence) and not isinstance(current, str | bytes):
            index = _as_index(part)
            if index is None:
                raise JsonPathError(f"{path}: {walked} is a list, not an object with {part!r}")
            if not -len(current) <= index < len(current):
                raise JsonPathError(
                    f"{path}: index {index} out of range at {walked} (length {len(current)})"
                )
            current = current[index]
            walked = f"{walked}[{index}]"
        else:
            raise JsonPathError(
                f"{path}: {walked} is {type(current).__name__} {_clipped(current)}, nothing inside"
            )
    return current


SHOWN_CHARS = 80
"""A value shown in a message is cut to this many characters (an HTML page in full would
bury the message)."""


def _clipped(value: Any) -> str:
    shown = repr(value)
    if len(shown) <= SHOWN_CHARS:
        return shown
    return f"{shown[:SHOWN_CHARS]}... ({len(shown)} characters)"


def _as_index(part: PathPart) -> int | None:
    if isinstance(part, int):
        return part
    if part.lstrip("-").isdigit():
        return int(part)
    return None


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)
