"""Workflow endpoints (scope ``workflow``): submit, list, read a run and a task, cancel, retry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import correlation_id_of
from omninode_bridge.core.inputs import Identifier, param, text
from omninode_bridge.core.inputs import limit as page_size
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.core.paging import UuidCursorQuery, uuid_cursor
from omninode_bridge.modules.workflow import schemas
from omninode_bridge.modules.workflow.models import WorkflowRun
from omninode_bridge.modules.workflow.state import WorkflowRuntime

__all__ = ["WorkflowController", "admit"]

Limit = Annotated[int, param(Annotated[int, page_size(500)])]
Wait = Annotated[
    int,
    param(description="Seconds to wait for the run to end (0: answer at once; then poll the status URL)", ge=0, le=20),
]
IdempotencyKey = Annotated[
    str | None, param(text(min_length=1, max_length=255), header=True, name="Idempotency-Key",
                      description="The same key (with the same API key) returns the same run")
]  # fmt: skip
TaskPath = Annotated[str, param(schemas.TaskId, path=True, description="A task id of the run.")]
Phase = Literal["forward", "compensate"]
_RUN = "The run, with every task"


async def admit(request: Request[Any, Any, Any], run: WorkflowRun) -> None:
    """Refuse (403) a key that may not use the run's namespace, as every endpoint of a run does."""
    if run.namespace is not None:
        await platform.require_namespace(request, run.namespace)


def _scope(request: Request[Any, Any, Any], key: str | None) -> str | None:
    if key is None:
        return None
    principal = platform.principal_or_none(request)
    return f"{principal.key_id if principal is not None else '-'}:{key}"


async def _unit_of_work(workflow: NamedDependency[WorkflowRuntime]) -> AsyncGenerator[UnitOfWork, None]:
    """The request's unit of work, on the module's database, resolved after ``workflow``.

    Litestar resolves a handler's independent dependencies (``workflow`` and the app's ``uow``) in an anyio task
    group per request; a chain resolves in sequence (see docs/architecture.md, "Typed wiring").
    """
    async with workflow.database.unit_of_work() as uow:
        yield uow


