"""The metrics module's per-process state, built by its lifespan (held by the closure of ``build_module``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.metrics.contract import ModelsContract
from omninode_bridge.modules.metrics.services import ModelExecutor

__all__ = ["MetricsState"]


@dataclass(slots=True)
class MetricsState:
    """What the metrics endpoints share in one process.

    Attributes:
        catalog: The validated model catalog (set before anything connects).
        executor: The model executor (set while the app runs).
    """

    catalog: ModelsContract | None = None
    executor: ModelExecutor | None = None
    background: set[object] = field(default_factory=set)

    def running(self) -> ModelExecutor:
        """The executor; a 503 before the module started or after it stopped."""
        if self.executor is None:
            raise ProblemError(503, "The metrics module is not running.", headers={"Retry-After": "5"})
        return self.executor
