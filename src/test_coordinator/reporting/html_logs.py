"""The services' output around each fault, from the engine's capture files.

The local-process backend appends each service's stdout and stderr to
``logs/{service}.out.log`` and ``logs/{service}.err.log`` in the run's folder.
Lines that carry an ISO 8601 timestamp (structlog's ``TimeStamper``, Python's
``asctime``, JSON ``"timestamp"`` fields) are placed on the run's clock through
the journal's ``started_at``; a line without one (a traceback's continuation)
takes the time of the stamped line before it. Around a fault the report shows
every service's lines from ``WINDOW_BEFORE_MS`` before the injection to
``WINDOW_AFTER_MS`` after the recovery.

A log whose lines carry no timestamp cannot be placed in time (the engine
records no byte offsets at injection), so for the faulted service the report
shows the last ``TAIL_LINES`` lines of the log as it was at the end of the run,
and says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from test_coordinator.reporting.html_view import FaultView

MAX_LOG_BYTES = 1024 * 1024
"""How much of the end of each log file is read."""
WINDOW_BEFORE_MS = 2000.0
WINDOW_AFTER_MS = 2000.0
MAX_EXCERPT_LINES = 60
TAIL_LINES = 20
STREAMS = (("out", "stdout"), ("err", "stderr"))

_STAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)(Z|[+-]\d{2}(?::?\d{2})?)?"
)
_STAMP_SEARCH_CHARS = 120
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class LogLine:
    text: str
    epoch_ms: float | None
    """When the line was written (its own timestamp or the one of the stamped line before)."""
    stamped: bool


@dataclass(frozen=True, slots=True)
class ServiceLog:
    service: str
    stream: str
    file_name: str
    lines: tuple[LogLine, ...]
    skipped_bytes: int = 0
    """Bytes at the start of the file that were not read (it was longer than the limit)."""

    @property
    def timestamped(self) -> bool:
        return any(line.stamped for line in self.lines)


@dataclass(frozen=True, slots=True)
class ExcerptLine:
    text: str
    run_ms: float | None
    inside: bool
    """Written between the injection and the recovery."""


@dataclass(frozen=True, slots=True)
class Excerpt:
    service: str
    stream: str
    file_name: str
    timed: bool
    """True: the lines in the window around the fault; False: the log's tail."""
    lines: tuple[ExcerptLine, ...]
    omitted_before: int = 0
    omitted_after: int = 0


def _clean(text: str) -> str:
    return _CONTROL.sub("\ufffd", _ANSI.sub("", text)).rstrip()


def _stamp_ms(text: str) -> float | None:
    match = _STAMP.search(text[:_STAMP_SEARCH_CHARS])
    if match is None:
        return None
    day, clock, zone = match.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{clock.replace(',', '.')}{zone or ''}")
    except ValueError:
        return None
    # A naive time is the machine's local time: the services ran on this machine.
    return moment.timestamp() * 1000.0


def parse_log(
    service: str, stream: str, file_name: str, text: str, skipped_bytes: int = 0
) -> ServiceLog:
    lines = []
    last: float | None = None
    for raw in text.splitlines():
        line = _clean(raw)
        stamp = _stamp_ms(line)
        if stamp is not None:
            last = stamp
        lines.append(LogLine(line, stamp if stamp is not None else last, stamp is not None))
    return ServiceLog(service, stream, file_name, tuple(lines), skipped_bytes)


def _read_end(path: Path, max_bytes: int) -> tuple[str, int]:
    with path.open("rb") as file:
        size = file.seek(0, 2)
        skipped = max(0, size - max_bytes)
        file.seek(skipped)
        data = file.read(max_bytes)
    if skipped:
        data = data[data.find(b"\n") + 1 :]  # a partial first line
    return data.decode("utf-8", "replace"), skipped


def read_service_logs(log_dir: Path, max_bytes: int = MAX_LOG_BYTES) -> tuple[ServiceLog, ...]:
    """Every ``{service}.out.log`` and ``{service}.err.log`` in ``log_dir`` (none: empty)."""
    logs = []
    for suffix, stream in STREAMS:
        for path in sorted(log_dir.glob(f"*.{suffix}.log")):
            try:
                text, skipped = _read_end(path, max_bytes)
            except OSError:
                continue
            service = path.name.removesuffix(f".{suffix}.log")
            logs.append(parse_log(service, stream, path.name, text, skipped))
    return tuple(sorted(logs, key=lambda log: (log.service, log.stream != "stdout")))


def _window(log: ServiceLog, fault: FaultView, started_epoch_ms: float, max_lines: int) -> Excerpt:
    end = fault.recovered_ms if fault.recovered_ms is not None else fault.injected_ms
    low, high = fault.injected_ms - WINDOW_BEFORE_MS, end + WINDOW_AFTER_MS
    chosen = []
    for line in log.lines:
        if line.epoch_ms is None:
            continue
        at = line.epoch_ms - started_epoch_ms
        if low <= at <= high:
            chosen.append(ExcerptLine(line.text, at, fault.injected_ms <= at <= end))
    before = after = 0
    if len(chosen) > max_lines:
        pivot = next(
            (i for i, line in enumerate(chosen) if (line.run_ms or 0.0) >= fault.injected_ms),
            len(chosen),
        )
        first = max(0, min(pivot - max_lines // 3, len(chosen) - max_lines))
        before, after = first, len(chosen) - first - max_lines
        chosen = chosen[first : first + max_lines]
    return Excerpt(log.service, log.stream, log.file_name, True, tuple(chosen), before, after)


def _tail(log: ServiceLog, tail_lines: int) -> Excerpt:
    kept = log.lines[-tail_lines:]
    lines = tuple(ExcerptLine(line.text, None, False) for line in kept)
    return Excerpt(
        log.service, log.stream, log.file_name, False, lines, len(log.lines) - len(kept), 0
    )


def excerpts_for(
    fault: FaultView,
    logs: Sequence[ServiceLog],
    started_epoch_ms: float | None,
    *,
    max_lines: int = MAX_EXCERPT_LINES,
    tail_lines: int = TAIL_LINES,
) -> tuple[Excerpt, ...]:
    """The faulted service's output first, then every other service's lines in the window."""
    own: list[Excerpt] = []
    others: list[Excerpt] = []
    for log in logs:
        if not log.lines:
            continue
        is_target = log.service == fault.service
        if log.timestamped and started_epoch_ms is not None:
            excerpt = _window(log, fault, started_epoch_ms, max_lines)
            if excerpt.lines or is_target:
                (own if is_target else others).append(excerpt)
        elif is_target:
            own.append(_tail(log, tail_lines))
    return (*own, *others)