class WorkflowController(Controller):
    """Durable DAGs of AI, HTTP, SQL and event tasks (scope ``workflow``)."""

    path = "/workflows"
    dependencies = {"uow": Provide(_unit_of_work)}
    tags = ["workflow"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("workflow")

    @post("/", operation_id="submitWorkflow", summary="Submit a workflow", status_code=202,
          responses=error_responses({
              200: documented(schemas.RunState, "With `wait`: the run ended in time (completed, failed or cancelled)"),
              202: documented(schemas.RunAccepted, "Accepted and running (or, with a repeated Idempotency-Key, "
                              "the run it first created)"),
              409: "A submit with the same Idempotency-Key was being written and is not visible yet; retry",
              422: "Invalid workflow: `errors` names every issue (unknown dependency, cycle path, kind, params, "
                   "template references, limits)",
          }, body=True))  # fmt: skip
    async def submit(
        self,
        request: Request[Any, Any, Any],
        workflow: NamedDependency[WorkflowRuntime],
        data: JSONBody[schemas.WorkflowDefinition],
        wait: Wait = 0,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        """Validate the definition (every error at once), store it and start it; tasks run in parallel in the
        app's processes. With `wait`, answer with the final state if the run ends within that many seconds."""
        # No `uow` dependency: the service opens its unit of work (a generator dependency and its cleanup cost
        # more per request than the submit's own Python, py-spy of bench.workflow).
        if data.namespace is not None:
            await platform.require_namespace(request, data.namespace)
        correlation_id = correlation_id_of(request) or str(uuid.uuid4())
        run = await workflow.runs.submit(data, correlation_id=correlation_id,
                                         idempotency_scope=_scope(request, idempotency_key))  # fmt: skip
        if wait:
            ended = await workflow.runs.wait(workflow.database, run.run_id, float(wait))
            if ended is not None:
                async with workflow.database.unit_of_work() as read:
                    return Response(await workflow.runs.state(read, ended), status_code=200)
        accepted = schemas.RunAccepted(run_id=run.run_id, status=run.status, status_url=f"/workflows/{run.run_id}")
        return Response(accepted, status_code=202)

    @post("/batch", operation_id="submitWorkflows", summary="Submit many workflows at once", status_code=202,
          responses=error_responses({
              202: documented(schemas.BatchAccepted, "Accepted and running: the run ids, in the order of the "
                              "definitions"),
              422: "Invalid batch: `errors` names every issue of every definition by its index "
                   "(`workflows[3].tasks[0].depends_on`), or the batch is over `OMNINODE_WORKFLOW_MAX_BATCH` "
                   "workflows or `OMNINODE_WORKFLOW_MAX_BATCH_TASKS` tasks; nothing is stored",
          }, body=True))  # fmt: skip
    async def submit_batch(
        self,
        request: Request[Any, Any, Any],
        workflow: NamedDependency[WorkflowRuntime],
        uow: NamedDependency[UnitOfWork],
        data: JSONBody[schemas.WorkflowBatch],
    ) -> Response[schemas.BatchAccepted]:
        """Validate every definition (every error of every one at once), then store them all, with their tasks
        and events, in one statement: all or none. Each run is then as if submitted alone (`GET
        /workflows/{id}`). For many small runs this costs a fraction of one `POST /workflows` per run."""
        for namespace in sorted({d.namespace for d in data.workflows if d.namespace is not None}):
            await platform.require_namespace(request, namespace)
        correlation_id = correlation_id_of(request) or str(uuid.uuid4())
        run_ids = await workflow.runs.submit_many(uow, data.workflows, correlation_id=correlation_id)
        return Response(schemas.BatchAccepted(run_ids=run_ids), status_code=202)

    @get("/", operation_id="listWorkflows", summary="List workflow runs, newest first",
         responses=error_responses())  # fmt: skip
    async def list_runs(
        self,
        workflow: NamedDependency[WorkflowRuntime],
        uow: NamedDependency[UnitOfWork],
        status: Annotated[schemas.RunStatus | None, param(description="Only runs in this state")] = None,
        name: Annotated[str | None, param(Identifier)] = None,
        namespace: Annotated[str | None, param(Identifier)] = None,
        limit: Limit = 50,
        cursor: UuidCursorQuery = None,
    ) -> schemas.RunPage:
        """Runs by descending id (time order); `next_cursor` continues."""
        return await workflow.runs.page(uow, limit=limit, cursor=uuid_cursor(cursor), status=status, name=name,
                                        namespace=namespace)  # fmt: skip

    @get("/{run_id:uuid}", operation_id="getWorkflow", summary="A run and every task",
         responses=error_responses({404: "No such run"}))  # fmt: skip
    async def get_run(
        self, request: Request[Any, Any, Any], workflow: NamedDependency[WorkflowRuntime],
        uow: NamedDependency[UnitOfWork], run_id: FromPath[uuid.UUID],
    ) -> schemas.RunState:  # fmt: skip
        """The run's state and each task's status, attempts, timings, output or error."""
        run = await workflow.runs.get(uow, run_id)
        await admit(request, run)
        return await workflow.runs.state(uow, run)

    @get("/{run_id:uuid}/tasks/{task_id:str}", operation_id="getWorkflowTask", summary="One task with its attempts",
         responses=error_responses({404: "No such run or task"}))  # fmt: skip
    async def get_task(
        self, request: Request[Any, Any, Any], workflow: NamedDependency[WorkflowRuntime],
        uow: NamedDependency[UnitOfWork], run_id: FromPath[uuid.UUID], task_id: TaskPath,
        phase: Annotated[Phase, param(description="forward, or the task's compensation")] = "forward",
    ) -> schemas.TaskState:  # fmt: skip
        """The task's full output and every attempt (worker, timings, error)."""
        await admit(request, await workflow.runs.get(uow, run_id))
        return await workflow.runs.task(uow, run_id, task_id, phase)

    @post("/{run_id:uuid}/cancel", operation_id="cancelWorkflow", summary="Cancel a running run", status_code=200,
          responses=error_responses({404: "No such run", 409: "The run is not running"}))  # fmt: skip
    async def cancel(
        self, request: Request[Any, Any, Any], workflow: NamedDependency[WorkflowRuntime],
        uow: NamedDependency[UnitOfWork], run_id: FromPath[uuid.UUID],
        compensate: Annotated[bool, param(description="Run the compensations of completed tasks")] = True,
    ) -> schemas.RunSummary:  # fmt: skip
        """No new task starts; running tasks are cancelled; then the compensations of the completed tasks run in
        reverse order (unless `compensate=false`) and the run ends `cancelled`."""
        await admit(request, await workflow.runs.get(uow, run_id))
        await workflow.runs.cancel(uow, workflow.store, run_id, compensate=compensate)
        await uow.commit()
        workflow.live.changed([run_id])  # its waiting tasks were cancelled: live viewers see it at once
        return schemas.RunSummary(**_fresh(await workflow.runs.get(uow, run_id)))

    @post("/{run_id:uuid}/retry", operation_id="retryWorkflow", summary="Resume a failed run", status_code=200,
          responses=error_responses({404: "No such run", 409: "The run has not failed or been cancelled"}))  # fmt: skip
    async def retry(
        self, request: Request[Any, Any, Any], workflow: NamedDependency[WorkflowRuntime],
        uow: NamedDependency[UnitOfWork], run_id: FromPath[uuid.UUID],
    ) -> schemas.RunSummary:  # fmt: skip
        """Run the failed and cancelled tasks again (their dependents after them), keeping completed results."""
        await admit(request, await workflow.runs.get(uow, run_id))
        run = await workflow.runs.retry(uow, run_id)
        await uow.commit()
        workflow.live.changed([run_id])
        return schemas.RunSummary(**_fresh(run))


def _fresh(run: WorkflowRun) -> dict[str, Any]:
    return {"run_id": run.id, "name": run.name, "namespace": run.namespace, "status": run.status,
            "outcome": run.outcome, "error": run.error, "created_at": run.created_at,
            "finished_at": run.finished_at}  # fmt: skip
