"""One viewer's Server-Sent Events of a run: a full snapshot, then each change, then the end.

The snapshot is the run as ``GET /workflows/{id}`` answers it (``snapshot``). Then, whenever the hub says
the run may have changed, or every poll interval when it did not (the fallback: a lost message, Redis
down), the stream reads the run's task rows without their outputs (a cheap read), compares them with what
the viewer has, and sends each task that changed (``task``, with its output) and the run when its state
changed (``run``). Once the run has ended it sends ``end`` (the final run) and closes. A reconnecting viewer
gets a new snapshot, so no event id or replay is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog
from litestar.response.sse import ServerSentEventMessage
from sqlalchemy import text

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.modules.workflow import schemas
from omninode_bridge.modules.workflow.services.live import LiveHub
from omninode_bridge.modules.workflow.services.runs import ENDED, RunService

__all__ = ["FALLBACK_POLL_SECONDS", "KEEPALIVE_SECONDS", "POLL_SECONDS", "TaskKey", "diff_tasks", "run_events"]

log = structlog.get_logger(__name__)

#: Poll of the rows while the hub is subscribed (only a lost message waits this long).
POLL_SECONDS = 2.0
#: Poll while the hub has no Redis channel (every change waits up to this long).
FALLBACK_POLL_SECONDS = 0.5
#: Shortest time between two reads of one viewer (a burst of changes is one read).
MIN_READ_GAP_SECONDS = 0.05
KEEPALIVE_SECONDS = 15.0

_TASK_ROWS = text(
    "SELECT task_id, phase, kind, status, depends_on, attempt, ready_at, started_at, finished_at, error "
    "FROM wf_tasks WHERE run_id = :run"
)
_OUTPUTS = text("SELECT task_id, phase, output FROM wf_tasks WHERE run_id = :run AND task_id = ANY(:ids)")
_RUN_ROW = text(
    "SELECT id AS run_id, name, namespace, status, outcome, error, created_at, finished_at FROM wf_runs WHERE id = :run"
)

#: What identifies a task's visible state (its output changes only with these).
TaskKey = tuple[Any, ...]
_encoder = msgspec.json.Encoder()


def _task_key(row: Any) -> TaskKey:
    """A ``wf_tasks`` row's visible state."""
    return row.status, row.attempt, row.ready_at, row.started_at, row.finished_at, row.error


def _state_key(task: schemas.TaskState) -> TaskKey:
    """The same for a task of the snapshot."""
    return task.status, task.attempts, task.ready_at, task.started_at, task.finished_at, task.error


def diff_tasks(known: dict[tuple[str, str], TaskKey], rows: list[Any]) -> list[Any]:
    """The rows whose visible state differs from ``known`` (new tasks included); ``known`` is updated."""
    changed = []
    for row in rows:
        key = _task_key(row)
        identity = (row.task_id, row.phase)
        if known.get(identity) != key:
            known[identity] = key
            changed.append(row)
    return changed


def _message(event: str, body: Any) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=event, data=_encoder.encode(body).decode())


def _summary(row: Any) -> schemas.RunSummary:
    """A run row (or a snapshot) as the API's run summary."""
    return schemas.RunSummary(run_id=row.run_id, name=row.name, namespace=row.namespace, status=row.status,
                              outcome=row.outcome, error=row.error, created_at=row.created_at,
                              finished_at=row.finished_at)  # fmt: skip


async def _changes(
    database: Database, run_id: uuid.UUID, known: dict[tuple[str, str], TaskKey]
) -> tuple[Any, list[schemas.TaskState]]:
    """The run's row and the tasks that changed since ``known`` (with their outputs); ``known`` is updated only
    when everything was read, so a failed read loses no change."""
    seen = dict(known)
    async with database.unit_of_work() as uow:
        run = (await uow.session.execute(_RUN_ROW, {"run": run_id})).first()
        rows = list((await uow.session.execute(_TASK_ROWS, {"run": run_id})).all())
        changed = diff_tasks(seen, rows)
        outputs: dict[tuple[str, str], Any] = {}
        if changed:
            found = await uow.session.execute(_OUTPUTS, {"run": run_id, "ids": list({r.task_id for r in changed})})
            outputs = {(r.task_id, r.phase): r.output for r in found}
    known.update(seen)
    tasks = [schemas.TaskState(task_id=r.task_id, phase=r.phase, kind=r.kind, status=r.status,
                               depends_on=list(r.depends_on), attempts=r.attempt, ready_at=r.ready_at,
                               started_at=r.started_at, finished_at=r.finished_at,
                               output=outputs.get((r.task_id, r.phase)), error=r.error)
             for r in changed]  # fmt: skip
    # Forward tasks in the order they were drawn, compensations after them (as GET /workflows/{id} lists them).
    tasks.sort(key=lambda t: t.phase != "forward")
    return run, tasks


async def run_events(
    database: Database, runs: RunService, hub: LiveHub, run_id: uuid.UUID
) -> AsyncIterator[ServerSentEventMessage]:
    """The SSE messages of one viewer of ``run_id`` (checked to exist and be visible by the caller).

    Args:
        database: Reads the run's rows.
        runs: Builds the snapshot (as ``GET /workflows/{id}``).
        hub: Wakes the stream when the run may have changed.
        run_id: The run.
    """
    with hub.watch(run_id) as wake:  # before the snapshot: a change while it is read wakes the first poll
        try:
            async with database.unit_of_work() as uow:
                state = await runs.state(uow, await runs.get(uow, run_id))
        except ProblemError:
            return
        yield ServerSentEventMessage(data=None, comment="connected", retry=1000)
        yield _message("snapshot", state)
        if state.status in ENDED:
            yield _message("end", _summary(state))
            return
        known = {(t.task_id, t.phase): _state_key(t) for t in state.tasks}
        last_run = (state.status, state.outcome, state.error, state.finished_at)
        last_sent = time.monotonic()
        while True:
            timeout = POLL_SECONDS if hub.subscribed else FALLBACK_POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()
            try:
                run, tasks = await _changes(database, run_id, known)
            except Exception as exc:  # the database is away: keep the viewer and try again next round
                log.info("workflow live: read failed", run_id=str(run_id), error=describe_error(exc))
                run, tasks = "unread", []
            if run is None:  # the run was deleted
                return
            for task in tasks:
                yield _message("task", task)
                last_sent = time.monotonic()
            if run != "unread":
                current = (run.status, run.outcome, run.error, run.finished_at)
                if current != last_run:
                    last_run = current
                    summary = _summary(run)
                    yield _message("end" if run.status in ENDED else "run", summary)
                    last_sent = time.monotonic()
                    if run.status in ENDED:
                        return
            if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                last_sent = time.monotonic()
            await asyncio.sleep(MIN_READ_GAP_SECONDS)
