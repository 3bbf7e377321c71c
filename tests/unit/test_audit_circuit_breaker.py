"""The circuit breaker opens after consecutive failures, probes once after its cooldown,
and the backoff grows exponentially up to its cap."""

import pytest

from test_coordinator.adapters.audit import BreakerState, CircuitBreaker, ExponentialBackoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_stays_closed_below_the_threshold(clock: FakeClock) -> None:
    """Fewer consecutive failures than the threshold never stop calls."""
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()

    assert BreakerState.CLOSED == breaker.state
    assert breaker.allow()


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=1.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()

    assert BreakerState.CLOSED == breaker.state
    assert 2 == breaker.consecutive_failures


def test_opens_at_the_threshold_and_refuses_calls(clock: FakeClock) -> None:
    """The Nth consecutive failure opens it; no call goes out during the cooldown."""
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=1.0, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 0.4

    assert BreakerState.OPEN == breaker.state
    assert not breaker.allow()
    assert 0.6 == pytest.approx(breaker.retry_in())


def test_half_open_after_the_cooldown_allows_exactly_one_probe(clock: FakeClock) -> None:
    """After the cooldown one probe may go; a second caller waits for its verdict."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0

    assert BreakerState.HALF_OPEN == breaker.state
    assert breaker.allow()
    assert not breaker.allow()


def test_a_successful_probe_closes_it(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.record_success()

    assert BreakerState.CLOSED == breaker.state
    assert breaker.allow()
    assert 0.0 == breaker.retry_in()


def test_a_failed_probe_opens_it_for_another_cooldown(clock: FakeClock) -> None:
    """One failed probe is enough, whatever the threshold."""
    breaker = CircuitBreaker(failure_threshold=5, cooldown_s=1.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.record_failure()

    assert BreakerState.OPEN == breaker.state
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()


def test_backoff_doubles_up_to_its_cap() -> None:
    """Without jitter: base, 2 base, 4 base... never more than the cap."""
    backoff = ExponentialBackoff(base_s=0.1, factor=2.0, max_s=0.5, jitter=0.0)

    assert [0.1, 0.2, 0.4, 0.5, 0.5] == pytest.approx([backoff.delay(n) for n in range(1, 6)])
    assert 0.5 == backoff.delay(10_000)


def test_jitter_only_shortens_the_pause() -> None:
    """Jitter takes up to its fraction off, so retries spread without waiting longer."""
    backoff = ExponentialBackoff(base_s=1.0, factor=2.0, max_s=10.0, jitter=0.25)

    assert 0.75 == pytest.approx(backoff.delay(1, rand=lambda: 1.0))
    assert 1.0 == pytest.approx(backoff.delay(1, rand=lambda: 0.0))
