"""Submitting runs: validate each definition once, then write runs, tasks and events in one statement.

``POST /workflows`` writes one run (``_SUBMIT``: ``Idempotency-Key`` through the unique index, ``ON CONFLICT DO
NOTHING``), ``POST /workflows/batch`` many (``_SUBMIT_MANY``: fresh ids, no key, every row from arrays). Either
statement is the whole transaction, run on the driver through ``UnitOfWork.commit_one`` (one round trip): the
runs, their task rows and their ``run.submitted``/``run.started`` outbox events, all or nothing. The statement
text does not depend on the number of runs or tasks (every value travels as an array), so it is prepared once
per connection.

Each definition is JSON-encoded once: that encoding is its size check and its stored ``definition``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import select, text
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, new_envelope, outbox_rows_sql
from omninode_bridge.modules.workflow import messages, schemas
from omninode_bridge.modules.workflow.models import WorkflowRun
from omninode_bridge.modules.workflow.services import instruments
from omninode_bridge.modules.workflow.services.validation import validate_definition
from omninode_bridge.modules.workflow.services.wake import Waker
from omninode_bridge.modules.workflow.settings import WorkflowSettings

__all__ = ["Submitter"]

_TASKS_FROM = """
    INSERT INTO wf_tasks (run_id, task_id, phase, position, kind, spec, depends_on, pending_deps, free, status,
        attempt, retry_base, next_run_at, ready_at)
    SELECT {run}, t.task_id, 'forward', t.position, t.kind, t.spec, ARRAY(SELECT jsonb_array_elements_text(t.deps)),
        jsonb_array_length(t.deps), {free},
        CASE WHEN jsonb_array_length(t.deps) = 0 THEN 'ready' ELSE 'waiting' END, 0, 0,
        CASE WHEN jsonb_array_length(t.deps) = 0 THEN clock_timestamp() END,
        CASE WHEN jsonb_array_length(t.deps) = 0 THEN clock_timestamp() END
    FROM {source}unnest(CAST(:task_ids AS text[]), CAST(:positions AS int[]), CAST(:kinds AS text[]),
                     CAST(:specs AS jsonb[]), CAST(:deps AS jsonb[]){extra})
        AS t(task_id, position, kind, spec, deps{cols})
