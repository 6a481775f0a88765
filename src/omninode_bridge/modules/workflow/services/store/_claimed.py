"""A claimed task (what its process needs to run it) and the retry policy's backoff."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["Claimed", "backoff_seconds"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task this process holds the lease of, with what it needs to run it."""

    run_id: uuid.UUID
    task_id: str
    phase: str
    kind: str
    spec: dict[str, Any]
    attempt: int
    retry_base: int
    ready_at: dt.datetime | None
    started_at: dt.datetime
    inputs: dict[str, Any]
    run_name: str
    correlation_id: str
    has_ai: bool = False
    free: bool = False
    #: The ctid of the row version the claim wrote: the claim's transaction completes an inline task by it.
    tid: tuple[int, int] | None = None

    @property
    def attempts_left(self) -> int:
        """Attempts of the retry policy not yet used (this one counted)."""
        maximum = int(self.spec.get("retry", {}).get("max_attempts", 1))
        return maximum - (self.attempt - self.retry_base)


def backoff_seconds(retry: dict[str, Any], failures: int, rng: random.Random | None = None) -> float:
    """The wait before the next attempt after ``failures`` failed ones (exponential, capped, with jitter)."""
    initial = float(retry.get("initial_backoff_s", 0.5))
    delay = min(
        float(retry.get("max_backoff_s", 60.0)), initial * float(retry.get("multiplier", 2.0)) ** (failures - 1)
    )
    jitter = float(retry.get("jitter", 0.2))
    factor = 1 - jitter * (rng or random).random()
    return max(0.0, delay * factor)
