"""The engine's task transitions: claim, renew a lease, complete or fail an attempt, hand tasks back."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from sqlalchemy import text

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.modules.workflow import messages
from omninode_bridge.modules.workflow.services.claims import CLAIM
from omninode_bridge.modules.workflow.services.store._claimed import Claimed, backoff_seconds
from omninode_bridge.modules.workflow.services.store._failing import FailingRuns, _json

__all__ = ["EngineStore"]


class EngineStore(FailingRuns):
    """The engine's transitions, each in the caller's unit of work (the caller commits).

    Args:
        publisher: Stages the run and task events in the same transaction.
        waker: Wakes the engines once a transaction that made tasks ready commits.
    """

    async def claim(self, uow: UnitOfWork, worker: str, limit: int, lease_s: float,
                    kinds: list[str] | None = None) -> list[Claimed]:  # fmt: skip
        """Take up to ``limit`` runnable tasks (ready, or running under an expired lease; of ``kinds`` only when
        given) and start an attempt.

        The runs' rows stay locked until the caller commits; ``batch.start_batch`` writes the attempt rows and
        the started events in the same transaction."""
        rows = (await uow.session.execute(CLAIM, {"runs": max(limit, 16), "limit": limit, "worker": worker,
                                                     "lease": lease_s, "kinds": kinds})).all()  # fmt: skip
        if not rows:
            return []
        claimed = [Claimed(r.run_id, r.task_id, r.phase, r.kind, r.spec, r.attempt, r.retry_base, r.ready_at,
                           r.started_at, r.inputs, r.name, r.correlation_id, bool(r.has_ai), r.free, r.tid)
                   for r in rows]  # fmt: skip
        expired = [r for r in rows if r.previous == "running"]
        if expired:  # the attempt whose process died (its lease ran out) ends here
            await uow.session.execute(text(
                "UPDATE wf_task_attempts SET status = 'lease_expired', finished_at = clock_timestamp() "
                "WHERE run_id = :run AND task_id = :task AND phase = :phase AND status = 'running'"),
                [{"run": r.run_id, "task": r.task_id, "phase": r.phase} for r in expired])  # fmt: skip
        return claimed

    async def renew(self, uow: UnitOfWork, task: Claimed, lease_s: float) -> tuple[bool, bool]:
        """Extend the lease; returns (still ours, the run is failing and stops its running tasks)."""
        row = (await uow.session.execute(text(
            "UPDATE wf_tasks t SET lease_until = clock_timestamp() + make_interval(secs => :lease) FROM wf_runs r "
            "WHERE r.id = t.run_id AND t.run_id = :run AND t.task_id = :task AND t.phase = :phase "
            "AND t.attempt = :attempt AND t.status = 'running' RETURNING r.cancel_requested, r.status"),
            {"lease": lease_s, "run": task.run_id, "task": task.task_id, "phase": task.phase,
             "attempt": task.attempt})).first()  # fmt: skip
        if row is None:
            return False, False
        # A failing run (a task failed, its deadline passed, or it was cancelled) starts nothing new and stops
        # what runs, so that its compensation can begin.
        stop = task.phase == "forward" and row.status == "failing"
        return True, stop

    async def ai_executions(self, uow: UnitOfWork, run_id: uuid.UUID) -> list[str]:
        """The metrics execution ids of a run's completed ai tasks (for feedback)."""
        rows = await uow.session.execute(text(
            "SELECT output ->> 'execution_id' FROM wf_tasks WHERE run_id = :run AND phase = 'forward' "
            "AND kind = 'ai' AND status = 'completed' AND output ? 'execution_id'"), {"run": run_id})  # fmt: skip
        return [str(r[0]) for r in rows]

    async def outputs(self, uow: UnitOfWork, run_id: uuid.UUID, task_ids: list[str]) -> dict[str, Any]:
        """The outputs of completed (or skipped: null) forward tasks of a run."""
        if not task_ids:
            return {}
        rows = await uow.session.execute(
            text(
                "SELECT task_id, output FROM wf_tasks WHERE run_id = :run AND phase = 'forward' "
                "AND task_id = ANY(:ids) AND status IN ('completed', 'skipped')"
            ),
            {"run": run_id, "ids": task_ids},
        )
        return {r.task_id: r.output for r in rows}

    async def _lock_run(self, uow: UnitOfWork, run_id: uuid.UUID) -> Any:
        return (await uow.session.execute(text(
            "SELECT id, name, status, compensate, cancel_requested, error FROM wf_runs WHERE id = :run FOR UPDATE"),
            {"run": run_id})).first()  # fmt: skip

    async def _finish_task(self, uow: UnitOfWork, task: Claimed, status: str, values: dict[str, Any]) -> bool:
        # jsonb travels as its JSON text (a text() statement does not know the column's type)
        sets = ", ".join(f"{k} = CAST(:{k} AS jsonb)" if k == "output" else f"{k} = :{k}" for k in values)
        if "output" in values:
            values = {**values, "output": _json(values["output"])}
        done = await uow.session.execute(text(
            f"UPDATE wf_tasks SET status = :status, finished_at = clock_timestamp(), lease_owner = NULL, "  # noqa: S608 - column names are ours
            f"lease_until = NULL{', ' + sets if sets else ''} WHERE run_id = :run AND task_id = :task "
            "AND phase = :phase AND attempt = :attempt AND status = 'running'"),
            {"status": status, "run": task.run_id, "task": task.task_id, "phase": task.phase, "attempt": task.attempt,
             **values})  # fmt: skip
        if done.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult
            return False
        attempt_status = "completed" if status in ("completed", "skipped") else status
        await uow.session.execute(text(
            "UPDATE wf_task_attempts SET status = :status, finished_at = clock_timestamp(), error = :error "
            "WHERE run_id = :run AND task_id = :task AND phase = :phase AND attempt = :attempt"),
            {"status": attempt_status, "error": values.get("error"), "run": task.run_id, "task": task.task_id,
             "phase": task.phase, "attempt": task.attempt})  # fmt: skip
        return True

    async def complete(
        self, uow: UnitOfWork, task: Claimed, output: Any, *, skipped: bool = False, duration_ms: float | None = None
    ) -> str | None:
        """Record the task's result, ready its dependents, and end the run or its compensation when this was the
        last. Returns the run's final status when this ended it, "" otherwise, and None (nothing changed) when
        the attempt was fenced out."""
        run = await self._lock_run(uow, task.run_id)
        status = "skipped" if skipped else "completed"
        if run is None or not await self._finish_task(uow, task, status, {"output": output, "error": None}):
            return None
        event = messages.TASK_SKIPPED if skipped else messages.TASK_COMPLETED
        ended = ""
        events: list[tuple[str, Any]] = [(event, messages.TaskEvent(
            run_id=task.run_id, task_id=task.task_id, phase=task.phase, kind=task.kind, status=status,
            attempt=task.attempt, duration_ms=duration_ms))]  # fmt: skip
        await uow.session.execute(text(
            "UPDATE wf_tasks SET pending_deps = pending_deps - 1, "
            "status = CASE WHEN pending_deps = 1 THEN 'ready' ELSE status END, "
            "ready_at = CASE WHEN pending_deps = 1 THEN clock_timestamp() ELSE ready_at END, "
            "next_run_at = CASE WHEN pending_deps = 1 THEN clock_timestamp() ELSE next_run_at END "
            "WHERE run_id = :run AND phase = :phase AND status = 'waiting' AND :task = ANY(depends_on)"),
            {"run": task.run_id, "phase": task.phase, "task": task.task_id})  # fmt: skip
        if run.status == "running" and task.phase == "forward":
            finished = (await uow.session.execute(text(
                "UPDATE wf_runs SET status = 'completed', outcome = NULL, finished_at = clock_timestamp() "
                "WHERE id = :run AND NOT EXISTS (SELECT 1 FROM wf_tasks WHERE run_id = :run AND phase = 'forward' "
                "AND status NOT IN ('completed', 'skipped')) RETURNING id"), {"run": task.run_id})).first()  # fmt: skip
            if finished is not None:
                ended = "completed"
                events.append(
                    (messages.RUN_COMPLETED, messages.RunEvent(run_id=task.run_id, name=run.name, status="completed"))
                )
        elif run.status == "failing":
            events += await self._advance_failure(uow, run)
        elif run.status == "compensating" and task.phase == "compensate":
            left = (await uow.session.execute(text(
                "SELECT count(*) FROM wf_tasks WHERE run_id = :run AND phase = 'compensate' "
                "AND status NOT IN ('completed', 'skipped')"), {"run": task.run_id})).scalar_one()  # fmt: skip
            if left == 0:
                events += await self._end_run(uow, run, "compensated")
        await self._events(uow, task.run_id, events)
        return ended

    async def fail(self, uow: UnitOfWork, task: Claimed, error: str, *, cancelled: bool = False,
                   rng: random.Random | None = None) -> float | None:  # fmt: skip
        """Record a failed attempt: retry later while the policy allows (returns the wait), else fail the task
        (and start failing its run). None when nothing was retried (or the attempt was fenced out)."""
        run = await self._lock_run(uow, task.run_id)
        if run is None:
            return None
        error = error[:4000]
        retry = task.spec.get("retry", {})
        active = run.status == "running" or (run.status == "compensating" and task.phase == "compensate")
        if not cancelled and active and task.attempts_left > 0:
            wait = backoff_seconds(retry, task.attempt - task.retry_base, rng)
            if not await self._finish_task(uow, task, "ready", {"error": error}):
                return None
            # The wait counts from the failed attempt's recorded end, on the database's clock that claims compare
            # with (not from this process's clock before the statements: under load that is tens of ms earlier).
            ended = await uow.session.execute(text(
                "UPDATE wf_task_attempts SET status = 'failed' WHERE run_id = :run AND task_id = :task "
                "AND phase = :phase AND attempt = :attempt RETURNING finished_at"),
                {"run": task.run_id, "task": task.task_id, "phase": task.phase, "attempt": task.attempt})  # fmt: skip
            at = ended.scalar_one() + dt.timedelta(seconds=wait)
            await uow.session.execute(text(
                "UPDATE wf_tasks SET finished_at = NULL, next_run_at = :at, ready_at = :at "
                "WHERE run_id = :run AND task_id = :task AND phase = :phase"),
                {"at": at, "run": task.run_id, "task": task.task_id, "phase": task.phase})  # fmt: skip
            await self._events(uow, task.run_id, [(messages.TASK_RETRYING, messages.TaskEvent(
                run_id=task.run_id, task_id=task.task_id, phase=task.phase, kind=task.kind, status="retrying",
                attempt=task.attempt, error=error))])  # fmt: skip
            return wait
        status = "cancelled" if cancelled else "failed"
        if not await self._finish_task(uow, task, status, {"error": error}):
            return None
        events: list[tuple[str, Any]] = [(messages.TASK_FAILED, messages.TaskEvent(
            run_id=task.run_id, task_id=task.task_id, phase=task.phase, kind=task.kind, status=status,
            attempt=task.attempt, error=error))]  # fmt: skip
        if task.phase == "compensate":
            await uow.session.execute(text(
                "UPDATE wf_tasks SET status = 'cancelled' WHERE run_id = :run AND phase = 'compensate' "
                "AND status IN ('waiting', 'ready')"), {"run": task.run_id})  # fmt: skip
            events += await self._end_run(uow, run, "compensation_failed")
        else:
            if run.status == "running":
                run = await self.start_failing(uow, task.run_id, f"task {task.task_id} failed: {error}"[:4000])
            if run is not None and run.status == "failing":
                events += await self._advance_failure(uow, run)
        await self._events(uow, task.run_id, events)
        return None

    async def release(self, uow: UnitOfWork, tasks: list[Claimed]) -> None:
        """Hand back tasks this process will not finish (shutdown): ready again at once, for any process."""
        for task in tasks:
            await uow.session.execute(text(
                "UPDATE wf_tasks SET status = 'ready', lease_owner = NULL, lease_until = NULL, "
                "retry_base = retry_base + 1, next_run_at = clock_timestamp() "
                "WHERE run_id = :run AND task_id = :task AND phase = :phase AND attempt = :attempt "
                "AND status = 'running'"),
                {"run": task.run_id, "task": task.task_id, "phase": task.phase, "attempt": task.attempt})  # fmt: skip
            await uow.session.execute(text(
                "UPDATE wf_task_attempts SET status = 'released', finished_at = clock_timestamp() "
                "WHERE run_id = :run AND task_id = :task AND phase = :phase AND attempt = :attempt"),
                {"run": task.run_id, "task": task.task_id, "phase": task.phase, "attempt": task.attempt})  # fmt: skip
