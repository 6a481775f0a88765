"""The event the metrics module publishes: ``TaskExecuted`` on ``omninode_bridge_metrics_v1`` (via the outbox,
in the transaction that stores the execution). It carries measurements only, never prompts or answers."""

from __future__ import annotations

import msgspec

__all__ = ["EVENT_TYPE", "METRICS_TOPIC", "AttemptMeasured", "TaskExecuted"]

METRICS_TOPIC = "omninode_bridge_metrics_v1"
EVENT_TYPE = "TaskExecuted"


class AttemptMeasured(msgspec.Struct, kw_only=True):
    """One model tried."""

    model: str
    outcome: str
    latency_ms: float


class TaskExecuted(msgspec.Struct, kw_only=True):
    """An execution, measured and scored."""

    execution_id: str
    task_type: str
    model: str | None
    strategy: str
    routed: bool
    streamed: bool
    outcome: str
    error_class: str | None
    latency_ms: float
    ttft_ms: float | None
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    cost_usd: float
    quality_score: float | None
    attempts: list[AttemptMeasured]
