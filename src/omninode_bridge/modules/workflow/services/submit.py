"""Submitting runs: validate each definition once, then write runs, tasks and events in one statement.

``POST /workflows/batch`` writes many runs (``_SUBMIT_MANY``: fresh ids, no key, every row from arrays), and so
do single ``POST /workflows`` without an ``Idempotency-Key``: those that arrive while another is being written go
together (``group_commit``); one with a key is written alone (``_SUBMIT``: the key through the unique index, ``ON
CONFLICT DO NOTHING``). Either statement is the whole transaction, run on the driver through
``UnitOfWork.commit_one`` (one round trip): the runs, their task rows and their ``run.submitted``/``run.started``
outbox events, all or nothing. The statement text does not depend on the number of runs or tasks (every value
travels as an array), so it is prepared once per connection.

Each definition is JSON-encoded once: that encoding is its size check and its stored ``definition``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import select, text
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, encoded_envelopes, outbox_rows_sql
from omninode_bridge.modules.workflow import messages, schemas
from omninode_bridge.modules.workflow.models import WorkflowRun
from omninode_bridge.modules.workflow.services import instruments
from omninode_bridge.modules.workflow.services.group_commit import GroupCommit
from omninode_bridge.modules.workflow.services.validation import validate_definition
from omninode_bridge.modules.workflow.services.wake import Waker
from omninode_bridge.modules.workflow.settings import WorkflowSettings

__all__ = ["Submitted", "Submitter"]

#: Group writes of single submits under way at once: one, measured against two (bench.workflow, 16 clients): 0.2
#: transactions per run instead of 0.3, less CPU per run in the app and in PostgreSQL; a lone submit waits for none.
_IN_FLIGHT = 1
#: What one submit's row can make PostgreSQL refuse (the statement wrote nothing): its group is written one by one.
_ROW_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

# The task rows come as one JSON array (``:tasks``) and the runs of a batch as another (``:runs``), each encoded
# by msgspec in one call: binding them as one array per column (text[], jsonb[] ...) cost asyncpg a per-element
# encoding, the largest part of a submit's own CPU in py-spy.
_TASKS_FROM = """
    INSERT INTO wf_tasks (run_id, task_id, phase, position, kind, spec, depends_on, pending_deps, free, status,
        attempt, retry_base, next_run_at, ready_at)
    SELECT {run}, t.task_id, 'forward', t.position, t.kind, t.spec, ARRAY(SELECT jsonb_array_elements_text(t.deps)),
        jsonb_array_length(t.deps), {free},
        CASE WHEN jsonb_array_length(t.deps) = 0 THEN 'ready' ELSE 'waiting' END, 0, 0,
        CASE WHEN jsonb_array_length(t.deps) = 0 THEN clock_timestamp() END,
        CASE WHEN jsonb_array_length(t.deps) = 0 THEN clock_timestamp() END
    FROM {source}jsonb_to_recordset(CAST(:tasks AS jsonb))
        AS t(task_id text, position int, kind text, spec jsonb, deps jsonb, run_id uuid, free boolean)
