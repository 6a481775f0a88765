"""The metrics module (ModelMetrics): ``POST /execute`` over OpenAI-compatible model endpoints, measured,
scored, and routed by what it has learned.

Endpoints (scope ``metrics``): ``POST /execute`` (JSON, or SSE with ``stream: true``),
``POST /executions/{id}/feedback``, ``GET /executions``, ``GET /executions/{id}``, ``GET /models``,
``GET /models/{id}/stats``, ``GET /recommendations``, and the models page ``GET /models-dashboard`` (its data:
``GET /models-dashboard/data``). Every execution is stored in ``metrics_executions``
(one row per execution and per attempt) and published as ``TaskExecuted`` on ``omninode_bridge_metrics_v1``
through the outbox. The catalog is ``contracts/models.yaml`` (``OMNINODE_MODELS_FILE``), validated at start-up.

Public interface: :func:`build_module`, :class:`ModelExecutor` (what the workflow module calls to run AI
tasks), the settings group, and the event payload :class:`TaskExecuted`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import structlog
from litestar.di import Provide

from omninode_bridge.core.health import ComponentHealth
from omninode_bridge.core.module import Module, Resources
from omninode_bridge.modules.metrics.contract import ModelsContract, load_models
from omninode_bridge.modules.metrics.controllers import MetricsController
from omninode_bridge.modules.metrics.dashboard import ModelsDashboardController
from omninode_bridge.modules.metrics.messages import EVENT_TYPE, METRICS_TOPIC, TaskExecuted
from omninode_bridge.modules.metrics.schemas import ExecuteRequest, Feedback
from omninode_bridge.modules.metrics.services import (
    Coordination,
    ExecutionFailed,
    ModelExecutor,
    Redact,
    UpstreamClient,
)
from omninode_bridge.modules.metrics.settings import MetricsSettings
from omninode_bridge.modules.metrics.state import MetricsState

__all__ = [
    "EVENT_TYPE",
    "METRICS_TOPIC",
    "ExecuteRequest",
    "ExecutionFailed",
    "Feedback",
    "MetricsSettings",
    "MetricsState",
    "ModelExecutor",
    "ModelsContract",
    "Redact",
    "TaskExecuted",
    "build_module",
]

log = structlog.get_logger(__name__)


def build_module(
    settings: MetricsSettings, *, redact: Redact | None = None, state: MetricsState | None = None
) -> Module:
    """The metrics module.

    Args:
        settings: The module's settings group.
        redact: Replaces secrets in prompts and answers before they are stored (``store_prompts``); without it
            they are never stored.
        state: The module's state object, when the composition root hands its executor to another module
            (the workflow module's AI port); a new one otherwise.

    Returns:
        The registration; its state lives in this closure, never in a shared bag.
    """
    module_state = state if state is not None else MetricsState()

    def check() -> None:
        module_state.catalog = load_models(settings.models_file)  # a bad catalog stops start-up here
        if settings.store_prompts and redact is None:
            raise ValueError("OMNINODE_METRICS_STORE_PROMPTS needs a redactor: prompts are stored only redacted")

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        catalog = load_models(settings.models_file)  # this app's own (the check validated it already)
        client = UpstreamClient(catalog.models, os.environ)
        coordination = Coordination(
            resources.redis,
            cooldown_failures=settings.cooldown_failures,
            cooldown_seconds=settings.cooldown_seconds,
            lease_seconds=settings.concurrency_lease_seconds,
        )
        module_state.catalog = catalog
        executor = ModelExecutor(
            settings, catalog, client, coordination, resources.database, resources.publisher, redact
        )
        module_state.executor = executor
        executor.aggregator.start()
        if not catalog.models:
            log.warning("metrics: the model catalog is empty; /execute answers 503 until a model is configured")
        try:
            yield
        finally:
            module_state.executor = None
            await executor.drain(seconds=10.0)  # streamed executions still storing their measurements
            await executor.aggregator.stop()  # the durable statistics of the last executions
            await client.aclose()
            coordination.close()

    async def health() -> ComponentHealth:
        """Degraded when no model can be called: the catalog is empty, or every model is cooling down."""
        executor = module_state.executor
        if executor is None:
            return ComponentHealth(status="down", detail="the metrics module is not running")
        ids = [m.id for m in executor.catalog.models]
        if not ids:
            return ComponentHealth(status="degraded", detail="the model catalog is empty: POST /execute answers 503")
        unserved = sorted(t for t in executor.catalog.task_types if not executor.catalog.serving(t))
        cooling = await executor.coordination.cooling(ids)
        if len(cooling) == len(ids):
            return ComponentHealth(status="degraded", detail="every model is cooling down after failures")
        notes = [f"{len(cooling)} of {len(ids)} models cooling down"] if cooling else []
        notes += [f"no model serves {', '.join(unserved)}"] if unserved else []
        return ComponentHealth(status="up", detail="; ".join(notes) or None)

    return Module(
        name="metrics",
        route_handlers=[MetricsController, ModelsDashboardController],
        publishes=[METRICS_TOPIC],
        dependencies={"metrics": Provide(module_state.running, sync_to_thread=False)},
        lifespans=[lifespan],
        checks=[check],
        health=health,
    )
