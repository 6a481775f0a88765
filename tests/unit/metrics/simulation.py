"""A learning simulation of the router: models with hidden quality, latency and cost (shared by the unit test
and bench/metrics.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from omninode_bridge.modules.metrics.services.router import Candidate, ModelStats, observe, rank


@dataclass(frozen=True)
class Hidden:
    """A simulated model: its true mean quality, mean latency and cost per call."""

    model_id: str
    quality: float
    latency_ms: float
    cost_usd: float


#: fast-cheap-poor, slow-expensive-good, and one in between (the acceptance scenario).
THREE = (
    Hidden("cheap", quality=0.45, latency_ms=80, cost_usd=0.0002),
    Hidden("good", quality=0.9, latency_ms=900, cost_usd=0.02),
    Hidden("mid", quality=0.7, latency_ms=300, cost_usd=0.004),
)


def simulate(
    strategy: str, executions: int, seed: int = 7, models: tuple[Hidden, ...] = THREE
) -> tuple[dict[str, int], list[str]]:
    """Route ``executions`` requests; returns the picks per model and the sequence of picks."""
    rng = random.Random(seed)
    stats = {m.model_id: ModelStats() for m in models}
    picks = {m.model_id: 0 for m in models}
    sequence = []
    for _ in range(executions):
        candidates = [Candidate(m.model_id, stats[m.model_id], m.cost_usd) for m in models]
        first = rank(candidates, strategy, rng)[0].model_id
        chosen = next(m for m in models if m.model_id == first)
        picks[chosen.model_id] += 1
        sequence.append(chosen.model_id)
        quality = min(1.0, max(0.0, rng.gauss(chosen.quality, 0.1)))
        latency = max(1.0, rng.gauss(chosen.latency_ms, chosen.latency_ms * 0.1))
        observe(stats[chosen.model_id], success=True, latency_ms=latency, cost_usd=chosen.cost_usd, quality=quality)
    return picks, sequence
