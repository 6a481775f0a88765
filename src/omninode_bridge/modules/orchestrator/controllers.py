"""Read access to recorded workflows (the orchestrator's execution history)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.modules.orchestrator.schemas import WorkflowExecution
from omninode_bridge.modules.orchestrator.services import load_execution
from omninode_bridge.platform import API_KEY_SECURITY, require_namespace, require_scope

__all__ = ["WorkflowExecutionController"]


class WorkflowExecutionController(Controller):
    """Orchestrated workflow runs (scope ``stamping``: they are the stamping flow's runs)."""

    path = "/orchestrator/workflows"
    tags = ["orchestrator"]
    opt = require_scope("stamping")
    security = API_KEY_SECURITY

    @get("/{workflow_id:uuid}", operation_id="getWorkflowExecution", summary="A workflow run with steps and FSM",
         responses=error_responses({404: "No workflow run with this id"}))  # fmt: skip
    async def get_execution(
        self, request: Request[Any, Any, Any], uow: NamedDependency[UnitOfWork], workflow_id: FromPath[uuid.UUID]
    ) -> WorkflowExecution:
        """State, steps (status, duration, timeout, error) and FSM transitions of one run (404 if unknown)."""
        execution = await load_execution(uow, workflow_id)
        if execution is None:
            raise ProblemError(404, f"No workflow {workflow_id}.", slug="not-found")
        if execution.namespace is not None:
            await require_namespace(request, execution.namespace)
        return execution
