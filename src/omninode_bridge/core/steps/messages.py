"""Payloads of the lifecycle events every step run publishes (topic and list from its contract)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

__all__ = [
    "STATE_TRANSITION",
    "STEP_COMPLETED",
    "WORKFLOW_COMPLETED",
    "WORKFLOW_FAILED",
    "WORKFLOW_STARTED",
    "StateTransition",
    "StepCompleted",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowStarted",
]

WORKFLOW_STARTED = "WORKFLOW_STARTED"
WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
WORKFLOW_FAILED = "WORKFLOW_FAILED"
STEP_COMPLETED = "STEP_COMPLETED"
STATE_TRANSITION = "STATE_TRANSITION"


class WorkflowStarted(msgspec.Struct):
    workflow_id: uuid.UUID
    workflow_type: str
    namespace: str | None


class StateTransition(msgspec.Struct):
    workflow_id: uuid.UUID
    from_state: str
    to_state: str
    reason: str | None = None


class StepCompleted(msgspec.Struct):
    """Sent for every step that ran, whatever its outcome (``status``: completed, failed, skipped)."""

    workflow_id: uuid.UUID
    step: str
    status: str
    duration_ms: float
    error: str | None = None


class WorkflowCompleted(msgspec.Struct):
    workflow_id: uuid.UUID
    state: str
    degraded: bool
    processing_time_ms: float
    result: dict[str, Any]


class WorkflowFailed(msgspec.Struct):
    workflow_id: uuid.UUID
    state: str
    failed_step: str | None
    error: str
