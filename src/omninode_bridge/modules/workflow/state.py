"""The workflow module's per-app state, built by its ``build_module`` and filled by its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.workflow.services import EngineStore, LiveHub, RunService

__all__ = ["WorkflowRuntime", "WorkflowState"]


@dataclass(frozen=True, slots=True)
class WorkflowRuntime:
    """What the endpoints use: the run use cases, the engine's statements (cancel), the database (wait), the
    live views' hub."""

    runs: RunService
    store: EngineStore
    database: Database
    live: LiveHub


@dataclass(slots=True)
class WorkflowState:
    """Set by the lifespan; None before it starts and after it stops."""

    runtime: WorkflowRuntime | None = None

    def running(self) -> WorkflowRuntime:
        """The runtime; a 503 before the module started or after it stopped."""
        if self.runtime is None:
            raise ProblemError(503, "The workflow module is not running.", headers={"Retry-After": "5"})
        return self.runtime
