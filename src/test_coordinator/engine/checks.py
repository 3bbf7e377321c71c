"""The checks judged after the last step: recovery times, metrics, logs, load, probes, audit."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from test_coordinator.domain.compare import mismatch
from test_coordinator.engine.context import RunContext
from test_coordinator.engine.log_marks import (
    LOG_READ_LIMIT_BYTES,
    current_log_paths,
    has_text_after,
    lines_before,
    read_log,
)
from test_coordinator.engine.results import CheckResult, Recovery, Status
from test_coordinator.scenario.checks import (
    AuditCheck,
    CheckBase,
    LoadCheck,
    LogCheck,
    MetricCheck,
    ProbeCheck,
    RecoveryTimeCheck,
    check_kind,
    describe_check_text,
)
from test_coordinator.scenario.durations import format_duration

CHECK_TIMEOUT_S = 30.0


class CheckFailed(Exception):
    def __init__(self, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.value = value


class NothingToJudge(CheckFailed):
    """The check found nothing to judge: a failure, unless the check has ``allow_empty``."""


describe_check = describe_check_text


async def judge_checks(ctx: RunContext, checks: tuple[CheckBase, ...]) -> list[CheckResult]:
    results = []
    for index, check in enumerate(checks, start=1):
        kind = check_kind(check)
        name = describe_check(check)
        ctx.journal.record("check.started", check=index, name=name, kind=kind)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                detail, value = await _JUDGES[kind](ctx, ctx.resolve(check))
        except NothingToJudge as exc:
            if check.allow_empty:
                detail = f"nothing to judge (allowed): {exc}"
                result = CheckResult(index, name, kind, Status.PASSED, detail, exc.value)
            else:
                detail = f"nothing to judge: {exc} (allow_empty: true accepts that)"
                result = CheckResult(index, name, kind, Status.FAILED, detail, exc.value)
        except CheckFailed as exc:
            result = CheckResult(index, name, kind, Status.FAILED, str(exc), exc.value)
        except TimeoutError:
            result = CheckResult(
                index, name, kind, Status.ERROR, f"no verdict within {CHECK_TIMEOUT_S:g} s"
            )
        except Exception as exc:
            result = CheckResult(index, name, kind, Status.ERROR, str(exc) or repr(exc))
        else:
            result = CheckResult(index, name, kind, Status.PASSED, detail, value)
        ctx.journal.record(
            "check.finished",
            check=index,
            name=name,
            status=result.status.value,
            detail=result.detail,
            value=result.value,
        )
        results.append(result)
    return results


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


async def _recovery_time(ctx: RunContext, check: RecoveryTimeCheck) -> tuple[str, Any]:
    spec = check.recovery_time
    faults = [
        r
        for r in ctx.recoveries.results()
        if (spec.service is None or r.service == spec.service)
        and (spec.step is None or r.step_name == spec.step)
    ]
    subject = spec.service or "any service"
    if not faults:
        raise NothingToJudge(f"no fault on {subject} was injected, so nothing recovered")
    details: list[str] = []
    value: float | None = None
    if spec.max is not None:
        detail, value = _recovered_within(faults, spec.max)
        details.append(detail)
    if spec.max_from_restore is not None:
        restorable = [r for r in faults if r.restore]
        if not restorable:
            raise NothingToJudge(
                f"no fault on {subject} is restored by a resume or a start (a restart restores "
                "itself), so there is no recovery from a restore",
                value,
            )
        detail, worst = _recovered_from_restore_within(restorable, spec.max_from_restore)
        details.append(detail)
        if spec.max is None:
            value = worst
    return "; ".join(details), value


def _recovered_within(faults: list[Recovery], limit_s: float) -> tuple[str, float | None]:
    """Every fault healthy again within ``limit_s`` of its injection; the worst time."""
    limit_ms = limit_s * 1000.0
    worst = max((r.recovery_ms for r in faults if r.recovery_ms is not None), default=None)
    problems = []
    for recovery in faults:
        if recovery.recovery_ms is None:
            problems.append(f"{_fault_name(recovery)}: {recovery.detail or 'never healthy again'}")
        elif recovery.recovery_ms > limit_ms:
            problems.append(
                f"{_fault_name(recovery)}: healthy again after {recovery.recovery_ms:.1f} ms, "
                f"more than the allowed {format_duration(limit_s)}"
            )
    if problems:
        raise CheckFailed("; ".join(problems), worst)
    times = ", ".join(f"{r.service} {r.recovery_ms:.1f} ms" for r in faults)
    return f"recovered: {times} (max {format_duration(limit_s)})", worst


def _recovered_from_restore_within(
    faults: list[Recovery], limit_s: float
) -> tuple[str, float | None]:
    """Every fault healthy again within ``limit_s`` of its restore; the worst time."""
    limit_ms = limit_s * 1000.0
    worst = max(
        (r.recovery_from_restore_ms for r in faults if r.recovery_from_restore_ms is not None),
        default=None,
    )
    problems = []
    for recovery in faults:
        took = recovery.recovery_from_restore_ms
        done = _RESTORED.get(recovery.restore, "restored")
        if recovery.restored_at_ms is None:
            why = f"{recovery.detail}, " if recovery.detail else ""
            problems.append(
                f"{_fault_name(recovery)}: {why}never {done} by a step, "
                "so there is no recovery from a restore"
            )
        elif took is None:
            problems.append(
                f"{_fault_name(recovery)}: {done} at {recovery.restored_at_ms:.1f} ms, then "
                f"{recovery.detail or 'never healthy again'}"
            )
        elif took > limit_ms:
            problems.append(
                f"{_fault_name(recovery)}: healthy again {took:.1f} ms after it was {done}, "
                f"more than the allowed {format_duration(limit_s)}"
            )
    if problems:
        raise CheckFailed("; ".join(problems), worst)
    times = ", ".join(f"{r.service} {r.recovery_from_restore_ms:.1f} ms" for r in faults)
    return (
        f"recovered from the restore: {times} (max_from_restore {format_duration(limit_s)})",
        worst,
    )


_RESTORED = {"resume": "resumed", "start": "started again"}


def _fault_name(recovery: Recovery) -> str:
    return (
        f"{recovery.service} after {recovery.fault} (step {recovery.step_id}, {recovery.step_name})"
    )


async def _metric(ctx: RunContext, check: MetricCheck) -> tuple[str, Any]:
    spec = check.metric
    url = spec.url
    if url is None:
        assert spec.service is not None
        url = ctx.loaded.model.services[spec.service].metrics_url
        assert url is not None
    value = await ctx.deps.read_metric(url, spec.metric, spec.labels)
    labels = (
        "{" + ",".join(f'{k}="{v}"' for k, v in spec.labels.items()) + "}" if spec.labels else ""
    )
    what = f"{spec.metric}{labels}"
    if value is None:
        raise CheckFailed(f"{what} is not exposed at {url}")
    problems = mismatch(value, equals=spec.equals, min=spec.min, max=spec.max)
    if problems:
        raise CheckFailed(f"{what}: " + "; ".join(problems), value)
    return f"{what} is {value:g}", value


async def _log(ctx: RunContext, check: LogCheck) -> tuple[str, Any]:
    spec = check.log
    paths = await current_log_paths(ctx, spec.service)
    offsets: Mapping[str, int] = {}
    since = ""
    if spec.after is not None:
        offsets = _log_offsets(ctx, spec.service, spec.after)
        since = f" after step {spec.after!r} started"
    sources = [(path, offsets.get(str(path), 0)) for path in paths]
    pattern = re.compile(spec.present or spec.absent or "", re.MULTILINE)
    where = ", ".join(str(p) for p in paths)
    if spec.absent is not None and not await asyncio.to_thread(_any_log_text, sources):
        if since:
            raise NothingToJudge(f"nothing was written to {where}{since}")
        raise NothingToJudge(f"no log to read: {where} missing or empty")
    if spec.min_count is not None:
        lines = await asyncio.to_thread(_count_matching_lines, sources, pattern)
        if lines < spec.min_count:
            raise CheckFailed(
                f"{lines} lines match /{spec.present}/ in {where}{since}, "
                f"fewer than {spec.min_count}",
                lines,
            )
        return f"{lines} lines match /{spec.present}/{since} (at least {spec.min_count})", lines
    found = await asyncio.to_thread(_search_logs, sources, pattern)
    if spec.present is not None:
        if found is None:
            raise CheckFailed(f"no line matches /{spec.present}/ in {where}{since}")
        return f"found at {found[0]}{since}: {found[1]}", found[1]
    if found is not None:
        raise CheckFailed(
            f"/{spec.absent}/ must not appear{since}, but {found[0]}: {found[1]}", found[1]
        )
    return f"no line matches /{spec.absent}/ in {where}{since}", None


def _log_offsets(ctx: RunContext, service: str, step: str) -> Mapping[str, int]:
    """Where ``service``'s log files stood when ``step`` started."""
    if step not in ctx.step_starts_ms:
        raise NothingToJudge(f"step {step!r} never ran, so nothing was written after it")
    mark = ctx.log_marks.get((step, service))
    if mark is None:
        raise CheckFailed(f"where the log of {service} stood when step {step!r} started is unknown")
    if mark.problem:
        raise CheckFailed(
            f"where the log of {service} stood when step {step!r} started is unknown: "
            f"{mark.problem}"
        )
    return mark.offsets


