"""The router learns online: the acceptance scenario of issue 14 on the pure router (no servers)."""

from __future__ import annotations

import random

from omninode_bridge.modules.metrics.services.router import (
    Candidate,
    Constraints,
    ModelStats,
    add_quality,
    observe,
    rank,
    recommend,
)
from tests.unit.metrics.simulation import simulate


def test_quality_strategy_sends_80_percent_to_the_good_model_after_500() -> None:
    picks, _ = simulate("quality", 500)
    assert picks["good"] / 500 >= 0.8
    assert picks["cheap"] > 0
    assert picks["mid"] > 0  # still explored


def test_cost_strategy_sends_80_percent_to_the_cheap_model_after_500() -> None:
    picks, _ = simulate("cost", 500)
    assert picks["cheap"] / 500 >= 0.8
    assert picks["good"] > 0
    assert picks["mid"] > 0


def test_latency_strategy_prefers_the_fast_model() -> None:
    picks, _ = simulate("latency", 500)
    assert picks["cheap"] / 500 >= 0.8


def test_observe_matches_welford_and_ewma() -> None:
    stats = ModelStats()
    for latency, quality in [(100.0, 0.5), (200.0, 1.0), (100.0, 0.0)]:
        observe(stats, success=True, latency_ms=latency, cost_usd=0.01, quality=quality, alpha=0.5)
    assert stats.samples == stats.successes == 3
    assert stats.latency_ewma_ms == 125.0  # 100 -> 150 -> 125
    assert stats.quality_mean == 0.5
    assert abs(stats.quality_variance - 0.25) < 1e-12
    assert abs(stats.cost_mean_usd - 0.01) < 1e-12  # type: ignore[operator]
    observe(stats, success=False, alpha=0.5)
    assert stats.success_rate == 0.75


def test_feedback_moves_the_recommendation() -> None:
    a, b = ModelStats(), ModelStats()
    for _ in range(30):
        observe(a, success=True, latency_ms=100, cost_usd=0.001, quality=0.9)
        observe(b, success=True, latency_ms=100, cost_usd=0.001, quality=0.8)
    candidates = [Candidate("a", a, 0.001), Candidate("b", b, 0.001)]
    assert recommend(candidates, "quality", random.Random(1))[0].model_id == "a"
    for _ in range(60):
        add_quality(a, 0.1)  # callers report that a's answers did not work out
    assert recommend(candidates, "quality", random.Random(1))[0].model_id == "b"


def test_constraints_exclude_on_evidence_only() -> None:
    measured = ModelStats()
    for _ in range(10):
        observe(measured, success=True, latency_ms=900, cost_usd=0.5, quality=0.3)
    fresh = ModelStats()
    limits = Constraints(max_latency_ms=500, min_quality=0.5)
    assert not limits.admits(Candidate("slow", measured, 0.5))
    assert limits.admits(Candidate("new", fresh, 0.5))
    assert not Constraints(max_cost_usd=0.1).admits(Candidate("new", fresh, 0.5))  # known price


def test_rank_without_exploration_is_the_best_mean() -> None:
    good, poor = ModelStats(), ModelStats()
    for _ in range(20):
        observe(good, success=True, latency_ms=100, cost_usd=0.001, quality=0.9)
        observe(poor, success=True, latency_ms=100, cost_usd=0.001, quality=0.2)
    candidates = [Candidate("poor", poor, 0.001), Candidate("good", good, 0.001)]
    order = rank(candidates, "quality", random.Random(0), explore=False)
    assert [c.model_id for c in order] == ["good", "poor"]