"""

_SUBMIT = text(f"""
WITH run AS (
    INSERT INTO wf_runs (id, name, namespace, status, cancel_requested, compensate, max_parallel, free, inputs,
        definition, idempotency_scope, correlation_id, created_at, deadline_at)
    VALUES (:id, :name, :namespace, 'running', false, :compensate, :max_parallel, :free, CAST(:inputs AS jsonb),
        CAST(:definition AS jsonb), :scope, :correlation_id, CAST(:created_at AS timestamptz), :deadline_at)
    ON CONFLICT (idempotency_scope) WHERE idempotency_scope IS NOT NULL DO NOTHING
    RETURNING id
), tasks AS ({_TASKS_FROM.format(run="run.id", free=":free", source="run, ", extra="", cols="")}
), outbox AS ({outbox_rows_sql("EXISTS (SELECT 1 FROM run)")})
SELECT id FROM run
""")  # noqa: S608 - our own SQL fragments and the outbox's

# Many runs: their rows, then every task of them (the run of each task by its id), then every event. The task
# rows name ids that the same statement inserts: the foreign key is checked at the statement's end.
_SUBMIT_MANY = text(f"""
WITH run AS (
    INSERT INTO wf_runs (id, name, namespace, status, cancel_requested, compensate, max_parallel, free, inputs,
        definition, idempotency_scope, correlation_id, created_at, deadline_at)
    SELECT r.id, r.name, r.namespace, 'running', false, r.compensate, r.max_parallel, r.free, r.inputs,
        r.definition, NULL, :correlation_id, CAST(:created_at AS timestamptz), r.deadline_at
    FROM unnest(CAST(:run_ids AS uuid[]), CAST(:names AS text[]), CAST(:namespaces AS text[]),
                CAST(:compensates AS boolean[]), CAST(:max_parallels AS int[]), CAST(:frees AS boolean[]),
                CAST(:inputs AS jsonb[]), CAST(:definitions AS jsonb[]), CAST(:deadlines AS timestamptz[]))
        AS r(id, name, namespace, compensate, max_parallel, free, inputs, definition, deadline_at)
    RETURNING id
), tasks AS ({
    _TASKS_FROM.format(
        run="t.run_id",
        free="t.free",
        source="",
        extra=", CAST(:task_runs AS uuid[]), CAST(:task_frees AS boolean[])",
        cols=", run_id, free",
    )
}
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


_encode = msgspec.json.Encoder().encode


def _text(value: Any) -> str:
    return _encode(value).decode()


@dataclass(frozen=True, slots=True)
class _Checked:
    """A valid definition with its encoding and topological order."""

    definition: schemas.WorkflowDefinition
    encoded: str
    order: list[str]


class Submitter:
    """Validates definitions and writes them as running runs.

    Args:
        settings: Limits.
        publisher: Stages run events.
        queries: Names of the declared SQL queries.
        waker: Wakes the engines after a submit commits.
    """

    def __init__(self, settings: WorkflowSettings, publisher: EventPublisher, queries: Collection[str],
                 waker: Waker) -> None:  # fmt: skip
        self.settings = settings
        self.publisher = publisher
        self.queries = queries
        self.waker = waker

    def _issues(self, definition: schemas.WorkflowDefinition, prefix: str) -> tuple[list[dict[str, Any]], _Checked]:
        encoded = _encode(definition)
        issues, order = validate_definition(definition, max_tasks=self.settings.max_tasks, queries=self.queries)
        errors: list[dict[str, Any]] = [
            {"field": f"{prefix}{i.field}", "source": "body", "message": i.message} for i in issues
        ]
        if len(encoded) > self.settings.max_definition_bytes:
            message = f"the definition is {len(encoded)} bytes, over {self.settings.max_definition_bytes}"
            errors.insert(0, {"field": prefix.rstrip(".") or None, "source": "body", "message": message})
        return errors, _Checked(definition, encoded.decode(), order)

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
    def _task_arrays(checked: _Checked) -> tuple[list[str], list[int], list[str], list[str], list[str]]:
        tasks = checked.definition.tasks
        position = {task_id: i for i, task_id in enumerate(checked.order)}
        specs = [_text(_Spec(params=t.params, retry=t.retry, timeout_s=t.timeout_s, when=t.when,
                             compensate=t.compensate)) for t in tasks]  # fmt: skip
        # Most tasks have no dependency: the empty list's JSON is a constant.
        deps = [_text(list(dict.fromkeys(t.depends_on))) if t.depends_on else "[]" for t in tasks]
        return [t.id for t in tasks], [position[t.id] for t in tasks], [t.kind for t in tasks], specs, deps

    def _events(self, uow: UnitOfWork, runs: Sequence[tuple[uuid.UUID, str]]) -> dict[str, Any]:
        envelopes = []
        for run_id, name in runs:
            payload = messages.RunEvent(run_id=run_id, name=name, status="running")
            key = str(run_id)
            envelopes.append(new_envelope(event_type=messages.RUN_SUBMITTED, payload=payload, correlation_id=key))
            envelopes.append(new_envelope(event_type=messages.RUN_STARTED, payload=payload, correlation_id=key))
        return self.publisher.staged_arrays(uow, messages.WORKFLOW_TOPIC, envelopes)

    async def submit(self, uow: UnitOfWork, definition: schemas.WorkflowDefinition, *, correlation_id: str,
                     idempotency_scope: str | None) -> tuple[WorkflowRun, bool]:  # fmt: skip
        """Store a valid definition as a running run with its tasks; returns (run, created)."""
        errors, checked = self._issues(definition, "")
        if errors:
            raise self._refuse(errors)
        if idempotency_scope is not None:
            existing = await uow.session.scalar(
                select(WorkflowRun).where(WorkflowRun.idempotency_scope == idempotency_scope)
            )
            if existing is not None:
                return existing, False
        now = dt.datetime.now(dt.UTC)
        # Never more tasks than max_parallel: no process can exceed it, so they claim its tasks by their rows.
        free = len(definition.tasks) <= definition.max_parallel
        run = WorkflowRun(free=free, id=uuid.UUID(str(uuid7())), name=definition.name, namespace=definition.namespace,
                          status="running", cancel_requested=False, compensate=definition.on_failure == "compensate",
                          max_parallel=definition.max_parallel, inputs=definition.inputs, definition={},
                          idempotency_scope=idempotency_scope, correlation_id=correlation_id, created_at=now,
                          deadline_at=now + dt.timedelta(seconds=definition.timeout_s))  # fmt: skip
        task_ids, positions, kinds, specs, deps = self._task_arrays(checked)
        params = {
            "id": run.id, "free": free, "name": run.name, "namespace": run.namespace, "compensate": run.compensate,
            "max_parallel": run.max_parallel, "inputs": _text(run.inputs), "definition": checked.encoded,
            "scope": idempotency_scope, "correlation_id": correlation_id, "created_at": now,
            "deadline_at": run.deadline_at, "task_ids": task_ids, "positions": positions, "kinds": kinds,
            "specs": specs, "deps": deps, **self._events(uow, [(run.id, run.name)]),
        }  # fmt: skip
        uow.after_commit(self.waker)
        # One statement, committed on its own (one round trip): the run, its tasks, its two events.
        if (await uow.commit_one(_SUBMIT, params)).first() is None:
            # A concurrent submit with the same Idempotency-Key won the unique index: answer with its run.
            existing = await uow.session.scalar(
                select(WorkflowRun).where(WorkflowRun.idempotency_scope == idempotency_scope)
            )
            if existing is None:
                raise ProblemError(409, "A submit with this Idempotency-Key is in progress.", slug="conflict")
            return existing, False
        instruments.RUNS.labels(name=run.name).inc()
        return run, True

    async def submit_many(self, uow: UnitOfWork, definitions: Sequence[schemas.WorkflowDefinition], *,
                          correlation_id: str) -> list[uuid.UUID]:  # fmt: skip
        """Store valid definitions as running runs, all or none, in one statement; returns their ids in order.

        Raises:
            ProblemError: 422 naming every issue of every definition (none is stored).
        """
        checked = self.check_many(definitions)
        now = dt.datetime.now(dt.UTC)
        run_ids = [uuid.UUID(str(uuid7())) for _ in checked]
        columns: dict[str, list[Any]] = {k: [] for k in ("task_ids", "positions", "kinds", "specs", "deps",
                                                         "task_runs", "task_frees")}  # fmt: skip
        frees = []
        for run_id, one in zip(run_ids, checked, strict=True):
            free = len(one.definition.tasks) <= one.definition.max_parallel
            frees.append(free)
            arrays: tuple[list[Any], ...] = self._task_arrays(one)
            for name, values in zip(("task_ids", "positions", "kinds", "specs", "deps"), arrays, strict=True):
                columns[name] += values
            columns["task_runs"] += [run_id] * len(one.definition.tasks)
            columns["task_frees"] += [free] * len(one.definition.tasks)
        defs = [c.definition for c in checked]
        params = {
            "correlation_id": correlation_id, "created_at": now, "run_ids": run_ids, "names": [d.name for d in defs],
            "namespaces": [d.namespace for d in defs], "compensates": [d.on_failure == "compensate" for d in defs],
            "max_parallels": [d.max_parallel for d in defs], "frees": frees,
            "inputs": [_text(d.inputs) if d.inputs else "{}" for d in defs],
            "definitions": [c.encoded for c in checked],
            "deadlines": [now + dt.timedelta(seconds=d.timeout_s) for d in defs], **columns,
            **self._events(uow, [(run_id, d.name) for run_id, d in zip(run_ids, defs, strict=True)]),
        }  # fmt: skip
        uow.after_commit(self.waker)
        await uow.commit_one(_SUBMIT_MANY, params)
        for name, count in Counter(d.name for d in defs).items():
            instruments.RUNS.labels(name=name).inc(count)
        return run_ids
