"""The workflow module (WorkflowCoordinator): durable DAGs of AI, HTTP, SQL and event tasks on PostgreSQL.

Endpoints (scope ``workflow``): ``POST /workflows`` (validate, store, start; ``?wait=N``; ``Idempotency-Key``),
``GET /workflows``, ``GET /workflows/{id}``, ``GET /workflows/{id}/tasks/{task_id}``,
``POST /workflows/{id}/cancel``, ``POST /workflows/{id}/retry``, ``GET /workflows/{id}/events`` (SSE) and the
page ``/workflows/{id}/view``. Runs and tasks are rows (``wf_runs``,
``wf_tasks``, ``wf_task_attempts``); every app process runs an :class:`~.services.Engine` that claims ready
tasks under a lease. Events go to ``omninode_bridge_workflow_events_v1`` through the outbox, keyed by run id.

Public interface: :func:`build_module`, the settings group, the AI port :class:`AiTasks` (the composition root
hands in the metrics module's executor behind it) and the event payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar.di import Provide

from omninode_bridge.core.module import Module, Resources
from omninode_bridge.modules.workflow.contract import QueriesContract, load_queries, query_database_urls
from omninode_bridge.modules.workflow.controllers import WorkflowController, WorkflowLiveController
from omninode_bridge.modules.workflow.messages import WORKFLOW_TOPIC, RunEvent, TaskEvent
from omninode_bridge.modules.workflow.services import (
    AiTasks,
    Engine,
    EngineStore,
    Kinds,
    LiveHub,
    LivePublisher,
    QueryDatabases,
    RunService,
    SafeHttp,
    Waker,
)
from omninode_bridge.modules.workflow.settings import WorkflowSettings
from omninode_bridge.modules.workflow.state import WorkflowRuntime, WorkflowState

__all__ = ["WORKFLOW_TOPIC", "AiTasks", "RunEvent", "TaskEvent", "WorkflowSettings", "build_module"]


def build_module(
    settings: WorkflowSettings,
    *,
    ai: AiTasks | None = None,
    contracts_dir: str | None = None,
    requires: tuple[str, ...] = (),
) -> Module:
    """The workflow module.

    Args:
        settings: The module's settings group.
        ai: Runs ``ai`` tasks (the metrics module's executor behind the port); None: ``ai`` tasks fail.
        contracts_dir: Where ``workflow/queries.yaml`` is (unless ``OMNINODE_WORKFLOW_QUERIES_FILE``).
        requires: Modules that must start first (the one ``ai`` is served by).
    """
    module_state = WorkflowState()
    queries: list[QueriesContract] = []

    def check() -> None:
        queries[:] = [load_queries(settings.queries_file, contracts_dir)]  # a bad file stops start-up here

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        contract = load_queries(settings.queries_file, contracts_dir)
        named = contract.by_name()
        http = SafeHttp(settings.http_allow_list(), settings.http_max_response_bytes)
        # Live views: the engine's publisher reports which runs each commit changed (see services.live).
        live = LiveHub(resources.redis)
        live_tasks = [asyncio.create_task(live.publish_loop(), name="workflow-live-publish"),
                      asyncio.create_task(live.subscribe_loop(), name="workflow-live-subscribe")]  # fmt: skip
        waker = Waker(resources.database)
        store = EngineStore(LivePublisher(resources.publisher, live), waker)
        # Other databases' pools open on a query's first use; the URLs were checked by load_queries.
        query_databases = QueryDatabases(query_database_urls(contract), resources.database.settings)
        kinds = Kinds(resources.database, resources.publisher, resources.catalog, http, named, ai, query_databases)
        runs = RunService(settings, resources.publisher, set(named), waker, resources.database)
        module_state.runtime = WorkflowRuntime(runs, store, resources.database, live)
        engine_task: asyncio.Task[None] | None = None
        if settings.engine:
            engine = Engine(settings, resources.database, store, kinds, waker)
            engine_task = asyncio.create_task(engine.run(), name="workflow-engine")
        try:
            yield
        finally:
            module_state.runtime = None
            if engine_task is not None:
                engine_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await engine_task
            for job in live_tasks:
                job.cancel()
            await asyncio.gather(*live_tasks, return_exceptions=True)
            await http.aclose()
            await waker.aclose()
            await query_databases.aclose()

    return Module(
        name="workflow",
        requires=requires,
        route_handlers=[WorkflowController, WorkflowLiveController],
        publishes=[WORKFLOW_TOPIC],
        dependencies={"workflow": Provide(module_state.running, sync_to_thread=False)},
        lifespans=[lifespan],
        checks=[check],
    )
