"""The claim transaction's second half, set-based: attempt rows, tasks done in-process, dependents, runs ended.

A claimed batch costs one statement whatever its size (``_FINISH``): the attempt rows, the completion of the
tasks run in the claim transaction itself (``noop``: nothing to wait for), their dependents made ready, the runs
whose last task that was ended, and every event of the batch staged in the outbox (each task's start, the inline
tasks' completion, the runs' completion). The claim holds the lock of each run's row until the commit (``FOR
UPDATE``, or ``FOR SHARE`` for free runs, whose claims run side by side), so an inline completion cannot
be fenced out or raced by another transition.

Two claims of one free run each complete some of its tasks and each sees the other's as not done yet: neither
could end the run. So a free run that a batch did not end is *settled* after the commit (:func:`settle`): its
row locked ``FOR UPDATE SKIP LOCKED``, then a new statement (a new snapshot, which sees every claim that
committed before the lock was granted) ends it when its last task is done. A skipped run is locked by a
transaction that will see this commit: a claim in flight (it holds ``FOR SHARE`` until its commit and settles
after it) or a ``FOR UPDATE`` transition (granted only after this claim's commit). The engine retries skipped
runs, and its sweep settles any run a process left unsettled (it died in between): :func:`stranded`. A run
in which the batch made a dependent ready (or counted one down) is not settled: that task is still to do, and
the claim that completes it ends the run (dependents are locked by each claim that counts them down, in turn).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import text

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import EventPublisher, encoded_envelopes, outbox_rows_sql
from omninode_bridge.modules.workflow import messages
from omninode_bridge.modules.workflow.services.store import Claimed

__all__ = ["INLINE_BATCH", "INLINE_KINDS", "STRANDED_PAGE", "Batch", "Done", "settle", "start_batch", "stranded"]

#: Kinds whose result is known at claim time; they complete in the claim transaction.
INLINE_KINDS = frozenset({"noop"})
#: Inline tasks claimed per transaction (they hold no concurrency slot: a batch is done when it commits).
INLINE_BATCH = 256
#: An event to stage: its type, payload and key (the run id).
_Event = tuple[str, Any, str]
#: The outbox rows _FINISH writes: all but the run-completed events of runs it did not end.
_GATE = f"(staged.event_type <> '{messages.RUN_COMPLETED}' OR staged.key IN (SELECT id::text FROM ended))"  # noqa: S608

# The whole second half of a claim transaction in one statement (one round trip: the claim's lock is held, and
# its commit waits, for one statement instead of five). Its parts, as CTEs over the same snapshot:
#
# * ``attempts``: an attempt row per claimed task (completed at once for the inline ones);
# * ``done``: the inline tasks completed (forward tasks of running runs only, what the engine hands over: their
#   run's row is locked by the claim, and "waiting" tasks are never among them, so this and ``ready`` touch
#   different rows);
# * ``counts``/``ready``: their dependents, with how many of their dependencies ``done`` completed, made ready
#   when none is left. Two claims of one free run may complete dependencies of the same tasks: the dependents are
#   locked in key order (no deadlock between them), and the update re-checks that they still wait (a cancel may
#   have come first);
# * ``ended``: the runs of ``done`` left with no forward task to do, counting the ones ``done`` completes (the
#   snapshot still shows them running);
# * ``outbox``: every event of the batch, built before the statement: the run-completed ones for each run of
#   ``done`` (the gate keeps those of the runs ``ended`` ended).
_FINISH = text(f"""
WITH attempts AS (
    INSERT INTO wf_task_attempts (run_id, task_id, phase, attempt, worker, status, started_at, finished_at)
    SELECT a.run_id, a.task_id, a.phase, a.attempt, :worker, a.status, a.started_at,
        CASE WHEN a.status = 'running' THEN NULL ELSE clock_timestamp() END
    FROM unnest(CAST(:runs AS uuid[]), CAST(:tasks AS text[]), CAST(:phases AS text[]), CAST(:attempts AS int[]),
                CAST(:statuses AS text[]), CAST(:started AS timestamptz[]))
        AS a(run_id, task_id, phase, attempt, status, started_at)
), done AS (
    UPDATE wf_tasks t SET status = i.status, output = i.output, error = NULL, finished_at = clock_timestamp(),
        lease_owner = NULL, lease_until = NULL
    FROM unnest(CAST(:done_tids AS tid[]), CAST(:done_runs AS uuid[]), CAST(:done_tasks AS text[]),
                CAST(:done_attempts AS int[]), CAST(:done_statuses AS text[]), CAST(:done_outputs AS jsonb[]),
                CAST(:done_workers AS text[]))
        AS i(tid, run_id, task_id, attempt, status, output, worker)
    -- Each row by the ctid of the version this transaction's claim wrote: a TID lookup per task. Every condition
    -- is a join condition against the unnest, none restricts wf_tasks alone (not even its phase, which the version
    -- pins): the planner then sizes wf_tasks by its pages and never takes it whole as the inner side of a loop over
    -- the batch. With a restriction of its own ("phase = 'forward'", "status = 'running'", "lease_owner = :worker"),
    -- estimated at a row or two from the statistics of a nearly empty table or the generic plan, it did, one way
    -- round or the other: 160-246 ms for a batch of 256-288 tasks against a few ms (auto_explain in bench.workflow).
    -- The attempt and the lease this claim took stay checked (the fence).
    WHERE t.ctid = i.tid AND t.run_id = i.run_id AND t.task_id = i.task_id AND t.attempt = i.attempt
      AND t.lease_owner = i.worker
    RETURNING t.run_id, t.task_id
), counts AS MATERIALIZED (
    -- the waiting tasks of the batch's runs (ix_wf_tasks_run_busy), with how many of their dependencies it completed
    SELECT w.run_id, w.task_id,
        (SELECT count(*) FROM done d WHERE d.run_id = w.run_id AND d.task_id = ANY(w.depends_on)) AS n
    FROM wf_tasks w
    WHERE w.run_id IN (SELECT run_id FROM done) AND w.status = 'waiting' AND w.phase = 'forward'
      AND EXISTS (SELECT 1 FROM done d WHERE d.run_id = w.run_id AND d.task_id = ANY(w.depends_on))
    ORDER BY w.run_id, w.task_id FOR UPDATE OF w
), ready AS (
    UPDATE wf_tasks w SET pending_deps = w.pending_deps - c.n,
        status = CASE WHEN w.pending_deps = c.n THEN 'ready' ELSE w.status END,
        ready_at = CASE WHEN w.pending_deps = c.n THEN clock_timestamp() ELSE w.ready_at END,
        next_run_at = CASE WHEN w.pending_deps = c.n THEN clock_timestamp() ELSE w.next_run_at END
    FROM counts c WHERE c.n > 0 AND w.run_id = c.run_id AND w.task_id = c.task_id AND w.phase = 'forward'
      AND w.status = 'waiting'
    RETURNING w.run_id, w.status
), ended AS (
    UPDATE wf_runs r SET status = 'completed', outcome = NULL, finished_at = clock_timestamp()
    WHERE r.id = ANY(ARRAY(SELECT DISTINCT run_id FROM done)) AND r.status = 'running' AND NOT EXISTS (
        SELECT 1 FROM wf_tasks t WHERE t.run_id = r.id AND t.phase = 'forward'
          AND t.status NOT IN ('completed', 'skipped')
          -- hashed once (uncorrelated): an anti-join scanned the whole CTE for each task (O(n^2) per batch)
          AND (t.run_id, t.task_id) NOT IN (SELECT run_id, task_id FROM done))
    RETURNING r.id
), outbox AS ({outbox_rows_sql(_GATE)})
SELECT (SELECT count(*) FROM ready WHERE status = 'ready') AS ready, ARRAY(SELECT id FROM ended) AS ended,
    ARRAY(SELECT DISTINCT run_id FROM ready) AS going_on
