"""Load summaries: counts, error rate and nearest-rank latency percentiles."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_coordinator.runtime.load import LoadSample, LoadSummary, percentile, summarize


def sample(at_ms: float, latency_ms: float, ok: bool = True) -> LoadSample:
    return LoadSample(
        at_ms=at_ms,
        latency_ms=latency_ms,
        ok=ok,
        status=200 if ok else None,
        error="" if ok else "cannot connect: Connection refused",
    )


def test_percentiles_of_one_to_a_hundred() -> None:
    """With latencies 1..100 ms, the p-th percentile is p ms."""
    samples = [sample(at_ms=i, latency_ms=float(i)) for i in range(100, 0, -1)]

    summary = summarize(samples)

    assert LoadSummary(100, 0, 0.0, 50.0, 95.0, 99.0, 100.0) == summary


def test_nearest_rank_picks_an_observed_value() -> None:
    """No interpolation: the percentile is one of the samples."""
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 20.0
    assert percentile([10.0, 20.0, 30.0, 40.0], 95) == 40.0
    assert percentile([7.0], 99) == 7.0


def test_errors_and_rate() -> None:
    """Failed samples count as errors and are in the latencies."""
    samples = [
        sample(0, 1.0),
        sample(10, 2.0, ok=False),
        sample(20, 3.0),
        sample(30, 900.0, ok=False),
    ]

    summary = summarize(samples)

    assert (summary.count, summary.errors, summary.error_rate, summary.max_ms) == (4, 2, 0.5, 900.0)


def test_failures_are_counted_by_reason() -> None:
    """Each failed sample counts under its reason (none given: other), most common first."""
    samples = [
        sample(0, 1.0),
        LoadSample(1, 1000.0, False, None, "no answer within 1 s", "timeout"),
        LoadSample(2, 0.1, False, None, "cannot connect: Connection refused", "refused"),
        LoadSample(3, 1000.0, False, None, "no answer within 1 s", "timeout"),
        LoadSample(4, 2.0, False, 503, "status 503", "status 503"),
        sample(5, 1.0, ok=False),
    ]

    summary = summarize(samples)

    assert summary.reasons == {"timeout": 2, "refused": 1, "status 503": 1, "other": 1}
    assert next(iter(summary.reasons)) == "timeout"
    assert summary.errors == sum(summary.reasons.values()) == 5
    assert summarize(samples, end_ms=1).reasons == {}


def test_skipped_sends_are_counted_apart_from_errors() -> None:
    """Sends the generator itself missed are neither requests nor errors."""
    summary = summarize([sample(0, 1.0)], skipped_ms=[5.0, 50.0, 500.0])

    assert (summary.count, summary.errors, summary.skipped) == (1, 0, 3)
    assert summarize([sample(0, 1.0)], start_ms=10, end_ms=100, skipped_ms=[5.0, 50.0]).skipped == 1


def test_window_includes_start_and_excludes_end() -> None:
    """Only samples sent in [start_ms, end_ms) are summarised."""
    samples = [sample(at_ms=t, latency_ms=t / 10, ok=t != 200) for t in (0, 100, 200, 300)]

    assert summarize(samples, start_ms=100, end_ms=300).count == 2
    assert summarize(samples, start_ms=100, end_ms=300).errors == 1
    assert summarize(samples, start_ms=200).count == 2
    assert summarize(samples, end_ms=100).count == 1


def test_no_samples_has_no_latencies() -> None:
    """An empty window says so instead of inventing zeros."""
    assert LoadSummary(0, 0, 0.0, None, None, None, None) == summarize(
        [sample(5, 1.0)], start_ms=10
    )


@pytest.mark.parametrize("pct", [0, -1, 101])
def test_percentile_outside_range_is_refused(pct: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], pct)


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200))
def test_percentiles_are_ordered_observed_values(latencies: list[float]) -> None:
    """p50 <= p95 <= p99 <= max, each one of the latencies."""
    summary = summarize([sample(i, value) for i, value in enumerate(latencies)])

    ordered = [summary.p50_ms, summary.p95_ms, summary.p99_ms, summary.max_ms]
    assert ordered == sorted(ordered)  # type: ignore[type-var]
    assert all(value in latencies for value in ordered)
    assert max(latencies) == summary.max_ms