"""

_SUBMIT = text(f"""
WITH run AS (
    INSERT INTO wf_runs (id, name, namespace, status, cancel_requested, compensate, max_parallel, free, has_ai,
        inputs, definition, idempotency_scope, correlation_id, created_at, deadline_at)
    VALUES (:id, :name, :namespace, 'running', false, :compensate, :max_parallel, :free, :has_ai,
        CAST(:inputs AS jsonb), CAST(:definition AS jsonb), :scope, :correlation_id, CAST(:created_at AS timestamptz),
        :deadline_at)
    ON CONFLICT (idempotency_scope) WHERE idempotency_scope IS NOT NULL DO NOTHING
    RETURNING id
), tasks AS ({_TASKS_FROM.format(run="run.id", free=":free", source="run, ")}
), outbox AS ({outbox_rows_sql("EXISTS (SELECT 1 FROM run)")})
SELECT id FROM run
""")  # noqa: S608 - our own SQL fragments and the outbox's

# Many runs: their rows, then every task of them (the run of each task by its id), then every event. The task
# rows name ids that the same statement inserts: the foreign key is checked at the statement's end.
_SUBMIT_MANY = text(f"""
WITH run AS (
    INSERT INTO wf_runs (id, name, namespace, status, cancel_requested, compensate, max_parallel, free, has_ai,
        inputs, definition, idempotency_scope, correlation_id, created_at, deadline_at)
    SELECT r.id, r.name, r.namespace, 'running', false, r.compensate, r.max_parallel, r.free, r.has_ai, r.inputs,
        r.definition, NULL, r.correlation_id, r.created_at, r.deadline_at
    FROM jsonb_to_recordset(CAST(:runs AS jsonb)) AS r(id uuid, name text, namespace text, compensate boolean,
        max_parallel int, free boolean, has_ai boolean, inputs jsonb, definition jsonb, correlation_id text,
        created_at timestamptz, deadline_at timestamptz)
    RETURNING id
), tasks AS ({_TASKS_FROM.format(run="t.run_id", free="t.free", source="")}
), outbox AS ({outbox_rows_sql()})
SELECT count(*) FROM run
""")  # noqa: S608 - our own SQL fragments and the outbox's


class _Spec(msgspec.Struct, kw_only=True, omit_defaults=False):
    """What a task row keeps of its definition (``spec``): all but id, kind and dependencies."""

    params: dict[str, Any]
    retry: schemas.RetryPolicy
    timeout_s: float
    when: str | None
    compensate: schemas.CompensationSpec | None


class _TaskRow(msgspec.Struct, omit_defaults=True):
    """A task row of ``:tasks`` (``run_id`` and ``free`` for a batch only: one run's are the run's own)."""

    task_id: str
    position: int
    kind: str
    spec: _Spec
    deps: list[str]
    run_id: uuid.UUID | None = None
    free: bool | None = None


class _RunRow(msgspec.Struct):
    """A run row of ``:runs`` (a batch, or a group of single submits); ``definition`` is its encoding as validated
    (embedded as is)."""

    id: uuid.UUID
    name: str
    namespace: str | None
    compensate: bool
    max_parallel: int
    free: bool
    has_ai: bool
    inputs: dict[str, Any]
    definition: msgspec.Raw
    correlation_id: str
    created_at: dt.datetime
    deadline_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _Pending:
    """A single submit without an Idempotency-Key, written with the others of its group (``_SUBMIT_MANY``)."""

    run: _RunRow
    tasks: list[_TaskRow]


_encode = msgspec.json.Encoder().encode


def _text(value: Any) -> str:
    return _encode(value).decode()


def _has_ai(definition: schemas.WorkflowDefinition) -> bool:
    """Whether a run has ai tasks (its completion or failure is fed back to the router)."""
    return any(task.kind == "ai" for task in definition.tasks)


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
    def _task_rows(checked: _Checked, run_id: uuid.UUID | None = None, free: bool | None = None) -> list[_TaskRow]:
        position = {task_id: i for i, task_id in enumerate(checked.order)}
        return [_TaskRow(task_id=t.id, position=position[t.id], kind=t.kind, run_id=run_id, free=free,
                         deps=list(dict.fromkeys(t.depends_on)) if t.depends_on else [],
                         spec=_Spec(params=t.params, retry=t.retry, timeout_s=t.timeout_s, when=t.when,
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
            await self._grouped(_Pending(row, self._task_rows(checked, row.id, row.free)))
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
                "compensate": row.compensate, "max_parallel": row.max_parallel, "inputs": _text(row.inputs),
                "definition": checked.encoded.decode(), "scope": idempotency_scope, "correlation_id": correlation_id,
                "created_at": now, "deadline_at": row.deadline_at, "tasks": _text(self._task_rows(checked)),
                **self._events(uow, [(row.id, row.name)]),
            }  # fmt: skip
            uow.after_commit(self.waker)
            # One statement (in the key lookup's transaction): the run, its tasks, its two events.
            if (await uow.commit_one(_SUBMIT, params)).first() is None:
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

    async def _write_group(self, group: list[_Pending]) -> None:
        """Write single submits as one statement, committed on its own (one round trip)."""
        async with self.database.unit_of_work() as uow:
            params = {"runs": _text([p.run for p in group]), "tasks": _text([t for p in group for t in p.tasks]),
                      **self._events(uow, [(p.run.id, p.run.name) for p in group])}  # fmt: skip
            uow.after_commit(self.waker)
            await uow.commit_one(_SUBMIT_MANY, params)

    @staticmethod
    def _run_row(checked: _Checked, run_id: uuid.UUID, correlation_id: str, now: dt.datetime) -> _RunRow:
        d = checked.definition
        # Never more tasks than max_parallel: no process can exceed it, so they claim its tasks by their rows.
        return _RunRow(id=run_id, name=d.name, namespace=d.namespace, compensate=d.on_failure == "compensate",
                       max_parallel=d.max_parallel, free=len(d.tasks) <= d.max_parallel, has_ai=_has_ai(d),
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
        params = {"runs": _text(runs), "tasks": _text(tasks), **self._events(uow, [(r.id, r.name) for r in runs])}
        uow.after_commit(self.waker)
        await uow.commit_one(_SUBMIT_MANY, params)
        for name, count in Counter(r.name for r in runs).items():
            instruments.RUNS.labels(name=name).inc(count)
        return [r.id for r in runs]
