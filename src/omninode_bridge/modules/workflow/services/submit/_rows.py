"""The rows and statements of a submit: runs, tasks and their events written in one statement (see the package)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import text

from omninode_bridge.core.events import outbox_rows_sql
from omninode_bridge.modules.workflow import schemas

__all__ = ["SUBMIT", "SUBMIT_MANY", "Pending", "RunRow", "Spec", "TaskRow", "has_ai_tasks", "json_text"]

# The task rows come as one JSON array (``:tasks``) and the runs of a batch as another (``:runs``), each encoded
# by msgspec in one call: binding them as one array per column (text[], jsonb[] ...) cost asyncpg a per-element
# encoding, the largest part of a submit's own CPU in py-spy.
TASKS_FROM = """
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

SUBMIT = text(f"""
WITH run AS (
    INSERT INTO wf_runs (id, name, namespace, status, cancel_requested, compensate, max_parallel, free, has_ai,
        inputs, definition, idempotency_scope, correlation_id, created_at, deadline_at)
    VALUES (:id, :name, :namespace, 'running', false, :compensate, :max_parallel, :free, :has_ai,
        CAST(:inputs AS jsonb), CAST(:definition AS jsonb), :scope, :correlation_id, CAST(:created_at AS timestamptz),
        :deadline_at)
    ON CONFLICT (idempotency_scope) WHERE idempotency_scope IS NOT NULL DO NOTHING
    RETURNING id
), tasks AS ({TASKS_FROM.format(run="run.id", free=":free", source="run, ")}
), outbox AS ({outbox_rows_sql("EXISTS (SELECT 1 FROM run)")})
SELECT id FROM run
""")  # noqa: S608 - our own SQL fragments and the outbox's

# Many runs: their rows, then every task of them (the run of each task by its id), then every event. The task
# rows name ids that the same statement inserts: the foreign key is checked at the statement's end.
SUBMIT_MANY = text(f"""
WITH run AS (
    INSERT INTO wf_runs (id, name, namespace, status, cancel_requested, compensate, max_parallel, free, has_ai,
        inputs, definition, idempotency_scope, correlation_id, created_at, deadline_at)
    SELECT r.id, r.name, r.namespace, 'running', false, r.compensate, r.max_parallel, r.free, r.has_ai, r.inputs,
        r.definition, NULL, r.correlation_id, r.created_at, r.deadline_at
    FROM jsonb_to_recordset(CAST(:runs AS jsonb)) AS r(id uuid, name text, namespace text, compensate boolean,
        max_parallel int, free boolean, has_ai boolean, inputs jsonb, definition jsonb, correlation_id text,
        created_at timestamptz, deadline_at timestamptz)
    RETURNING id
), tasks AS ({TASKS_FROM.format(run="t.run_id", free="t.free", source="")}
), outbox AS ({outbox_rows_sql()})
SELECT count(*) FROM run
""")  # noqa: S608 - our own SQL fragments and the outbox's


class Spec(msgspec.Struct, kw_only=True, omit_defaults=False):
    """What a task row keeps of its definition (``spec``): all but id, kind and dependencies."""

    params: dict[str, Any]
    retry: schemas.RetryPolicy
    timeout_s: float
    when: str | None
    compensate: schemas.CompensationSpec | None


class TaskRow(msgspec.Struct, omit_defaults=True):
    """A task row of ``:tasks`` (``run_id`` and ``free`` for a batch only: one run's are the run's own)."""

    task_id: str
    position: int
    kind: str
    spec: Spec
    deps: list[str]
    run_id: uuid.UUID | None = None
    free: bool | None = None


class RunRow(msgspec.Struct):
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
class Pending:
    """A single submit without an Idempotency-Key, written with the others of its group (``SUBMIT_MANY``)."""

    run: RunRow
    tasks: list[TaskRow]


_encode = msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    return _encode(value).decode()


def has_ai_tasks(definition: schemas.WorkflowDefinition) -> bool:
    """Whether a run has ai tasks (its completion or failure is fed back to the router)."""
    return any(task.kind == "ai" for task in definition.tasks)
