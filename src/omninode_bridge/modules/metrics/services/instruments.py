"""Prometheus instruments of the metrics module, per model (and task type)."""

from __future__ import annotations

from typing import Any, NamedTuple

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


class _Children(NamedTuple):
    requests: Any
    tokens_in: Any
    tokens_out: Any
    cost: Any
    latency: Any
    ttft: Any


# The labelled children of each (model, task type), looked up once: ``labels()`` takes a lock and builds its
# key on every call, five calls per execution (~20 us). Bounded by the catalog (its models and task types).
_children: dict[tuple[str, str], _Children] = {}


def _of(model: str, task_type: str) -> _Children:
    found = _children.get((model, task_type))
    if found is None:
        found = _children[(model, task_type)] = _Children(
            _REQUESTS.labels(model, task_type, "success"), _TOKENS.labels(model, "input"),
            _TOKENS.labels(model, "output"), _COST.labels(model), _LATENCY.labels(model), _TTFT.labels(model),
        )  # fmt: skip
    return found


def succeeded(model: str, task_type: str, completion: Completion, cost: float) -> None:
    """Count a successful call."""
    children = _of(model, task_type)
    children.requests.inc()
    children.tokens_in.inc(completion.input_tokens)
    children.tokens_out.inc(completion.output_tokens)
    children.cost.inc(cost)
    children.latency.observe(completion.latency_ms / 1000)
    if completion.ttft_ms is not None:
        children.ttft.observe(completion.ttft_ms / 1000)


def failed(model: str, task_type: str, error_class: str) -> None:
    """Count a failed call."""
    _REQUESTS.labels(model, task_type, error_class).inc()
