"""Prometheus instruments of the metrics module, per model (and task type)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from omninode_bridge.modules.metrics.services.upstream import Completion

__all__ = ["failed", "succeeded"]

_REQUESTS = Counter("omninode_model_requests", "Model calls by outcome.", ["model", "task_type", "outcome"])
_TOKENS = Counter("omninode_model_tokens", "Tokens by direction.", ["model", "direction"])
_COST = Counter("omninode_model_cost_usd", "Cost of model calls in US dollars.", ["model"])
_LATENCY = Histogram(
    "omninode_model_latency_seconds",
    "Latency of successful model calls.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
_TTFT = Histogram(
    "omninode_model_ttft_seconds",
    "Time to the first token of streamed calls.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def succeeded(model: str, task_type: str, completion: Completion, cost: float) -> None:
    """Count a successful call."""
    _REQUESTS.labels(model, task_type, "success").inc()
    _TOKENS.labels(model, "input").inc(completion.input_tokens)
    _TOKENS.labels(model, "output").inc(completion.output_tokens)
    _COST.labels(model).inc(cost)
    _LATENCY.labels(model).observe(completion.latency_ms / 1000)
    if completion.ttft_ms is not None:
        _TTFT.labels(model).observe(completion.ttft_ms / 1000)


def failed(model: str, task_type: str, error_class: str) -> None:
    """Count a failed call."""
    _REQUESTS.labels(model, task_type, error_class).inc()
