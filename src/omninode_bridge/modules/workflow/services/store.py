"""The engine's statements: claim ready tasks, renew leases, complete or fail a task, advance a failing run.

Every transition is conditional: a claim (``claims.CLAIM``) takes tasks that are ``ready`` (or ``running`` with
an expired lease), under ``FOR UPDATE SKIP LOCKED`` of their run when ``max_parallel`` can bind (one process at
a time counts and starts them, so it holds across processes), by their own rows otherwise (any process, at
once); a completion or failure names the attempt it was claimed with and changes nothing when the task has
moved on (its lease expired and another process took it over). Every other transition locks the run's row ``FOR
UPDATE`` first, so it waits for the claims in flight on that run, and its lock order is run, then tasks.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import text

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import EventPublisher, encoded_envelopes
from omninode_bridge.modules.workflow import messages
from omninode_bridge.modules.workflow.services.claims import CLAIM
from omninode_bridge.modules.workflow.services.wake import Waker

__all__ = ["Claimed", "EngineStore", "backoff_seconds"]

TERMINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task this process holds the lease of, with what it needs to run it."""

    run_id: uuid.UUID
    task_id: str
    phase: str
    kind: str
    spec: dict[str, Any]
    attempt: int
    retry_base: int
    ready_at: dt.datetime | None
    started_at: dt.datetime
    inputs: dict[str, Any]
    run_name: str
    correlation_id: str
    has_ai: bool = False
    free: bool = False

    @property
    def attempts_left(self) -> int:
        """Attempts of the retry policy not yet used (this one counted)."""
        maximum = int(self.spec.get("retry", {}).get("max_attempts", 1))
        return maximum - (self.attempt - self.retry_base)


def backoff_seconds(retry: dict[str, Any], failures: int, rng: random.Random | None = None) -> float:
    """The wait before the next attempt after ``failures`` failed ones (exponential, capped, with jitter)."""
    initial = float(retry.get("initial_backoff_s", 0.5))
    delay = min(
        float(retry.get("max_backoff_s", 60.0)), initial * float(retry.get("multiplier", 2.0)) ** (failures - 1)
    )
    jitter = float(retry.get("jitter", 0.2))
    factor = 1 - jitter * (rng or random).random()
    return max(0.0, delay * factor)