""")  # noqa: S608 - our own SQL and the outbox's

_END_RUNS = text("""
UPDATE wf_runs r SET status = 'completed', outcome = NULL, finished_at = clock_timestamp()
WHERE r.id = ANY(CAST(:runs AS uuid[])) AND r.status = 'running' AND NOT EXISTS (
    SELECT 1 FROM wf_tasks t WHERE t.run_id = r.id AND t.phase = 'forward' AND t.status NOT IN ('completed', 'skipped'))
RETURNING r.id, r.name
""")


_NIL = uuid.UUID(int=0)

_LOCK_FREE = text(
    "SELECT id, status FROM wf_runs WHERE id = ANY(CAST(:runs AS uuid[])) ORDER BY id FOR UPDATE SKIP LOCKED"
)

#: Running runs one sweep looks at (:func:`stranded`): a page, so that a sweep's cost does not grow with the runs
#: waiting to be claimed (checking each of 3,000 waiting runs took 183 ms, every poll).
STRANDED_PAGE = 200

# The next page of running free runs after :after (ix_wf_runs_active, in id order), and of those the ones with
# nothing left to claim or wait for (ix_wf_tasks_run_ready, ix_wf_tasks_run_busy), locked: candidates for
# _END_RUNS, which checks every task. ``last`` is the page's last id, where the next sweep goes on.
_STRANDED = text("""
WITH page AS (
    SELECT id FROM wf_runs WHERE status = 'running' AND free AND id > :after ORDER BY id LIMIT :page
)
SELECT r.id, (SELECT id FROM page ORDER BY id DESC LIMIT 1) AS last, (SELECT count(*) FROM page) AS seen
FROM wf_runs r WHERE r.id = ANY(ARRAY(SELECT id FROM page)) AND r.status = 'running'  -- by key (joined to the CTE,
  -- every running run was compared with the whole page)
  AND NOT EXISTS (SELECT 1 FROM wf_tasks t WHERE t.run_id = r.id AND t.status = 'ready')
  AND NOT EXISTS (SELECT 1 FROM wf_tasks t WHERE t.run_id = r.id AND t.status IN ('running', 'waiting'))
