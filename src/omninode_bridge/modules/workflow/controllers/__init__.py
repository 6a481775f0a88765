"""Workflow endpoints (scope ``workflow``): the runs (submit, list, read, cancel, retry) and their live view."""

from __future__ import annotations

from omninode_bridge.modules.workflow.controllers._live import WorkflowLiveController
from omninode_bridge.modules.workflow.controllers._runs import WorkflowController

__all__ = ["WorkflowController", "WorkflowLiveController"]