class EngineStore:
    """The engine's transitions, each in the caller's unit of work (the caller commits).

    Args:
        publisher: Stages the run and task events in the same transaction.
        waker: Wakes the engines once a transaction that made tasks ready commits.
    """

    def __init__(self, publisher: EventPublisher, waker: Waker) -> None:
        self.publisher = publisher
        self.waker = waker

    async def _events(self, uow: UnitOfWork, run_id: uuid.UUID, events: list[tuple[str, Any]]) -> None:
        if events:
            key = str(run_id)
            envelopes = encoded_envelopes([(t, p, key) for t, p in events])
            await self.publisher.publish_many(uow, messages.WORKFLOW_TOPIC, envelopes)

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
                           r.started_at, r.inputs, r.name, r.correlation_id, bool(r.has_ai), r.free)
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
            at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            if not await self._finish_task(uow, task, "ready", {"error": error, "next_run_at": at, "ready_at": at}):
                return None
            await uow.session.execute(text(
                "UPDATE wf_task_attempts SET status = 'failed' WHERE run_id = :run AND task_id = :task "
                "AND phase = :phase AND attempt = :attempt"),
                {"run": task.run_id, "task": task.task_id, "phase": task.phase, "attempt": task.attempt})  # fmt: skip
            await uow.session.execute(text(
                "UPDATE wf_tasks SET finished_at = NULL WHERE run_id = :run AND task_id = :task AND phase = :phase"),
                {"run": task.run_id, "task": task.task_id, "phase": task.phase})  # fmt: skip
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

    async def start_failing(self, uow: UnitOfWork, run_id: uuid.UUID, error: str, *, cancel: bool = False,
                            compensate: bool | None = None) -> Any:  # fmt: skip
        """Move a running run to ``failing``: no new task starts (waiting and ready ones are cancelled)."""
        row = (await uow.session.execute(text(
            "UPDATE wf_runs SET status = 'failing', error = :error, cancel_requested = :cancel, "
            "compensate = coalesce(:compensate, compensate) WHERE id = :run AND status = 'running' "
            "RETURNING id, name, status, compensate, cancel_requested, error"),
            {"run": run_id, "error": error, "cancel": cancel, "compensate": compensate})).first()  # fmt: skip
        if row is not None:
            await uow.session.execute(text(
                "UPDATE wf_tasks SET status = 'cancelled', finished_at = clock_timestamp() WHERE run_id = :run "
                "AND phase = 'forward' AND status IN ('waiting', 'ready')"), {"run": run_id})  # fmt: skip
        return row

    async def _advance_failure(self, uow: UnitOfWork, run: Any) -> list[tuple[str, Any]]:
        """Once no forward task of a failing run is running: start its compensations, or end it."""
        busy = (await uow.session.execute(text(
            "SELECT count(*) FROM wf_tasks WHERE run_id = :run AND phase = 'forward' AND status = 'running'"),
            {"run": run.id})).scalar_one()  # fmt: skip
        if busy:
            return []
        if not run.compensate:
            return await self._end_run(uow, run, None)
        done = (await uow.session.execute(text(
            "SELECT task_id, position, spec -> 'compensate' AS compensate FROM wf_tasks WHERE run_id = :run "
            "AND phase = 'forward' AND status = 'completed' AND spec ? 'compensate' "
            "AND jsonb_typeof(spec -> 'compensate') = 'object' ORDER BY position DESC"),
            {"run": run.id})).all()  # fmt: skip
        if not done:
            return await self._end_run(uow, run, "compensated")
        rows = []
        previous: str | None = None
        for position, row in enumerate(done):
            spec = dict(row.compensate)
            rows.append({"run": run.id, "task": row.task_id, "position": position, "kind": spec.get("kind", "noop"),
                         "spec": spec, "deps": [previous] if previous else [], "pending": 1 if previous else 0,
                         "status": "waiting" if previous else "ready"})  # fmt: skip
            previous = row.task_id
        await uow.session.execute(text(
            "INSERT INTO wf_tasks (run_id, task_id, phase, position, kind, spec, depends_on, pending_deps, free, "
            "status, attempt, retry_base, next_run_at, ready_at) VALUES (:run, :task, 'compensate', :position, :kind, "
            "CAST(:spec AS jsonb), :deps, :pending, true, :status, 0, 0, "
            "CASE WHEN :pending = 0 THEN clock_timestamp() END, CASE WHEN :pending = 0 THEN clock_timestamp() END) "
            "ON CONFLICT DO NOTHING"), [{**r, "spec": _json(r["spec"])} for r in rows])  # fmt: skip
        await uow.session.execute(text("UPDATE wf_runs SET status = 'compensating' WHERE id = :run"), {"run": run.id})
        uow.after_commit(self.waker)
        return []

    async def _end_run(self, uow: UnitOfWork, run: Any, outcome: str | None) -> list[tuple[str, Any]]:
        status = "cancelled" if run.cancel_requested else "failed"
        await uow.session.execute(text(
            "UPDATE wf_runs SET status = :status, outcome = :outcome, finished_at = clock_timestamp() WHERE id = :run"),
            {"status": status, "outcome": outcome, "run": run.id})  # fmt: skip
        event = messages.RUN_CANCELLED if run.cancel_requested else messages.RUN_FAILED
        events: list[tuple[str, Any]] = [(event, messages.RunEvent(
            run_id=run.id, name=run.name, status=status, outcome=outcome, error=run.error))]  # fmt: skip
        if outcome == "compensated":
            events.append((messages.RUN_COMPENSATED, messages.RunEvent(
                run_id=run.id, name=run.name, status=status, outcome=outcome)))  # fmt: skip
        return events

    async def sweep(self, uow: UnitOfWork) -> int:
        """Fail runs past their deadline and move failing runs on whose running tasks' processes died."""
        timed_out = (await uow.session.execute(text(
            "SELECT id FROM wf_runs WHERE status = 'running' AND deadline_at < clock_timestamp() "
            "LIMIT 50 FOR UPDATE SKIP LOCKED"))).scalars().all()  # fmt: skip
        for run_id in timed_out:
            await self.start_failing(uow, run_id, "the workflow exceeded its timeout")
        failing = (await uow.session.execute(text(
            "SELECT id, name, status, compensate, cancel_requested, error FROM wf_runs WHERE status = 'failing' "
            "LIMIT 50 FOR UPDATE SKIP LOCKED"))).all()  # fmt: skip
        for run in failing:
            await uow.session.execute(text(
                "UPDATE wf_tasks SET status = 'cancelled', finished_at = clock_timestamp(), lease_owner = NULL "
                "WHERE run_id = :run AND phase = 'forward' AND status = 'running' "
                "AND lease_until < clock_timestamp()"), {"run": run.id})  # fmt: skip
            await self._events(uow, run.id, await self._advance_failure(uow, run))
        return len(timed_out) + len(failing)

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


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
