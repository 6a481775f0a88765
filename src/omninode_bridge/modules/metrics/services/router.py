"""The online router: per (task type, model) statistics and a strategy's choice among candidates.

Exploration is **Thompson sampling**: each request draws every candidate's success rate (Beta posterior),
quality (normal posterior of the mean) and latency from what has been measured, and ranks by the strategy's
utility of the draws. Why not UCB: UCB is deterministic, so every process of a multi-worker deployment (and
every concurrent request) would pick the same under-sampled model at once and herd onto it; Thompson's
randomness spreads concurrent requests in proportion to each model's chance of being best, needs no shared
exploration counter, and its exploration fades by itself as the posteriors narrow (a model that is clearly
worse still gets a small, non-zero share). Costs are known from the catalog's prices, so they are not
explored: a model never called is priced at its catalog price for the request's estimated tokens.

Everything here is pure (no I/O): the executor loads statistics and hands them in. The statistics and their
update arithmetic are in :mod:`.stats` (re-exported here).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from omninode_bridge.modules.metrics.services.stats import ModelStats, add_quality, observe

__all__ = [
    "EXPLORATION_FLOOR",
    "STRATEGIES",
    "WARMUP_SAMPLES",
    "Candidate",
    "Constraints",
    "ModelStats",
    "Ranked",
    "Strategy",
    "add_quality",
    "observe",
    "rank",
    "recommend",
]

Strategy = Literal["quality", "cost", "latency", "balanced"]
#: Weights of (quality, cost, latency) in each strategy's utility; cost and latency are relative to the
#: most expensive / slowest candidate, so the weights compare like with like.
STRATEGIES: Mapping[str, tuple[float, float, float]] = {
    "quality": (1.0, 0.05, 0.05),
    "cost": (0.15, 1.0, 0.05),
    "latency": (0.15, 0.05, 1.0),
    "balanced": (0.5, 0.25, 0.25),
}
#: Prior of an unmeasured model's quality (wide: anything from 0 to 1 is plausible).
_PRIOR_QUALITY, _PRIOR_SD = 0.5, 0.3
#: Floor of a quality standard deviation (a model that always scored 0.8 is not certainly 0.8).
_MIN_SD = 0.05
_MIN_FOR_CONSTRAINT = 5


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model that may serve the request, with its statistics and the catalog's expected cost."""

    model_id: str
    stats: ModelStats
    list_cost_usd: float

    @property
    def expected_cost(self) -> float:
        """Measured mean cost, else the catalog price for the request's estimated tokens."""
        measured = self.stats.cost_mean_usd
        return measured if measured is not None else self.list_cost_usd


@dataclass(frozen=True, slots=True)
class Constraints:
    """Limits a request sets; a model is left out only on evidence (measured, or its known price)."""

    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    min_quality: float | None = None

    def admits(self, candidate: Candidate) -> bool:
        """Whether the candidate may be tried."""
        stats = candidate.stats
        if self.max_cost_usd is not None and candidate.expected_cost > self.max_cost_usd:
            return False
        measured = stats.successes >= _MIN_FOR_CONSTRAINT
        if self.max_latency_ms is not None and measured and stats.latency_ewma_ms > self.max_latency_ms:
            return False
        if self.min_quality is not None and stats.quality_n >= _MIN_FOR_CONSTRAINT:
            return stats.quality_mean >= self.min_quality
        return True


@dataclass(frozen=True, slots=True)
class Ranked:
    """A candidate with its expected figures, as recommendations show them."""

    model_id: str
    utility: float
    expected_quality: float
    expected_latency_ms: float | None
    expected_cost_usd: float
    success_rate: float
    samples: int
    confidence: float
    reason: str


def _quality_posterior(stats: ModelStats) -> tuple[float, float]:
    n = stats.quality_n
    if n == 0:
        return _PRIOR_QUALITY, _PRIOR_SD
    mean = (n * stats.quality_mean + _PRIOR_QUALITY) / (n + 1)  # one pseudo-sample of the prior
    sd = math.sqrt(max(stats.quality_variance, _MIN_SD**2) / (n + 1))
    return mean, sd


def _draw(candidate: Candidate, rng: random.Random, sample: bool, unknown_latency: float) -> tuple[float, float, float]:
    """(quality x success, cost, latency) of one candidate: drawn from the posteriors, or their means."""
    stats = candidate.stats
    mean_q, sd_q = _quality_posterior(stats)
    failures = stats.samples - stats.successes
    if sample:
        quality = min(1.0, max(0.0, rng.gauss(mean_q, sd_q)))
        success = rng.betavariate(stats.successes + 1, failures + 1)
    else:
        quality, success = mean_q, (stats.successes + 1) / (stats.samples + 2)
    if stats.successes:
        latency = stats.latency_ewma_ms
        if sample:
            spread = math.sqrt(max(stats.latency_ewvar, 0.0)) / math.sqrt(min(stats.successes, 50))
            latency = max(0.0, rng.gauss(latency, spread))
    else:
        latency = rng.uniform(0.0, unknown_latency) if sample else unknown_latency / 2
    return quality * success, candidate.expected_cost, latency


