"""The circuit breaker's state machine, with a fake clock."""

from __future__ import annotations

import pytest

from omninode_bridge.core.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from omninode_bridge.platform import parse_key_specs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("db", failure_threshold=5, reset_seconds=60, half_open_calls=3, clock=clock)


def test_opens_after_consecutive_failures_only() -> None:
    breaker = _breaker(Clock())
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()  # resets the streak
    for _ in range(4):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_open_rejects_with_retry_after_then_half_opens() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now = 15
    with pytest.raises(CircuitOpenError) as excinfo:
        breaker.before_call()
    assert excinfo.value.retry_after == pytest.approx(45)
    clock.now = 60
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_admits_three_trials_and_closes_after_they_succeed() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now = 61
    for _ in range(3):
        breaker.before_call()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    for _ in range(3):
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()


def test_half_open_failure_reopens() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker("db", failure_threshold=1, reset_seconds=10, clock=clock, on_change=changes.append)
    breaker.record_failure()
    clock.now = 10
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]


def test_released_trial_slot_can_be_reused() -> None:
    clock = Clock()
    breaker = CircuitBreaker("db", failure_threshold=1, reset_seconds=1, half_open_calls=1, clock=clock)
    breaker.record_failure()
    clock.now = 1
    breaker.before_call()
    breaker.release()  # the call never reached the database
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_api_key_seed_format() -> None:
    specs = parse_key_specs(
        "ops:onb_0123456789abcdef:admin, ci:onb_abcdefabcdefabcdef:hooks+stamping:ns1+ns2, x:onb_1111111111111111"
    )
    assert [s.name for s in specs] == ["ops", "ci", "x"]
    assert specs[1].scopes == ("hooks", "stamping")
    assert specs[1].namespaces == ("ns1", "ns2")
    assert specs[2].scopes == ("admin",)
    with pytest.raises(ValueError, match="entry 1") as excinfo:
        parse_key_specs("short:abc")
    assert "abc" not in str(excinfo.value).replace("name:key", "")
