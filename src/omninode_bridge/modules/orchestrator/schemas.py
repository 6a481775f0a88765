"""The workflow records the orchestrator's read API returns (HTTP DTOs)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from omninode_bridge.core.steps import StepStatus

__all__ = ["FsmTransition", "WorkflowExecution", "WorkflowStep"]


class WorkflowStep(msgspec.Struct):
    """How one step of a workflow went."""

    name: str
    type: str
    status: StepStatus
    optional: bool
    duration_ms: float
    timeout_ms: int
    error: str | None = None
    output: dict[str, Any] = {}


class FsmTransition(msgspec.Struct):
    """One state change of a workflow."""

    from_state: str
    to_state: str
    at: dt.datetime
    reason: str | None = None


class WorkflowExecution(msgspec.Struct):
    """A workflow run as recorded: its state, steps and transitions."""

    workflow_id: uuid.UUID
    workflow_type: str
    correlation_id: str
    namespace: str | None
    state: str
    degraded: bool
    started_at: dt.datetime
    completed_at: dt.datetime | None
    duration_ms: float | None
    error: str | None
    result: dict[str, Any]
    steps: list[WorkflowStep]
    transitions: list[FsmTransition]