FOR UPDATE OF r SKIP LOCKED
""")
_PAGE_END = text("SELECT (array_agg(id ORDER BY id DESC))[1], count(*) FROM (SELECT id FROM wf_runs "
                 "WHERE status = 'running' AND free AND id > :after ORDER BY id LIMIT :page) page")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Done:
    """An inline task's result: its output, or skipped (its ``when`` was false)."""

    task: Claimed
    output: Any
    skipped: bool = False


@dataclass(slots=True)
class Batch:
    """What a batch's commit changed: whether a claim was full, the runs it ended, how many tasks became ready,
    and the free runs it completed tasks of without ending them (to :func:`settle` after the commit)."""

    full: bool = False
    ended: list[uuid.UUID] = field(default_factory=list)
    ready: int = 0
    unsettled: dict[uuid.UUID, Claimed] = field(default_factory=dict)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def start_batch(uow: UnitOfWork, publisher: EventPublisher, worker: str, claimed: Sequence[Claimed],
                      inline: Sequence[Done]) -> Batch:  # fmt: skip
    """Write the attempts of ``claimed`` (``inline`` ones already completed), complete ``inline``, ready their
    dependents, end the runs they finished, and stage every event: one statement (``_FINISH``), in ``uow``,
    which the caller commits."""
    batch = Batch()
    if not claimed:
        return batch
    finished = {(d.task.run_id, d.task.task_id, d.task.phase) for d in inline}
    statuses = ["completed" if (c.run_id, c.task_id, c.phase) in finished else "running" for c in claimed]
    # (event type, payload, key) of each event: their envelopes are built together (encoded_envelopes).
    events: list[_Event] = [(messages.TASK_STARTED, messages.TaskEvent(
        run_id=c.run_id, task_id=c.task_id, phase=c.phase, kind=c.kind, status="running", attempt=c.attempt),
        str(c.run_id)) for c in claimed]  # fmt: skip
    for d in inline:
        status = "skipped" if d.skipped else "completed"
        events.append((messages.TASK_SKIPPED if d.skipped else messages.TASK_COMPLETED, messages.TaskEvent(
            run_id=d.task.run_id, task_id=d.task.task_id, phase="forward", kind=d.task.kind, status=status,
            attempt=d.task.attempt, duration_ms=0.0), str(d.task.run_id)))  # fmt: skip
    # A run-completed event for every run the inline tasks may end; the statement stages those of the runs it ended.
    runs = {d.task.run_id: d.task.run_name for d in inline}
    events += [(messages.RUN_COMPLETED, messages.RunEvent(run_id=run_id, name=name, status="completed"),
                str(run_id)) for run_id, name in runs.items()]  # fmt: skip
    row = (await uow.session.execute(_FINISH, {
        "worker": worker, "runs": [c.run_id for c in claimed], "tasks": [c.task_id for c in claimed],
        "phases": [c.phase for c in claimed], "attempts": [c.attempt for c in claimed], "statuses": statuses,
        "started": [c.started_at for c in claimed],
        "done_tids": [d.task.tid for d in inline],
        "done_runs": [d.task.run_id for d in inline], "done_tasks": [d.task.task_id for d in inline],
        "done_attempts": [d.task.attempt for d in inline],
        "done_statuses": ["skipped" if d.skipped else "completed" for d in inline],
        "done_outputs": [_json(d.output) for d in inline], "done_workers": [worker] * len(inline),
        **publisher.staged_arrays(uow, messages.WORKFLOW_TOPIC, encoded_envelopes(events))})).one()  # fmt: skip
    batch.ready = int(row.ready)
    batch.ended = list(row.ended)
    # A run this batch made a dependent of ready (or counted one down) has a task left: whoever completes that one
    # ends the run, so it needs no settling (a chain of inline tasks settled once per step).
    done_with = {*batch.ended, *row.going_on}
    batch.unsettled = {d.task.run_id: d.task for d in inline if d.task.free and d.task.run_id not in done_with}
    return batch


