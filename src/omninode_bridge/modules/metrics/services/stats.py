"""Per (task type, model) statistics and the arithmetic that folds one execution into them.

The same arithmetic runs as the durable upsert in SQL (:mod:`.store`); Redis holds a copy (:mod:`.coordination`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ModelStats", "add_quality", "observe"]


@dataclass(slots=True)
class ModelStats:
    """What has been measured of one model on one task type.

    Attributes:
        samples: Executions attempted (successes and failures).
        successes: Executions that answered.
        latency_ewma_ms: Exponentially weighted mean latency of successes.
        latency_ewvar: Exponentially weighted variance of that latency.
        cost_total_usd: Summed cost of successes.
        quality_n: Quality samples (automatic scores and feedback).
        quality_mean: Their mean.
        quality_m2: Sum of squared deviations (Welford), for the variance.
    """

    samples: int = 0
    successes: int = 0
    latency_ewma_ms: float = 0.0
    latency_ewvar: float = 0.0
    cost_total_usd: float = 0.0
    quality_n: int = 0
    quality_mean: float = 0.0
    quality_m2: float = 0.0

    @property
    def success_rate(self) -> float:
        """Successes over samples (1.0 before any)."""
        return self.successes / self.samples if self.samples else 1.0

    @property
    def cost_mean_usd(self) -> float | None:
        """Mean cost of a successful call."""
        return self.cost_total_usd / self.successes if self.successes else None

    @property
    def quality_variance(self) -> float:
        """Sample variance of quality (0 with fewer than two samples)."""
        return self.quality_m2 / (self.quality_n - 1) if self.quality_n > 1 else 0.0

    @property
    def latency_p95_ms(self) -> float | None:
        """p95 latency under a normal approximation of the moving mean and variance."""
        if not self.successes:
            return None
        return self.latency_ewma_ms + 1.645 * math.sqrt(max(self.latency_ewvar, 0.0))


def observe(
    stats: ModelStats,
    *,
    success: bool,
    latency_ms: float = 0.0,
    cost_usd: float = 0.0,
    quality: float | None = None,
    alpha: float = 0.2,
) -> None:
    """Fold one execution into ``stats`` (the same arithmetic as the durable upsert in SQL)."""
    stats.samples += 1
    if success:
        if stats.successes == 0:
            stats.latency_ewma_ms, stats.latency_ewvar = latency_ms, 0.0
        else:
            delta = latency_ms - stats.latency_ewma_ms
            stats.latency_ewma_ms += alpha * delta
            stats.latency_ewvar = (1 - alpha) * (stats.latency_ewvar + alpha * delta * delta)
        stats.successes += 1
        stats.cost_total_usd += cost_usd
    if quality is not None:
        add_quality(stats, quality)


def add_quality(stats: ModelStats, score: float) -> None:
    """One more quality sample (an automatic score or a caller's feedback), by Welford's update."""
    stats.quality_n += 1
    delta = score - stats.quality_mean
    stats.quality_mean += delta / stats.quality_n
    stats.quality_m2 += delta * (score - stats.quality_mean)
