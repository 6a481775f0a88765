"""The failing side of the engine's transitions: stop a run, compensate it or end it, and sweep the stuck ones."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import text

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import EventPublisher, encoded_envelopes
from omninode_bridge.modules.workflow import messages
from omninode_bridge.modules.workflow.services.wake import Waker

__all__ = ["FailingRuns"]


class FailingRuns:
    """Moves failing runs on: no new task, then their compensations in reverse order, then their end.

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


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
