"""Run-record tables (a run, its steps, its FSM transitions), under the names seed 001 gives them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, ForeignKey, Identity, Index, Integer, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["FsmTransitionRow", "WorkflowExecutionRow", "WorkflowStepRow"]


class WorkflowExecutionRow(DefaultBase):
    """One step run (e.g. a ``/stamp`` request), written once when it ends."""

    __tablename__ = "workflow_executions"
    __table_args__ = (
        Index("ix_workflow_executions_correlation_id", "correlation_id"),
        Index("ix_workflow_executions_namespace_started", "namespace", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="The workflow id")
    workflow_type: Mapped[str] = mapped_column(String(100))
    contract_version: Mapped[str] = mapped_column(String(32))
    correlation_id: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str | None] = mapped_column(String(255), default=None)
    state: Mapped[str] = mapped_column(String(32))
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    duration_ms: Mapped[float | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class WorkflowStepRow(DefaultBase):
    """One step of a run, in contract order."""

    __tablename__ = "workflow_steps"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_executions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(String(100))
    step_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    optional: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    duration_ms: Mapped[float]
    timeout_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    output: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class FsmTransitionRow(DefaultBase):
    """One state change of a run, checked against the contract's FSM."""

    __tablename__ = "fsm_transitions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_executions.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
