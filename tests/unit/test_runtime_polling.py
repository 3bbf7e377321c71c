"""wait_until: the first ok result, the moment it completed, or DeadlineExceeded."""

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import pytest

from test_coordinator.runtime.polling import DEFAULT_POLL_INTERVAL_S, DeadlineExceeded, wait_until
from test_coordinator.runtime.probes import ProbeResult


def scripted(*oks: bool) -> tuple[Callable[[], Awaitable[ProbeResult]], list[float]]:
    """A check answering ``oks`` in turn (then the last forever), noting when each completed."""
    completions: list[float] = []

    async def check() -> ProbeResult:
        index = min(len(completions), len(oks) - 1)
        completions.append(time.monotonic())
        return ProbeResult(oks[index], index, f"attempt {index}", 0.0)

    return check, completions


async def test_returns_the_first_ok_result_and_when_it_completed() -> None:
    """Failures are retried; the ok result and its completion moment come back."""
    check, completions = scripted(False, False, True)

    result, observed = await wait_until(check, deadline_s=1.0, interval_s=0.001)

    assert result == ProbeResult(True, 2, "attempt 2", 0.0)
    assert len(completions) == 3
    assert completions[-1] <= observed < completions[-1] + 0.05


async def test_an_ok_first_attempt_returns_at_once() -> None:
    check, completions = scripted(True)

    started = time.monotonic()
    await wait_until(check, deadline_s=1.0, interval_s=10.0)

    assert len(completions) == 1
    assert time.monotonic() - started < 0.05


async def test_attempts_start_on_a_fixed_grid() -> None:
    """Attempt i starts i intervals after the first, never early, and the time an
    attempt takes is not added to the gap (fixed rate, not fixed delay)."""
    starts: list[float] = []

    async def slow_check() -> ProbeResult:
        starts.append(time.monotonic())
        await asyncio.sleep(0.015)
        return ProbeResult(len(starts) == 6, None, "", 15.0)

    await wait_until(slow_check, deadline_s=2.0, interval_s=0.02)

    offsets = [t - starts[0] for t in starts]
    assert all(offset >= 0.02 * i - 0.001 for i, offset in enumerate(offsets)), offsets
    # Fixed delay would start the sixth attempt at 5 * (15 + 20) = 175 ms, not 100 ms.
    assert offsets[5] < 0.15, offsets


async def test_deadline_exceeded_carries_the_last_result() -> None:
    """Never ok: DeadlineExceeded after about deadline_s, with the last answer."""
    check, completions = scripted(False)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"not true within 0\.1 s") as caught:
        await wait_until(check, deadline_s=0.1, interval_s=0.01)
    elapsed = time.monotonic() - started

    assert caught.value.last == ProbeResult(False, 0, "attempt 0", 0.0)
    assert caught.value.attempts == len(completions) >= 5
    assert 0.08 <= elapsed < 1.0


async def test_a_hanging_check_is_cancelled_at_the_deadline() -> None:
    """A check that never returns cannot hold the wait past its deadline."""
    cancelled = asyncio.Event()

    async def hang() -> ProbeResult:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        await wait_until(hang, deadline_s=0.05, interval_s=0.01)

    assert cancelled.is_set()
    assert time.monotonic() - started < 0.3
    assert caught.value.last is not None
    assert "still running at the deadline" in caught.value.last.detail


async def test_an_attempt_cut_short_by_the_deadline_keeps_the_answer_before_it() -> None:
    """The last answer (a 404, say) says why it is not healthy; the attempt still running
    when the deadline came does not hide it."""
    answers = 0

    async def wrong_then_slow() -> ProbeResult:
        nonlocal answers
        answers += 1
        if answers == 1:
            return ProbeResult(False, 404, "status 404, expected 200", 1.0, refused=True)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(DeadlineExceeded) as caught:
        await wait_until(wrong_then_slow, deadline_s=0.05, interval_s=0.001)

    assert caught.value.last is not None
    assert caught.value.last.detail == (
        "status 404, expected 200 (the next attempt still running at the deadline (0.05 s))"
    )
    assert caught.value.last.value == 404


async def test_a_timeout_raised_by_the_check_itself_is_not_swallowed() -> None:
    """Only the deadline's own cancellation is translated."""

    async def broken() -> ProbeResult:
        raise TimeoutError("the check's own bug")

    with pytest.raises(TimeoutError, match="own bug"):
        await wait_until(broken, deadline_s=1.0, interval_s=0.01)


@pytest.mark.parametrize(("deadline_s", "interval_s"), [(0, 0.01), (-1, 0.01), (1, -0.1)])
async def test_nonsense_bounds_are_refused(deadline_s: float, interval_s: float) -> None:
    check, _ = scripted(True)
    with pytest.raises(ValueError, match="must be"):
        await wait_until(check, deadline_s=deadline_s, interval_s=interval_s)


def test_default_interval_meets_the_10_ms_target() -> None:
    """The measured default keeps recovery-time error's p95 under 10 ms (see polling)."""
    assert 0 < DEFAULT_POLL_INTERVAL_S <= 0.005


def refusing(
    refusals: int, *, refused: bool = True
) -> tuple[Callable[[], Awaitable[ProbeResult]], list[float]]:
    """A check that fails ``refusals`` times (as refusals, or as no answer), then succeeds."""
    starts: list[float] = []

    async def check() -> ProbeResult:
        starts.append(time.monotonic())
        ok = len(starts) > refusals
        return ProbeResult(
            ok, None, "503" if refused else "refused", 0.0, refused=not ok and refused
        )

    return check, starts


async def test_refusals_double_the_gap_up_to_the_ceiling() -> None:
    check, starts = refusing(5)

    await wait_until(check, deadline_s=5.0, interval_s=0.01, max_interval_s=0.04)

    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 20, 40, 40, 40, 40 ms: doubled after each refusal, never beyond 40 ms (uncapped,
    # the last would be 320 ms). Lateness of a busy machine is allowed, not earliness.
    assert len(gaps) == 5
    assert gaps[0] >= 0.019 and all(g >= 0.039 for g in gaps[1:]), gaps
    assert gaps[-1] < 0.2, gaps  # uncapped: 320 ms


async def test_no_answer_is_not_a_refusal_and_does_not_back_off() -> None:
    """A refused connection or a timeout: the target never saw the probe; keep the pace."""
    check, starts = refusing(5, refused=False)

    await wait_until(check, deadline_s=5.0, interval_s=0.01, max_interval_s=0.04)

    assert starts[-1] - starts[0] < 0.05 + 0.01, list(itertools.pairwise(starts))


async def test_without_a_ceiling_refusals_keep_the_pace() -> None:
    check, starts = refusing(5)

    await wait_until(check, deadline_s=5.0, interval_s=0.01)

    assert starts[-1] - starts[0] < 0.05 + 0.01
