"""Reading recorded workflow runs."""

from __future__ import annotations

import uuid
from typing import cast

from sqlalchemy import select

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.steps import FsmTransitionRow, StepStatus, WorkflowExecutionRow, WorkflowStepRow
from omninode_bridge.modules.orchestrator.schemas import FsmTransition, WorkflowExecution, WorkflowStep

__all__ = ["load_execution"]


async def load_execution(uow: UnitOfWork, workflow_id: uuid.UUID) -> WorkflowExecution | None:
    """A recorded workflow with its steps and transitions, or None."""
    row = await uow.session.get(WorkflowExecutionRow, workflow_id)
    if row is None:
        return None
    steps = (
        await uow.session.scalars(
            select(WorkflowStepRow).where(WorkflowStepRow.workflow_id == workflow_id).order_by(WorkflowStepRow.position)
        )
    ).all()
    transitions = (
        await uow.session.scalars(
            select(FsmTransitionRow).where(FsmTransitionRow.workflow_id == workflow_id).order_by(FsmTransitionRow.id)
        )
    ).all()
    return WorkflowExecution(
        workflow_id=row.id, workflow_type=row.workflow_type, correlation_id=row.correlation_id,
        namespace=row.namespace, state=row.state, degraded=row.degraded, started_at=row.started_at,
        completed_at=row.completed_at, duration_ms=row.duration_ms, error=row.error, result=row.result,
        # cast: the column holds only the statuses the step runner writes (a StepStatus).
        steps=[WorkflowStep(s.name, s.step_type, cast("StepStatus", s.status), s.optional, s.duration_ms,
                            s.timeout_ms, s.error, s.output) for s in steps],
        transitions=[FsmTransition(t.from_state, t.to_state, t.at, t.reason) for t in transitions],
    )  # fmt: skip