def _count_matching_lines(sources: list[tuple[Path, int]], pattern: re.Pattern[str]) -> int:
    count = 0
    for path, offset in sources:
        read = read_log(path, offset, LOG_READ_LIMIT_BYTES)
        if read is None:
            continue
        count += sum(1 for line in read[0].splitlines() if pattern.search(line))
    return count


def _any_log_text(sources: list[tuple[Path, int]]) -> bool:
    return any(has_text_after(path, offset) for path, offset in sources)


def _search_logs(
    sources: list[tuple[Path, int]], pattern: re.Pattern[str]
) -> tuple[str, str] | None:
    for path, offset in sources:
        read = read_log(path, offset, LOG_READ_LIMIT_BYTES)
        if read is None:
            continue
        text, start_byte = read
        match = pattern.search(text)
        if match is not None:
            earlier = lines_before(path, start_byte) if start_byte else 0
            line_no = earlier + text.count("\n", 0, match.start()) + 1
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            line = text[start : end if end >= 0 else len(text)]
            return f"{path.name}:{line_no}", line.strip()[:300]
    return None


async def _load(ctx: RunContext, check: LoadCheck) -> tuple[str, Any]:
    spec = check.load
    if spec.generator is not None:
        runner = ctx.loads.get(spec.generator)
    else:
        runner = next(iter(ctx.loads.values()), None)
    if runner is None:
        raise NothingToJudge("the load never started (the run ended before its step)")
    start_ms = end_ms = None
    window = ""
    if spec.window is not None:
        around = ctx.step_starts_ms.get(spec.window.around)
        if around is None:
            raise NothingToJudge(f"step {spec.window.around!r} never ran, so there is no window")
        start_ms = around - spec.window.before * 1000.0
        end_ms = around + spec.window.after * 1000.0
        window = f" in {start_ms:.0f}..{end_ms:.0f} ms"
    stats = runner.summary(start_ms, end_ms)
    reasons = dict(stats.reasons)
    why = " (" + ", ".join(f"{r}: {n}" for r, n in reasons.items()) + ")" if reasons else ""
    summary = (
        f"{stats.count} requests{window}, {stats.error_rate:.2%} errors{why}, "
        f"p50 {_ms(stats.p50_ms)}, p95 {_ms(stats.p95_ms)}, p99 {_ms(stats.p99_ms)}"
    )
    if stats.skipped:
        summary += f"; {stats.skipped} sends skipped: the load generator fell behind"
    value = {
        "count": stats.count,
        "errors": stats.errors,
        "error_rate": stats.error_rate,
        "reasons": reasons,
        "skipped": stats.skipped,
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
        "p99_ms": stats.p99_ms,
        "max_ms": stats.max_ms,
    }
    if stats.count == 0:
        raise NothingToJudge(f"no request was made{window}", value)
    problems = []
    if stats.count < spec.min_requests:
        problems.append(f"only {stats.count} requests, fewer than {spec.min_requests}")
    if spec.max_error_rate is not None and stats.error_rate > spec.max_error_rate:
        problems.append(f"error rate {stats.error_rate:.2%} above {spec.max_error_rate:.2%}")
    if spec.min_error_rate is not None and stats.error_rate < spec.min_error_rate:
        problems.append(
            f"error rate {stats.error_rate:.2%} below {spec.min_error_rate:.2%}: "
            "the fault did not hurt the load as expected"
        )
    for label, limit, actual in (
        ("p50", spec.max_p50, stats.p50_ms),
        ("p95", spec.max_p95, stats.p95_ms),
        ("p99", spec.max_p99, stats.p99_ms),
    ):
        if limit is not None and actual is not None and actual > limit * 1000.0:
            problems.append(f"{label} {actual:.1f} ms above {format_duration(limit)}")
    if problems:
        raise CheckFailed(f"{summary}: " + "; ".join(problems), value)
    return summary, value


async def _probe(ctx: RunContext, check: ProbeCheck) -> tuple[str, Any]:
    result = await ctx.checker.check(check.probe)
    if not result.ok:
        raise CheckFailed(f"{check.probe.describe()}: {result.detail}", result.value)
    return result.detail, result.value


async def _audit(ctx: RunContext, check: AuditCheck) -> tuple[str, Any]:
    # Loaded here: the order accounting and the correlator's types are for audit checks only.
    from test_coordinator.engine.audit_check import (
        AuditCheckFailed,
        AuditNothingToJudge,
        judge_audit,
    )

    try:
        return await judge_audit(ctx, check)
    except AuditNothingToJudge as exc:
        raise NothingToJudge(str(exc), exc.value) from None
    except AuditCheckFailed as exc:
        raise CheckFailed(str(exc), exc.value) from None


_JUDGES: dict[str, Callable[[RunContext, Any], Awaitable[tuple[str, Any]]]] = {
    "recovery_time": _recovery_time,
    "metric": _metric,
    "log": _log,
    "load": _load,
    "probe": _probe,
    "audit": _audit,
}
