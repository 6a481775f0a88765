"""Metrics tables: one row per execution and per attempt, and the durable per (task type, model) statistics."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Identity, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["MetricsExecution", "MetricsModelStats"]


class MetricsExecution(DefaultBase):
    """An execution (``attempt = 0``: the outcome the caller saw) or one of its attempts (``attempt >= 1``: a
    model called). Prompts and answers are stored only with ``OMNINODE_METRICS_STORE_PROMPTS``, redacted."""

    __tablename__ = "metrics_executions"
    __table_args__ = (
        Index("uq_metrics_executions_attempt", "execution_id", "attempt", unique=True),
        Index("ix_metrics_executions_task_type_id", "task_type", "id"),
        Index("ix_metrics_executions_model_id_id", "model_id", "id"),
        Index("ix_metrics_executions_key_created", "key_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    execution_id: Mapped[uuid.UUID]
    attempt: Mapped[int] = mapped_column(Integer)
    task_type: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(16))
    routed: Mapped[bool]
    streamed: Mapped[bool]
    outcome: Mapped[str] = mapped_column(String(32))
    error_class: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(String(400))
    latency_ms: Mapped[float]
    ttft_ms: Mapped[float | None]
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    tokens_estimated: Mapped[bool]
    cost_usd: Mapped[float]
    quality_score: Mapped[float | None]
    quality_checks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    feedback_score: Mapped[float | None]
    feedback_label: Mapped[str | None] = mapped_column(String(255))
    key_id: Mapped[uuid.UUID | None]
    correlation_id: Mapped[str] = mapped_column(String(255))
    prompt: Mapped[Any | None] = mapped_column(JSONB)
    response: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


class MetricsModelStats(DefaultBase):
    """What the router has learned of a model on a task type (the durable copy; Redis holds the fast one)."""

    __tablename__ = "metrics_model_stats"

    task_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    samples: Mapped[int] = mapped_column(BigInteger)
    successes: Mapped[int] = mapped_column(BigInteger)
    latency_ewma_ms: Mapped[float]
    latency_ewvar: Mapped[float]
    cost_total_usd: Mapped[float]
    quality_n: Mapped[int] = mapped_column(BigInteger)
    quality_mean: Mapped[float]
    quality_m2: Mapped[float]
    updated_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
