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
        catalog: The validated model catalog (set by the start-up check, before anything connects).
        executors: The running executor of each app using this registration, by the id of the app's runtime:
            today one module registration can serve several apps in a process (tests build many); the typed
            wiring builds one registration per app, and this becomes a single attribute.
    """

    catalog: ModelsContract | None = None
    executors: dict[int, ModelExecutor] = field(default_factory=dict)

    def running(self, runtime_id: int) -> ModelExecutor:
        """The executor of an app; a 503 before the module started or after it stopped."""
        executor = self.executors.get(runtime_id)
        if executor is None:
            raise ProblemError(503, "The metrics module is not running.", headers={"Retry-After": "5"})
        return executor
