"""The checks judged after the last step: recovery times, metrics, logs, load, probes, audit."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from test_coordinator.domain.compare import mismatch
from test_coordinator.engine.audit_check import (
    AuditCheckFailed,
    AuditNothingToJudge,
    judge_audit,
)
from test_coordinator.engine.context import RunContext
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
LOG_READ_LIMIT_BYTES = 64 * 1024 * 1024


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
    limit_ms = spec.max * 1000.0
    faults = [
        r
        for r in ctx.recoveries.results()
        if (spec.service is None or r.service == spec.service)
        and (spec.step is None or r.step_name == spec.step)
    ]
    subject = spec.service or "any service"
    if not faults:
        raise NothingToJudge(f"no fault on {subject} was injected, so nothing recovered")
    worst = max((r.recovery_ms for r in faults if r.recovery_ms is not None), default=None)
    problems = []
    for recovery in faults:
        if recovery.recovery_ms is None:
            problems.append(f"{_fault_name(recovery)}: {recovery.detail or 'never healthy again'}")
        elif recovery.recovery_ms > limit_ms:
            problems.append(
                f"{_fault_name(recovery)}: healthy again after {recovery.recovery_ms:.1f} ms, "
                f"more than the allowed {format_duration(spec.max)}"
            )
    if problems:
        raise CheckFailed("; ".join(problems), worst)
    times = ", ".join(f"{r.service} {r.recovery_ms:.1f} ms" for r in faults)
    return f"recovered: {times} (max {format_duration(spec.max)})", worst


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
    service = ctx.loaded.model.services[spec.service]
    if service.log:
        paths = [Path(service.log)]
    else:
        await ctx.targets.sync_logs(spec.service)
        paths = ctx.targets.log_paths(spec.service)
    pattern = re.compile(spec.present or spec.absent or "", re.MULTILINE)
    where = ", ".join(str(p) for p in paths)
    if spec.absent is not None and not await asyncio.to_thread(_any_log_text, paths):
        raise NothingToJudge(f"no log to read: {where} missing or empty")
    if spec.min_count is not None:
        lines = await asyncio.to_thread(_count_matching_lines, paths, pattern)
        if lines < spec.min_count:
            raise CheckFailed(
                f"{lines} lines match /{spec.present}/ in {where}, fewer than {spec.min_count}",
                lines,
            )
        return f"{lines} lines match /{spec.present}/ (at least {spec.min_count})", lines
    found = await asyncio.to_thread(_search_logs, paths, pattern)
    if spec.present is not None:
        if found is None:
            raise CheckFailed(f"no line matches /{spec.present}/ in {where}")
        return f"found at {found[0]}: {found[1]}", found[1]
    if found is not None:
        raise CheckFailed(f"/{spec.absent}/ must not appear, but {found[0]}: {found[1]}", found[1])
    return f"no line matches /{spec.absent}/ in {where}", None


def _count_matching_lines(paths: list[Path], pattern: re.Pattern[str]) -> int:
    count = 0
    for path in paths:
        try:
            with path.open("rb") as file:
                text = file.read(LOG_READ_LIMIT_BYTES).decode("utf-8", "replace")
        except FileNotFoundError:
            continue
        count += sum(1 for line in text.splitlines() if pattern.search(line))
    return count


def _any_log_text(paths: list[Path]) -> bool:
    return any(path.is_file() and path.stat().st_size > 0 for path in paths)


def _search_logs(paths: list[Path], pattern: re.Pattern[str]) -> tuple[str, str] | None:
    for path in paths:
        try:
            with path.open("rb") as file:
                text = file.read(LOG_READ_LIMIT_BYTES).decode("utf-8", "replace")
        except FileNotFoundError:
            continue
        match = pattern.search(text)
        if match is not None:
            line_no = text.count("\n", 0, match.start()) + 1
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
