"""The orchestrator module: read access to recorded workflow runs (``GET /orchestrator/workflows/{id}``).

The runs are made by the modules that own a workflow (stamping) with the core step engine
(:mod:`omninode_bridge.core.steps`), which records them in the seed's ``workflow_executions``,
``workflow_steps`` and ``fsm_transitions`` tables; this module reads them.
"""

from __future__ import annotations

from omninode_bridge.core.module import Module
from omninode_bridge.modules.orchestrator import schemas
from omninode_bridge.modules.orchestrator.controllers import WorkflowExecutionController

__all__ = ["build_module", "schemas"]


def build_module() -> Module:
    """The orchestrator module: its read API only (no state, no lifespan)."""
    return Module(name="orchestrator", route_handlers=[WorkflowExecutionController])
