"""Events of the workflow module, on ``omninode_bridge_workflow_events_v1`` keyed by run id (the outbox)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

__all__ = [
    "RUN_CANCELLED",
    "RUN_COMPENSATED",
    "RUN_COMPLETED",
    "RUN_FAILED",
    "RUN_STARTED",
    "RUN_SUBMITTED",
    "TASK_COMPLETED",
    "TASK_FAILED",
    "TASK_RETRYING",
    "TASK_SKIPPED",
    "TASK_STARTED",
    "WORKFLOW_TOPIC",
    "RunEvent",
    "TaskEvent",
]

WORKFLOW_TOPIC = "omninode_bridge_workflow_events_v1"
RUN_SUBMITTED = "WorkflowSubmitted"
RUN_STARTED = "WorkflowStarted"
RUN_COMPLETED = "WorkflowCompleted"
RUN_FAILED = "WorkflowFailed"
RUN_CANCELLED = "WorkflowCancelled"
RUN_COMPENSATED = "WorkflowCompensated"
TASK_STARTED = "WorkflowTaskStarted"
TASK_COMPLETED = "WorkflowTaskCompleted"
TASK_FAILED = "WorkflowTaskFailed"
TASK_RETRYING = "WorkflowTaskRetrying"
TASK_SKIPPED = "WorkflowTaskSkipped"


class RunEvent(msgspec.Struct, kw_only=True):
    """A run changed state."""

    run_id: uuid.UUID
    name: str
    status: str
    outcome: str | None = None
    error: str | None = None


class TaskEvent(msgspec.Struct, kw_only=True):
    """A task (``phase``: forward or compensate) started, completed, failed, is retrying or was skipped."""

    run_id: uuid.UUID
    task_id: str
    phase: str
    kind: str
    status: str
    attempt: int
    duration_ms: float | None = None
    error: str | None = None
    output: Any = None
