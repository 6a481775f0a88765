"""Workflow definitions (the request body of ``POST /workflows``) and the API's response bodies.

A definition is a DAG of typed tasks. ``params`` are checked per ``kind`` at submit (see
``services.validation``); strings in them may hold templates, ``{{ inputs.x }}`` or
``{{ tasks.<id>.output.<path> }}`` (see ``services.templates``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import Identifier, text

__all__ = [
    "AiParams",
    "BatchAccepted",
    "EmitParams",
    "HttpParams",
    "Kind",
    "RetryPolicy",
    "RunAccepted",
    "RunPage",
    "RunState",
    "RunSummary",
    "SleepParams",
    "SqlParams",
    "TaskAttempt",
    "TaskSpec",
    "TaskState",
    "WorkflowBatch",
    "WorkflowDefinition",
]

Kind = Literal["ai", "http", "sql", "emit", "noop", "sleep"]
TaskId = Annotated[str, text(min_length=1, max_length=64, pattern=r"[A-Za-z_][A-Za-z0-9_-]{0,63}")]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]


class RetryPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Attempts of a task and the wait between them: ``initial_backoff_s * multiplier**(n-1)``, capped at
    ``max_backoff_s``, times a random factor in ``[1 - jitter, 1]``."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    initial_backoff_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 0.5
    max_backoff_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 60.0
    multiplier: Annotated[float, msgspec.Meta(ge=1, le=10)] = 2.0
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2


class CompensationSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """A task run if the workflow fails after the task it belongs to completed (it may use that task's output)."""

    kind: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    timeout_s: Seconds = 60.0


class TaskSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One task of a workflow.

    Attributes:
        id: Unique in the workflow; upstream outputs are referenced by it.
        kind: ``ai``, ``http``, ``sql``, ``emit``, ``noop`` or ``sleep``.
        depends_on: Tasks that must complete (or be skipped) first.
        params: The kind's parameters; strings may hold templates.
        retry: Attempts and backoff.
        timeout_s: One attempt's time limit.
        when: A template; the task runs when it evaluates truthy, else it is recorded as skipped.
        compensate: Undoes the task if the workflow fails after it completed.
    """

    id: TaskId
    kind: str
    depends_on: Annotated[list[TaskId], msgspec.Meta(max_length=1000)] = msgspec.field(default_factory=list)
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    timeout_s: Seconds = 60.0
    when: Annotated[str, text(max_length=1000)] | None = None
    compensate: CompensationSpec | None = None


class WorkflowDefinition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """A workflow: its tasks and dependencies, inputs, overall timeout, parallelism and failure policy."""

    name: Identifier
    tasks: Annotated[list[TaskSpec], msgspec.Meta(min_length=1)]
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    timeout_s: Seconds = 3600.0
    max_parallel: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    on_failure: Literal["compensate", "stop"] = "compensate"
    namespace: Identifier | None = None


class WorkflowBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Many workflows submitted at once (``POST /workflows/batch``): each validated, all stored or none."""

    workflows: Annotated[list[WorkflowDefinition], msgspec.Meta(min_length=1, max_length=10_000)]


# Kind parameters ----------------------------------------------------------------------------------------------
class AiParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An AI task, run by the metrics module (routed, measured, fed back)."""

    task_type: str
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    strategy: Literal["quality", "cost", "latency", "balanced"] = "balanced"
    constraints: dict[str, Any] | None = None
    model: str | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None


class HttpParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An HTTP call (SSRF-checked; each attempt sends ``Idempotency-Key: <run_id>:<task_id>``)."""

    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    json: Any = None
    body: str | None = None
    expect: Annotated[list[int], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [200, 201, 202, 204]
    )
    max_response_bytes: Annotated[int, msgspec.Meta(ge=1)] | None = None


class SqlParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A named query of ``contracts/workflow/queries.yaml`` and its bind parameters (never SQL text)."""

    query: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class EmitParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An event staged in the outbox with the task's completion."""

    topic: str
    event_type: str
    payload: Any = None


class SleepParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Wait (tests and benchmarks)."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 0.0
    fail_times: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0


# Responses ----------------------------------------------------------------------------------------------------
RunStatus = Literal["running", "failing", "compensating", "completed", "failed", "cancelled"]
TaskStatus = Literal["waiting", "ready", "running", "completed", "failed", "skipped", "cancelled"]


class RunAccepted(msgspec.Struct, kw_only=True):
    """A run accepted (202); poll ``status_url``."""

    run_id: uuid.UUID
    status: str
    status_url: str


class BatchAccepted(msgspec.Struct, kw_only=True):
    """A bulk submit accepted (202): the run ids in the order of the definitions, each at ``/workflows/{id}``."""

    run_ids: list[uuid.UUID]
    status: str = "running"


class TaskAttempt(msgspec.Struct, kw_only=True):
    """One attempt of a task."""

    attempt: int
    worker: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None


class TaskState(msgspec.Struct, kw_only=True):
    """A task of a run; ``phase`` is ``forward`` or ``compensate``."""

    task_id: str
    phase: str
    kind: str
    status: str
    depends_on: list[str]
    attempts: int
    ready_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    output: Any
    error: str | None
    attempt_log: list[TaskAttempt] | None = None


class RunSummary(msgspec.Struct, kw_only=True):
    """A run without its tasks."""

    run_id: uuid.UUID
    name: str
    namespace: str | None
    status: str
    outcome: str | None
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


class RunState(RunSummary, kw_only=True):
    """A run with every task (``?wait`` answers with it when the run ended in time)."""

    inputs: dict[str, Any]
    tasks: list[TaskState]


class RunPage(msgspec.Struct, kw_only=True):
    """A page of runs, newest first."""

    items: list[RunSummary]
    next_cursor: str | None
