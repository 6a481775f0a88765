"""The submitter: validates definitions, then writes them alone, grouped or as a batch (see the package)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import select
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, encoded_envelopes
from omninode_bridge.modules.workflow import messages, schemas
from omninode_bridge.modules.workflow.models import WorkflowRun
from omninode_bridge.modules.workflow.services import instruments
from omninode_bridge.modules.workflow.services.group_commit import GroupCommit
from omninode_bridge.modules.workflow.services.submit._rows import (
    SUBMIT,
    SUBMIT_MANY,
    Pending,
    RunRow,
    Spec,
    TaskRow,
    has_ai_tasks,
    json_text,
)
from omninode_bridge.modules.workflow.services.validation import validate_definition
from omninode_bridge.modules.workflow.services.wake import Waker
from omninode_bridge.modules.workflow.settings import WorkflowSettings

__all__ = ["Submitted", "Submitter"]

_encode = msgspec.json.Encoder().encode


#: Group writes of single submits under way at once: one, measured against two (bench.workflow, 16 clients): 0.2
#: transactions per run instead of 0.3, less CPU per run in the app and in PostgreSQL; a lone submit waits for none.
_IN_FLIGHT = 1
#: What one submit's row can make PostgreSQL refuse (the statement wrote nothing): its group is written one by one.
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A valid definition with its encoding and topological order."""

    definition: schemas.WorkflowDefinition
    encoded: bytes
    order: list[str]


@dataclass(frozen=True, slots=True)
class Submitted:
    """What ``POST /workflows`` answers: the run (new, or the one its Idempotency-Key created first)."""

    run_id: uuid.UUID
    status: str
    created: bool


