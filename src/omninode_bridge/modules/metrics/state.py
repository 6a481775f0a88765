"""The metrics module's per-app state, built by its ``build_module`` and filled by its lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.metrics.contract import ModelsContract
from omninode_bridge.modules.metrics.services import ModelExecutor

__all__ = ["MetricsState"]


@dataclass(slots=True)
class MetricsState:
    """What the metrics endpoints share in one app.

    Attributes:
        catalog: The validated model catalog (set by the start-up check, before anything connects).
        executor: The running executor (set by the lifespan; None before it starts and after it stops).
    """

    catalog: ModelsContract | None = None
    executor: ModelExecutor | None = field(default=None)

    def running(self) -> ModelExecutor:
        """The executor of the app; a 503 before the module started or after it stopped."""
        if self.executor is None:
            raise ProblemError(503, "The metrics module is not running.", headers={"Retry-After": "5"})
        return self.executor
