"""The workflow module's tables: runs, their tasks (forward and compensation), and every attempt.

The engine changes them with conditional statements (a task completes only while it is ``running`` with the
attempt number its worker claimed), so each state transition happens once whatever the number of processes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, Identity, Index, Integer, String, Text, false, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["WorkflowNote", "WorkflowRun", "WorkflowTask", "WorkflowTaskAttempt"]


class WorkflowRun(DefaultBase):
    """One submitted workflow."""

    __tablename__ = "wf_runs"
    __table_args__ = (
        Index("ix_wf_runs_idempotency", "idempotency_scope", unique=True,
              postgresql_where=text("idempotency_scope IS NOT NULL")),
        # By status, then id: the sweep of unsettled free runs pages through the running ones (batch.stranded).
        Index("ix_wf_runs_active", "status", "id",
              postgresql_where=text("status IN ('running', 'failing', 'compensating')")),
        # The runs claimed under their row's lock (max_parallel can bind).
        Index("ix_wf_runs_held", "id", postgresql_where=text("status IN ('running', 'compensating') AND NOT free")),
    )  # fmt: skip

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="Time-ordered (UUIDv7): the page cursor")
    name: Mapped[str] = mapped_column(String(100))
    namespace: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    compensate: Mapped[bool] = mapped_column(Boolean, default=True)
    max_parallel: Mapped[int] = mapped_column(Integer)
    free: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default=false(),
        comment="max_parallel cannot bind: its tasks are claimed by their rows",
    )
    has_ai: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), comment="The definition has an ai task (set at submit)"
    )
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    idempotency_scope: Mapped[str | None] = mapped_column(String(400), default=None)
    correlation_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    deadline_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class WorkflowTask(DefaultBase):
    """A task of a run; its compensation is a row of its own (``phase = 'compensate'``)."""

    __tablename__ = "wf_tasks"
    # No foreign key to wf_runs: written only with its run, checked on every hot statement (migration 0015).
    __table_args__ = (
        Index("ix_wf_tasks_leased", "lease_until", postgresql_where=text("status = 'running'")),
        # Per run: the claim's ready tasks and running count, a completion's waiting dependents.
        Index("ix_wf_tasks_run_ready", "run_id", "next_run_at", postgresql_where=text("status = 'ready'")),
        Index("ix_wf_tasks_run_busy", "run_id", "status", postgresql_where=text("status IN ('running', 'waiting')")),
        # The tasks any process claims by their own row (see services/claims.py).
        Index("ix_wf_tasks_free_ready", "next_run_at", postgresql_where=text("status = 'ready' AND free")),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phase: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, comment="Topological position (compensations run in reverse)")
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="params, retry, timeout_s, when")
    depends_on: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    pending_deps: Mapped[int] = mapped_column(Integer)
    free: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default=false(),
        comment="Claimed by its own row (its run is free, or a compensation)",
    )
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0, comment="The fence: a completion names its attempt")
    retry_base: Mapped[int] = mapped_column(Integer, default=0, comment="attempt when a retry of the run reset it")
    next_run_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    ready_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    output: Mapped[Any] = mapped_column(JSONB, nullable=True, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class WorkflowTaskAttempt(DefaultBase):
    """One attempt of a task: who ran it, when, and how it ended (``running`` until it does)."""

    __tablename__ = "wf_task_attempts"
    # No foreign key to wf_runs (migration 0015): written only by the claim of an existing task.
    __table_args__ = (Index("ux_wf_task_attempts", "run_id", "task_id", "phase", "attempt", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column()
    task_id: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class WorkflowNote(DefaultBase):
    """A note written by the example workflows' named queries (``note_put``, ``note_delete``, ``note_get``)."""

    __tablename__ = "wf_notes"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
