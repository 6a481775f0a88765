"""HTTP bodies of the metrics endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import Identifier, MultilineText, text

__all__ = [
    "Attempt",
    "Constraints",
    "ExecuteRequest",
    "ExecuteResponse",
    "ExecutionDetail",
    "ExecutionPage",
    "ExecutionSummary",
    "Feedback",
    "FeedbackAccepted",
    "JudgeCall",
    "Message",
    "ModelInfo",
    "ModelList",
    "ModelSeries",
    "ModelStatsReport",
    "ModelsDashboard",
    "QualityCheck",
    "QualityReport",
    "Recommendation",
    "RecommendationList",
    "SeriesPoint",
    "TaskStats",
    "TaskTypeSeries",
    "Tokens",
]

TaskType = Annotated[str, text(min_length=1, max_length=64, pattern=r"[a-z][a-z0-9_]{0,63}")]
ModelId = Annotated[str, text(min_length=1, max_length=64, pattern=r"[a-z0-9][a-z0-9._-]{0,63}")]
Strategy = Literal["quality", "cost", "latency", "balanced"]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]


class Message(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A chat message, as in OpenAI's chat completions."""

    role: Literal["system", "user", "assistant", "tool"]
    content: MultilineText
    name: Identifier | None = None


class Constraints(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Limits on the model chosen (a model is excluded on measured evidence or its known price)."""

    max_cost_usd: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    max_latency_ms: Annotated[float, msgspec.Meta(gt=0, le=86_400_000)] | None = None
    min_quality: Score | None = None


class ExecuteRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An AI task: ``messages`` or ``prompt`` (one of them), routed unless ``model`` names one."""

    task_type: TaskType
    messages: Annotated[list[Message], msgspec.Meta(min_length=1, max_length=500)] | None = None
    prompt: MultilineText | None = None
    model: ModelId | None = None
    strategy: Strategy = "balanced"
    constraints: Constraints | None = None
    response_format: dict[str, Any] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None


class Attempt(msgspec.Struct, kw_only=True):
    """One model tried: ``success``, an error class (timeout, server_error, rate_limited, context_overflow,
    connection, bad_response, client_error), or skipped (cooldown, at_capacity)."""

    model: str
    outcome: str
    latency_ms: float
    detail: str | None = None


class Tokens(msgspec.Struct, kw_only=True):
    """Token counts; ``estimated`` when the upstream reported no usage."""

    input: int
    output: int
    estimated: bool


class QualityCheck(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One check of the task type's contract (``score`` only for a graded check: the judge's)."""

    name: str
    passed: bool
    detail: str | None = None
    score: float | None = None


class JudgeCall(msgspec.Struct, kw_only=True):
    """A judge model's grading of the answer (its cost is part of the execution's ``cost_usd``)."""

    model: str
    score: float | None
    latency_ms: float
    cost_usd: float


class QualityReport(msgspec.Struct, kw_only=True):
    """The combined score (0..1), each check, and the judge calls (when the task type has a judge)."""

    score: float
    checks: list[QualityCheck]
    judges: list[JudgeCall] = msgspec.field(default_factory=list)


class Recommendation(msgspec.Struct, kw_only=True):
    """A model ranked for a task type and strategy; ``confidence`` is its chance of being the best."""

    model: str
    utility: float
    expected_quality: float
    expected_latency_ms: float | None
    expected_cost_usd: float
    success_rate: float
    samples: int
    confidence: float
    reason: str
    cooling_down: bool = False


class ExecuteResponse(msgspec.Struct, kw_only=True):
    """The answer of ``POST /execute`` (and the last SSE event of a streamed one)."""

    execution_id: uuid.UUID
    response: str
    model: str
    attempts: list[Attempt]
    latency_ms: float
    ttft_ms: float | None
    tokens: Tokens
    cost_usd: float
    quality: QualityReport
    recommendations: list[Recommendation]
    finish_reason: str | None = None


class Feedback(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The real outcome of an execution, reported later (by a caller or the workflow module)."""

    score: Score
    label: Annotated[str, text(max_length=255)] | None = None


class FeedbackAccepted(msgspec.Struct, kw_only=True):
    """Feedback stored; the model's quality statistics now include it."""

    execution_id: uuid.UUID
    model: str
    task_type: str
    quality_mean: float
    quality_samples: int


class ExecutionSummary(msgspec.Struct, kw_only=True):
    """A stored execution."""

    execution_id: uuid.UUID
    task_type: str
    model: str | None
    strategy: str
    routed: bool
    streamed: bool
    outcome: str
    error_class: str | None
    latency_ms: float
    ttft_ms: float | None
    tokens: Tokens
    cost_usd: float
    quality_score: float | None
    feedback_score: float | None
    feedback_label: str | None
    correlation_id: str
    created_at: dt.datetime


class ExecutionPage(msgspec.Struct, kw_only=True):
    """A page of executions, newest first."""

    items: list[ExecutionSummary]
    next_cursor: str | None


class ExecutionDetail(ExecutionSummary, kw_only=True):
    """An execution with its attempts, quality checks and (if stored) prompt and answer."""

    attempts: list[Attempt]
    quality_checks: list[QualityCheck] | None
    metadata: dict[str, Any]
    prompt: Any | None = None
    response: str | None = None


class ModelInfo(msgspec.Struct, kw_only=True):
    """A catalog model and its live status."""

    id: str
    model: str
    base_url: str
    task_types: list[str]
    price_input_per_million: float
    price_output_per_million: float
    context_window: int
    max_concurrency: int
    timeout_seconds: float
    cooling_down_seconds: float | None
    in_flight: int
    recent_attempts: int
    recent_success_rate: float | None


class ModelList(msgspec.Struct, kw_only=True):
    """The catalog (empty when no model is configured)."""

    items: list[ModelInfo]


class TaskStats(msgspec.Struct, kw_only=True):
    """A model on one task type: the router's statistics and exact figures of the window asked for."""

    task_type: str
    samples: int
    successes: int
    success_rate: float
    latency_ewma_ms: float
    latency_p95_estimate_ms: float | None
    cost_mean_usd: float | None
    quality_mean: float
    quality_variance: float
    quality_samples: int
    window: dict[str, Any]


class ModelStatsReport(msgspec.Struct, kw_only=True):
    """``GET /models/{id}/stats``."""

    model: str
    since: dt.datetime | None
    task_types: list[TaskStats]


class RecommendationList(msgspec.Struct, kw_only=True):
    """Ranked models for a task type and strategy."""

    task_type: str
    strategy: str
    items: list[Recommendation]


class SeriesPoint(msgspec.Struct, kw_only=True):
    """One model's executions of a task type in one time bucket (answered executions: the model that answered)."""

    start: dt.datetime
    executions: int
    share: float
    success_rate: float
    quality_mean: float | None
    latency_mean_ms: float | None
    cost_mean_usd: float | None


class ModelSeries(msgspec.Struct, kw_only=True):
    """A model's figures over time on one task type."""

    model: str
    executions: int
    share: float
    points: list[SeriesPoint]


class TaskTypeSeries(msgspec.Struct, kw_only=True):
    """A task type's models over time, with what the router recommends now."""

    task_type: str
    executions: int
    recommended: str | None
    recommendations: list[Recommendation]
    models: list[ModelSeries]


class ModelsDashboard(msgspec.Struct, kw_only=True):
    """The data of the models page: per task type, each model's quality, latency, cost and traffic share in time
    buckets of ``bucket_seconds`` from ``since`` to ``until``."""

    since: dt.datetime
    until: dt.datetime
    bucket_seconds: int
    strategy: str
    task_types: list[TaskTypeSeries]
