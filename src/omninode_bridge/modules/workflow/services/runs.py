"""Use cases of the workflow API: read, list, cancel, retry (submit: ``services.submit``). Each commits once."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from sqlalchemy import select, text

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.paging import newest_first
from omninode_bridge.modules.workflow import schemas
from omninode_bridge.modules.workflow.models import WorkflowRun, WorkflowTask, WorkflowTaskAttempt
from omninode_bridge.modules.workflow.services.submit import Submitter

__all__ = ["ENDED", "RunService"]

ENDED = frozenset({"completed", "failed", "cancelled"})


def _summary(run: WorkflowRun) -> dict[str, Any]:
    return {"run_id": run.id, "name": run.name, "namespace": run.namespace, "status": run.status,
            "outcome": run.outcome, "error": run.error, "created_at": run.created_at,
            "finished_at": run.finished_at}  # fmt: skip


def _task(row: WorkflowTask, attempts: list[WorkflowTaskAttempt] | None = None) -> schemas.TaskState:
    log = None
    if attempts is not None:
        log = [schemas.TaskAttempt(attempt=a.attempt, worker=a.worker, status=a.status, started_at=a.started_at,
                                   finished_at=a.finished_at, error=a.error) for a in attempts]  # fmt: skip
    return schemas.TaskState(task_id=row.task_id, phase=row.phase, kind=row.kind, status=row.status,
                             depends_on=list(row.depends_on), attempts=row.attempt, ready_at=row.ready_at,
                             started_at=row.started_at, finished_at=row.finished_at, output=row.output,
                             error=row.error, attempt_log=log)  # fmt: skip


class RunService(Submitter):
    """Workflow runs as the API sees them: submitted (see :class:`Submitter`), read, listed, cancelled, retried.

    Args:
        settings: Limits.
        publisher: Stages run events.
        queries: Names of the declared SQL queries.
        waker: Wakes the engines after a submit, cancel or retry commits; tells ``wait`` a run moved.
        database: Where a single submit opens its unit of work.
    """

    async def get(self, uow: UnitOfWork, run_id: uuid.UUID) -> WorkflowRun:
        """The run.

        Raises:
            ProblemError: 404.
        """
        run = await uow.session.get(WorkflowRun, run_id, populate_existing=True)
        if run is None:
            raise ProblemError(404, "No such workflow run.", slug="not-found")
        return run

    async def state(self, uow: UnitOfWork, run: WorkflowRun) -> schemas.RunState:
        """The run with every task (forward ones in topological order, then compensations as they ran)."""
        tasks = (await uow.session.scalars(select(WorkflowTask).where(WorkflowTask.run_id == run.id)
                                           .order_by(WorkflowTask.phase.desc(), WorkflowTask.position)
                                           )).all()  # fmt: skip
        return schemas.RunState(**_summary(run), inputs=run.inputs, tasks=[_task(t) for t in tasks])

    async def task(self, uow: UnitOfWork, run_id: uuid.UUID, task_id: str, phase: str) -> schemas.TaskState:
        """One task with its attempts.

        Raises:
            ProblemError: 404.
        """
        row = await uow.session.get(WorkflowTask, (run_id, task_id, phase))
        if row is None:
            raise ProblemError(404, "No such task in this run.", slug="not-found")
        attempts = (await uow.session.scalars(select(WorkflowTaskAttempt).where(
            WorkflowTaskAttempt.run_id == run_id, WorkflowTaskAttempt.task_id == task_id,
            WorkflowTaskAttempt.phase == phase).order_by(WorkflowTaskAttempt.attempt))).all()  # fmt: skip
        return _task(row, list(attempts))

    async def page(self, uow: UnitOfWork, *, limit: int, cursor: uuid.UUID | None, status: str | None,
                   name: str | None, namespace: str | None) -> schemas.RunPage:  # fmt: skip
        """Runs newest first."""
        rows, next_cursor = await newest_first(uow.session, WorkflowRun, limit=limit, cursor=cursor, filters=[
            (status, lambda: WorkflowRun.status == status), (name, lambda: WorkflowRun.name == name),
            (namespace, lambda: WorkflowRun.namespace == namespace)])  # fmt: skip
        return schemas.RunPage(items=[schemas.RunSummary(**_summary(r)) for r in rows], next_cursor=next_cursor)

    async def cancel(self, uow: UnitOfWork, store: Any, run_id: uuid.UUID, *, compensate: bool) -> WorkflowRun:
        """Stop a running run: no new task starts, running ones are cancelled, then compensation (unless not).

        Raises:
            ProblemError: 404; 409 when the run is not running.
        """
        run = await self.get(uow, run_id)
        row = await store.start_failing(uow, run_id, "cancelled", cancel=True, compensate=compensate)
        if row is None:
            raise ProblemError(409, f"The run is {run.status}; only a running run can be cancelled.", slug="conflict")
        uow.after_commit(self.waker)
        return run

    async def retry(self, uow: UnitOfWork, run_id: uuid.UUID) -> WorkflowRun:
        """Resume a failed or cancelled run from its failed and cancelled tasks, keeping completed results.

        Raises:
            ProblemError: 404; 409 when the run has not failed or been cancelled.
        """
        run = await self.get(uow, run_id)
        locked = (await uow.session.execute(text(
            "UPDATE wf_runs SET status = 'running', outcome = NULL, error = NULL, finished_at = NULL, "
            "cancel_requested = false, compensate = (definition ->> 'on_failure') = 'compensate', "
            "deadline_at = clock_timestamp() + make_interval(secs => (definition ->> 'timeout_s')::float) "
            "WHERE id = :run AND status IN ('failed', 'cancelled') RETURNING id"),
            {"run": run_id})).first()  # fmt: skip
        if locked is None:
            raise ProblemError(409, f"The run is {run.status}; only a failed or cancelled run can be retried.",
                               slug="conflict")  # fmt: skip
        await uow.session.execute(text("DELETE FROM wf_tasks WHERE run_id = :run AND phase = 'compensate'"),
                                  {"run": run_id})  # fmt: skip
        await uow.session.execute(text(
            "UPDATE wf_tasks t SET retry_base = t.attempt, error = NULL, output = NULL, finished_at = NULL, "
            "pending_deps = (SELECT count(*) FROM wf_tasks d WHERE d.run_id = t.run_id AND d.phase = 'forward' "
            "  AND d.task_id = ANY(t.depends_on) AND d.status NOT IN ('completed', 'skipped')) "
            "WHERE t.run_id = :run AND t.phase = 'forward' AND t.status IN ('failed', 'cancelled')"),
            {"run": run_id})  # fmt: skip
        await uow.session.execute(
            text(
                "UPDATE wf_tasks SET status = CASE WHEN pending_deps = 0 THEN 'ready' ELSE 'waiting' END, "
                "next_run_at = CASE WHEN pending_deps = 0 THEN clock_timestamp() END, "
                "ready_at = CASE WHEN pending_deps = 0 THEN clock_timestamp() END "
                "WHERE run_id = :run AND phase = 'forward' AND status IN ('failed', 'cancelled')"
            ),
            {"run": run_id},
        )
        uow.after_commit(self.waker)
        return await self.get(uow, run_id)

    async def wait(self, database: Database, run_id: uuid.UUID, seconds: float) -> WorkflowRun | None:
        """The run once it ended, or None when ``seconds`` passed first."""
        deadline = time.monotonic() + seconds
        delay = 0.05
        # Woken when this process commits a transition of the run; polling covers the other processes' commits.
        waiter = self.waker.watch(run_id)
        try:
            while True:
                waiter.clear()
                async with database.unit_of_work() as uow:
                    status = await uow.session.scalar(select(WorkflowRun.status).where(WorkflowRun.id == run_id))
                if status in ENDED or time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.5, 0.25)
        finally:
            self.waker.unwatch(run_id, waiter)
        if status not in ENDED:
            return None
        async with database.unit_of_work() as uow:
            return await self.get(uow, run_id)