def _utilities(
    candidates: Sequence[Candidate], strategy: str, rng: random.Random, sample: bool
) -> list[tuple[float, float, float, float]]:
    w_quality, w_cost, w_latency = STRATEGIES[strategy]
    known = [c.stats.latency_ewma_ms for c in candidates if c.stats.successes]
    unknown_latency = 2 * max(known) if known else 1000.0
    draws = [_draw(c, rng, sample, unknown_latency) for c in candidates]
    top_cost = max((d[1] for d in draws), default=0.0) or 1.0
    top_latency = max((d[2] for d in draws), default=0.0) or 1.0
    return [
        (w_quality * q - w_cost * cost / top_cost - w_latency * latency / top_latency, q, cost, latency)
        for q, cost, latency in draws
    ]


#: Executions every model gets on a task type before the posteriors decide (prices are known, so without a
#: warm-up the cost strategy would never measure an expensive model's quality at all).
WARMUP_SAMPLES = 3
#: Share of requests led by a uniformly chosen candidate, so a model the posteriors have written off is still
#: measured now and then (models and prices change; a frozen statistic would never notice).
EXPLORATION_FLOOR = 0.02


def rank(
    candidates: Sequence[Candidate],
    strategy: str,
    rng: random.Random,
    *,
    explore: bool = True,
    warmup: int = WARMUP_SAMPLES,
    floor: float = EXPLORATION_FLOOR,
) -> list[Candidate]:
    """The candidates in the order to try them: by the strategy's utility of one Thompson draw each (the
    first is the choice, the rest the failover order); by the posterior means when ``explore`` is off.

    With ``explore``, a model with fewer than ``warmup`` executions leads first, and with probability
    ``floor`` a random candidate leads; the rest keep the utility order as failover.
    """
    if len(candidates) < 2:  # nothing to choose between: no draws (15 us of a one-model task type's request)
        return list(candidates)
    utilities = _utilities(candidates, strategy, rng, sample=explore)
    order = sorted(range(len(candidates)), key=lambda i: utilities[i][0], reverse=True)
    if explore and len(order) > 1:
        cold = [i for i in order if candidates[i].stats.samples < warmup]
        lead = rng.choice(cold) if cold else rng.choice(order) if rng.random() < floor else None
        if lead is not None:
            order.remove(lead)
            order.insert(0, lead)
    return [candidates[i] for i in order]


def recommend(candidates: Sequence[Candidate], strategy: str, rng: random.Random, *, draws: int = 64) -> list[Ranked]:
    """Candidates ranked by expected utility, each with its chance of being the best (its confidence: the share
    of ``draws`` Thompson draws in which it ranks first) and a reason in words."""
    if not candidates:
        return []
    wins = [0] * len(candidates)
    for _ in range(draws):
        utilities = _utilities(candidates, strategy, rng, sample=True)
        wins[max(range(len(candidates)), key=lambda i: utilities[i][0])] += 1
    means = _utilities(candidates, strategy, rng, sample=False)
    ranked = []
    for index, candidate in enumerate(candidates):
        stats = candidate.stats
        utility = means[index][0]
        quality = _quality_posterior(stats)[0]
        latency = stats.latency_ewma_ms if stats.successes else None
        ranked.append(
            Ranked(
                model_id=candidate.model_id,
                utility=round(utility, 6),
                expected_quality=round(quality, 4),
                expected_latency_ms=round(latency, 3) if latency is not None else None,
                expected_cost_usd=round(candidate.expected_cost, 8),
                success_rate=round(stats.success_rate, 4),
                samples=stats.samples,
                confidence=round(wins[index] / draws, 4),
                reason=_reason(stats, candidate, strategy),
            )
        )
    ranked.sort(key=lambda r: r.utility, reverse=True)
    return ranked


def _reason(stats: ModelStats, candidate: Candidate, strategy: str) -> str:
    if stats.samples == 0:
        return f"not measured yet on this task type; catalog price ${candidate.list_cost_usd:.6f} per call ({strategy})"
    parts = [f"{stats.samples} executions, {stats.success_rate:.0%} succeeded"]
    if stats.quality_n:
        parts.append(f"quality {stats.quality_mean:.2f} ± {math.sqrt(stats.quality_variance):.2f}")
    if stats.successes:
        parts.append(f"latency {stats.latency_ewma_ms:.0f} ms (p95 ~{stats.latency_p95_ms or 0:.0f} ms)")
    parts.append(f"${candidate.expected_cost:.6f} per call")
    return "; ".join(parts) + f" ({strategy})"