class Submitter:
    """Validates definitions and writes them as running runs.

    Args:
        settings: Limits.
        publisher: Stages run events.
        queries: Names of the declared SQL queries.
        waker: Wakes the engines after a submit commits.
        database: Where a single submit opens its unit of work.
    """

    def __init__(self, settings: WorkflowSettings, publisher: EventPublisher, queries: Collection[str],
                 waker: Waker, database: Database) -> None:  # fmt: skip
        self.settings = settings
        self.publisher = publisher
        self.queries = queries
        self.waker = waker
        self.database = database
        self._grouped = GroupCommit(self._write_group, in_flight=_IN_FLIGHT, max_items=settings.max_batch,
                                    max_weight=settings.max_batch_tasks, weight=lambda p: len(p.tasks),
                                    alone_on=_ROW_ERRORS)  # fmt: skip

    def _issues(self, definition: schemas.WorkflowDefinition, prefix: str) -> tuple[list[dict[str, Any]], _Checked]:
        encoded = _encode(definition)
        issues, order = validate_definition(definition, max_tasks=self.settings.max_tasks, queries=self.queries)
        errors: list[dict[str, Any]] = [
            {"field": f"{prefix}{i.field}", "source": "body", "message": i.message} for i in issues
        ]
        if len(encoded) > self.settings.max_definition_bytes:
            message = f"the definition is {len(encoded)} bytes, over {self.settings.max_definition_bytes}"
            errors.insert(0, {"field": prefix.rstrip(".") or None, "source": "body", "message": message})
        return errors, _Checked(definition, encoded, order)

    @staticmethod
    def _refuse(errors: list[dict[str, Any]]) -> ProblemError:
        detail = "; ".join(str(e["message"]) for e in errors[:5])
        return ProblemError(422, f"Invalid workflow: {detail}", slug="invalid-workflow", extra={"errors": errors})

    def check(self, definition: schemas.WorkflowDefinition) -> list[str]:
        """Validate; returns the topological order.

        Raises:
            ProblemError: 422 naming every issue.
        """
        errors, checked = self._issues(definition, "")
        if errors:
            raise self._refuse(errors)
        return checked.order

    def check_many(self, definitions: Sequence[schemas.WorkflowDefinition]) -> list[_Checked]:
        """Validate every definition of a batch; the issues are named ``workflows[i].<field>``.

        Raises:
            ProblemError: 422 naming every issue of every definition, or a batch over the limits.
        """
        limits = self.settings
        errors: list[dict[str, Any]] = []
        if len(definitions) > limits.max_batch:
            message = f"{len(definitions)} workflows is over the limit of {limits.max_batch}"
            errors.append({"field": "workflows", "source": "body", "message": message})
        tasks = sum(len(d.tasks) for d in definitions)
        if tasks > limits.max_batch_tasks:
            message = f"{tasks} tasks in all is over the limit of {limits.max_batch_tasks}"
            errors.append({"field": "workflows", "source": "body", "message": message})
        if errors:  # not worth validating each one
            raise self._refuse(errors)
        checked = []
        for i, definition in enumerate(definitions):
            found, one = self._issues(definition, f"workflows[{i}].")
            errors += found
            checked.append(one)
        if errors:
            raise self._refuse(errors)
        return checked

    @staticmethod
    def _task_rows(checked: _Checked, run_id: uuid.UUID | None = None, free: bool | None = None) -> list[TaskRow]:
        position = {task_id: i for i, task_id in enumerate(checked.order)}
        return [TaskRow(task_id=t.id, position=position[t.id], kind=t.kind, run_id=run_id, free=free,
                         deps=list(dict.fromkeys(t.depends_on)) if t.depends_on else [],
                         spec=Spec(params=t.params, retry=t.retry, timeout_s=t.timeout_s, when=t.when,
                                    compensate=t.compensate)) for t in checked.definition.tasks]  # fmt: skip

    def _events(self, uow: UnitOfWork, runs: Sequence[tuple[uuid.UUID, str]]) -> dict[str, Any]:
        events = []
        for run_id, name in runs:
            payload = messages.RunEvent(run_id=run_id, name=name, status="running")
            key = str(run_id)
            events += [(messages.RUN_SUBMITTED, payload, key), (messages.RUN_STARTED, payload, key)]
        return self.publisher.staged_arrays(uow, messages.WORKFLOW_TOPIC, encoded_envelopes(events))

    async def submit(self, definition: schemas.WorkflowDefinition, *, correlation_id: str,
                     idempotency_scope: str | None) -> Submitted:  # fmt: skip
        """Store a valid definition as a running run with its tasks.

        Without an Idempotency-Key, the run is written with the submits that arrive while others are being written
        (:class:`GroupCommit`); with one, alone, through the key's unique index.

        Raises:
            ProblemError: 422 naming every issue; 409 when a submit with the same Idempotency-Key is being
                written and not visible yet.
        """
        errors, checked = self._issues(definition, "")
        if errors:
            raise self._refuse(errors)
        if idempotency_scope is None:
            row = self._run_row(checked, uuid7(), correlation_id, dt.datetime.now(dt.UTC))
            await self._grouped(Pending(row, self._task_rows(checked, row.id, row.free)))
            instruments.RUNS.labels(name=row.name).inc()
            return Submitted(row.id, "running", created=True)
        async with self.database.unit_of_work() as uow:
            existing = await self._keyed(uow, idempotency_scope)
            if existing is not None:
                return existing
            now = dt.datetime.now(dt.UTC)
            row = self._run_row(checked, uuid7(), correlation_id, now)
            params = {
                "id": row.id, "free": row.free, "has_ai": row.has_ai, "name": row.name, "namespace": row.namespace,
                "compensate": row.compensate, "max_parallel": row.max_parallel, "inputs": json_text(row.inputs),
                "definition": checked.encoded.decode(), "scope": idempotency_scope, "correlation_id": correlation_id,
                "created_at": now, "deadline_at": row.deadline_at, "tasks": json_text(self._task_rows(checked)),
                **self._events(uow, [(row.id, row.name)]),
            }  # fmt: skip
            uow.after_commit(self.waker)
            # One statement (in the key lookup's transaction): the run, its tasks, its two events.
            if (await uow.commit_one(SUBMIT, params)).first() is None:
                # A concurrent submit with the same Idempotency-Key won the unique index: answer with its run.
                existing = await self._keyed(uow, idempotency_scope)
                if existing is None:
                    raise ProblemError(409, "A submit with this Idempotency-Key is in progress.", slug="conflict")
                return existing
        instruments.RUNS.labels(name=row.name).inc()
        return Submitted(row.id, "running", created=True)

    @staticmethod
    async def _keyed(uow: UnitOfWork, scope: str) -> Submitted | None:
        """The run an Idempotency-Key created, if it is visible."""
        row = (await uow.session.execute(select(WorkflowRun.id, WorkflowRun.status)
                                         .where(WorkflowRun.idempotency_scope == scope))).first()  # fmt: skip
        return None if row is None else Submitted(row.id, row.status, created=False)

    async def _write_group(self, group: list[Pending]) -> None:
        """Write single submits as one statement, committed on its own (one round trip)."""
        async with self.database.unit_of_work() as uow:
            params = {"runs": json_text([p.run for p in group]),
                      "tasks": json_text([t for p in group for t in p.tasks]),
                      **self._events(uow, [(p.run.id, p.run.name) for p in group])}  # fmt: skip
            uow.after_commit(self.waker)
            await uow.commit_one(SUBMIT_MANY, params)

    @staticmethod
    def _run_row(checked: _Checked, run_id: uuid.UUID, correlation_id: str, now: dt.datetime) -> RunRow:
        d = checked.definition
        # Never more tasks than max_parallel: no process can exceed it, so they claim its tasks by their rows.
        return RunRow(id=run_id, name=d.name, namespace=d.namespace, compensate=d.on_failure == "compensate",
                       max_parallel=d.max_parallel, free=len(d.tasks) <= d.max_parallel, has_ai=has_ai_tasks(d),
                       inputs=d.inputs,
                       definition=msgspec.Raw(checked.encoded), correlation_id=correlation_id, created_at=now,
                       deadline_at=now + dt.timedelta(seconds=d.timeout_s))  # fmt: skip

    async def submit_many(self, uow: UnitOfWork, definitions: Sequence[schemas.WorkflowDefinition], *,
                          correlation_id: str) -> list[uuid.UUID]:  # fmt: skip
        """Store valid definitions as running runs, all or none, in one statement; returns their ids in order.

        Raises:
            ProblemError: 422 naming every issue of every definition (none is stored).
        """
        checked = self.check_many(definitions)
        now = dt.datetime.now(dt.UTC)
        runs = [self._run_row(one, uuid7(), correlation_id, now) for one in checked]
        tasks = [t for run, one in zip(runs, checked, strict=True) for t in self._task_rows(one, run.id, run.free)]
        params = {
            "runs": json_text(runs),
            "tasks": json_text(tasks),
            **self._events(uow, [(r.id, r.name) for r in runs]),
        }
        uow.after_commit(self.waker)
        await uow.commit_one(SUBMIT_MANY, params)
        for name, count in Counter(r.name for r in runs).items():
            instruments.RUNS.labels(name=name).inc(count)
        return [r.id for r in runs]
