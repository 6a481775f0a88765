"""A circuit breaker with the exact semantics the platform needs.

Written by hand on purpose: the maintained asyncio breakers (purgatory, aiobreaker) admit a single trial
call when half-open, while we want N trial calls (default 3) and a ``Retry-After`` computed from the
remaining open time. The whole state machine is a few lines and has no I/O.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError"]


class BreakerState(enum.IntEnum):
    """Breaker states; the integer value is what the Prometheus gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpenError(RuntimeError):
    """Raised instead of calling a dependency whose breaker is open."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name} is unavailable (circuit open); retry in {retry_after:.0f}s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    """Consecutive-failure breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

    Args:
        name: What it protects, used in errors and metrics.
        failure_threshold: Consecutive failures that open the circuit.
        reset_seconds: Time the circuit stays open before trial calls are admitted.
        half_open_calls: Trial calls admitted while half-open; all must succeed to close again,
            any failure re-opens it.
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_seconds: float = 60.0,
        half_open_calls: int = 3,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.half_open_calls = half_open_calls
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials_admitted = 0
        self._trial_successes = 0

    @property
    def state(self) -> BreakerState:
        """Current state, moving OPEN to HALF_OPEN once the reset time has passed."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_seconds:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def retry_after(self) -> float:
        """Seconds until trial calls are admitted again (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_seconds - (self._clock() - self._opened_at))

    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpenError` at once.

        Raises:
            CircuitOpenError: The circuit is open, or half-open with all trial slots taken.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and self._trials_admitted < self.half_open_calls:
            self._trials_admitted += 1
            return
        raise CircuitOpenError(self.name, max(1.0, self.retry_after()))

    def record_success(self) -> None:
        """Report a call that reached the dependency."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._trial_successes += 1
            if self._trial_successes >= self.half_open_calls:
                self._set(BreakerState.CLOSED)
        elif state is BreakerState.CLOSED:
            self._failures = 0

    def release(self) -> None:
        """Return a half-open trial slot taken by a call that never reached the dependency."""
        if self._state is BreakerState.HALF_OPEN and self._trials_admitted > self._trial_successes:
            self._trials_admitted -= 1

    def record_failure(self) -> None:
        """Report a call that failed because the dependency is unreachable."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        self._failures = 0
        self._trials_admitted = 0
        self._trial_successes = 0
        if self._on_change is not None:
            self._on_change(state)