async def _end_runs(uow: UnitOfWork, runs: list[uuid.UUID], events: list[_Event]) -> list[uuid.UUID]:
    ended = []
    for row in await uow.session.execute(_END_RUNS, {"runs": runs}):
        ended.append(row.id)
        payload = messages.RunEvent(run_id=row.id, name=row.name, status="completed")
        events.append((messages.RUN_COMPLETED, payload, str(row.id)))
    return ended


async def settle(uow: UnitOfWork, publisher: EventPublisher, runs: Sequence[uuid.UUID]) -> tuple[
        list[uuid.UUID], list[uuid.UUID]]:  # fmt: skip
    """End the free ``runs`` whose last task is done, after the claims that completed their tasks committed.

    Returns (the runs ended, the runs skipped: locked by another transaction, to try again); in ``uow``, which
    the caller commits."""
    locked = {row.id: row.status for row in await uow.session.execute(_LOCK_FREE, {"runs": list(runs)})}
    running = [run_id for run_id, status in locked.items() if status == "running"]
    events: list[_Event] = []
    ended = await _end_runs(uow, running, events) if running else []
    if events:
        await publisher.publish_many(uow, messages.WORKFLOW_TOPIC, encoded_envelopes(events))
    return ended, [run_id for run_id in runs if run_id not in locked]


async def stranded(uow: UnitOfWork, publisher: EventPublisher, after: uuid.UUID) -> tuple[list[uuid.UUID], uuid.UUID]:
    """Settle the free runs whose last task is done but that no process settled (it died after its claim), among
    the next :data:`STRANDED_PAGE` running free runs after ``after``.

    Returns (the runs ended, where the next sweep goes on: the nil UUID after the last page)."""
    params = {"after": after, "page": STRANDED_PAGE}
    rows = (await uow.session.execute(_STRANDED, params)).all()
    if rows:
        last, seen = rows[0].last, rows[0].seen
    else:  # none to settle: where the page ended all the same
        last, seen = (await uow.session.execute(_PAGE_END, params)).one()
    events: list[_Event] = []
    ended = await _end_runs(uow, [row.id for row in rows], events) if rows else []
    if events:
        await publisher.publish_many(uow, messages.WORKFLOW_TOPIC, encoded_envelopes(events))
    return ended, (last if seen == STRANDED_PAGE else _NIL)
