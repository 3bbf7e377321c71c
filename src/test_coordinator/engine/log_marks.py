"""Where each service's log stood when a step started, for log checks with ``after:``.

A ``log`` check with ``after: <step>`` judges only what the service wrote after that
step started. Just before such a step starts, the engine records the size in bytes of
each of the service's log files (its ``log:`` file, or the stdout and stderr files the
backend writes; a container's are first copied from the engine, so they are current);
the check reads each file from that offset. A byte offset is exact and costs one
``stat`` per file, and only the steps an ``after:`` names are marked.

A line the service was in the middle of writing when the step started began before
it, so it does not count. A file found smaller than its mark was replaced or
truncated since: all of it is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from test_coordinator.scenario.checks import CheckBase, LogCheck

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext

LOG_READ_LIMIT_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LogMark:
    """The size of each log file (by path) when a step started, or why it is unknown."""

    offsets: Mapping[str, int] = field(default_factory=dict)
    problem: str = ""


def marks_wanted(checks: Iterable[CheckBase]) -> dict[str, tuple[str, ...]]:
    """The services whose logs to mark, by the name of the step to mark them at."""
    wanted: dict[str, list[str]] = {}
    for check in checks:
        if isinstance(check, LogCheck) and check.log.after is not None:
            services = wanted.setdefault(check.log.after, [])
            if check.log.service not in services:
                services.append(check.log.service)
    return {step: tuple(services) for step, services in wanted.items()}


async def current_log_paths(ctx: RunContext, service: str) -> list[Path]:
    """The service's log files, brought up to date (a container's are copied first)."""
    configured = ctx.loaded.model.services[service].log
    if configured:
        return [Path(configured)]
    await ctx.targets.sync_logs(service)
    return ctx.targets.log_paths(service)


async def mark_logs(ctx: RunContext, step_id: str, step_name: str, services: Iterable[str]) -> None:
    """Record where each of ``services``' logs stands, before step ``step_name`` starts."""
    for service in services:
        try:
            paths = await current_log_paths(ctx, service)
            offsets = file_sizes(paths)
        except Exception as exc:
            problem = str(exc) or type(exc).__name__
            ctx.log_marks[(step_name, service)] = LogMark(problem=problem)
            ctx.journal.record("log.mark_failed", step=step_id, service=service, detail=problem)
            continue
        ctx.log_marks[(step_name, service)] = LogMark(offsets)
        ctx.journal.record("log.marked", step=step_id, service=service, offsets=dict(offsets))


def file_sizes(paths: Iterable[Path]) -> dict[str, int]:
    """Each file's size in bytes; 0 for one that does not exist yet."""
    sizes = {}
    for path in paths:
        try:
            sizes[str(path)] = path.stat().st_size
        except FileNotFoundError:
            sizes[str(path)] = 0
    return sizes


def read_log(
    path: Path, offset: int = 0, limit: int = LOG_READ_LIMIT_BYTES
) -> tuple[str, int] | None:
    """The text of ``path`` from byte ``offset`` (at most ``limit`` bytes), and the offset
    it starts at; None when there is no such file.

    When ``offset`` falls inside a line, the text starts after that line (it began
    before the offset). An ``offset`` past the file's end means the file was replaced
    or truncated: the text starts at the beginning.
    """
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            start = offset if 0 < offset <= size else 0
            if start > 0:
                file.seek(start - 1)
                if file.read(1) != b"\n":
                    start += len(file.readline())
            file.seek(start)
            data = file.read(limit)
    except FileNotFoundError:
        return None
    return data.decode("utf-8", "replace"), start


def has_text_after(path: Path, offset: int) -> bool:
    """Whether ``path`` holds anything past ``offset`` (anything at all, if it shrank)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    return size > (offset if offset <= size else 0)


def lines_before(path: Path, offset: int) -> int:
    """How many lines of ``path`` end before byte ``offset``."""
    count = 0
    remaining = offset
    with path.open("rb") as file:
        while remaining > 0:
            chunk = file.read(min(_CHUNK_BYTES, remaining))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count
