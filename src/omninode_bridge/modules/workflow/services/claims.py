"""The claim statement of the engine (``EngineStore.claim``): which runnable tasks a process takes, and how."""

from __future__ import annotations

from sqlalchemy import text

__all__ = ["CLAIM"]

# Two ways to claim, in one statement (``chosen``: the union of both):
#
# * "held" runs (more tasks than ``max_parallel``) are claimed under ``FOR UPDATE OF r SKIP LOCKED`` of their
#   row, so one process at a time counts their running tasks and starts at most ``max_parallel``. Each run's
#   ready tasks are read through ix_wf_tasks_run_ready, at most as many as it may start; its running ones
#   through ix_wf_tasks_run_busy. The update finds the chosen rows by ctid: joined on the key, the planner (a
#   CTE is estimated at one row) read every task of the run for each chosen one. A row changed since the
#   statement's snapshot (its ctid no longer matches on the re-check) is skipped, never claimed twice.
# * "free" tasks (their run cannot exceed ``max_parallel``, or compensations, which run one after the other)
#   are claimed by their own rows (``FOR UPDATE SKIP LOCKED``, ix_wf_tasks_free_ready), so several processes
#   take disjoint tasks of one run at once. Their runs are locked ``FOR SHARE`` (``SKIP LOCKED``): claims do not
#   exclude each other, but a transition that locks the run ``FOR UPDATE`` (a completion through
#   ``complete``/``fail``, a cancel, the end of the run in ``batch.settle``) waits for the claims in flight and
#   is not overtaken by one; a task whose run it holds is left. The tasks are picked on their own (a join with
#   their runs there was joined for every ready task before the sort and limit: 9,000 buffer reads for 256
#   claimed of 3,000 ready), and the locked runs filter them as an array (joined as two CTEs, a nested loop of
#   tasks x runs: 65,280 row comparisons for 256 single-task runs). The run ends in ``batch.settle`` after the
#   claim commits (see there).
CLAIM = text("""
WITH runs AS (
    SELECT r.id, r.max_parallel - (SELECT count(*) FROM wf_tasks x WHERE x.run_id = r.id AND x.status = 'running'
                                   AND x.lease_until >= clock_timestamp()) AS slots
    FROM wf_runs r
    WHERE r.status IN ('running', 'compensating') AND NOT r.free AND (
        EXISTS (SELECT 1 FROM wf_tasks t WHERE t.run_id = r.id AND t.status = 'ready' AND NOT t.free
                AND t.next_run_at <= clock_timestamp() AND (CAST(:kinds AS text[]) IS NULL OR t.kind = ANY(:kinds)))
        OR EXISTS (SELECT 1 FROM wf_tasks t WHERE t.run_id = r.id AND t.status = 'running' AND NOT t.free
                   AND t.lease_until < clock_timestamp()))
    ORDER BY r.id LIMIT :runs FOR UPDATE OF r SKIP LOCKED
), candidates AS (
    SELECT x.tid, x.run_id, x.task_id, x.phase, x.next_run_at, x.previous, x.slots,
        row_number() OVER (PARTITION BY x.run_id ORDER BY x.next_run_at) AS rank
    FROM (
        SELECT t.tid, t.run_id, t.task_id, t.phase, t.next_run_at, 'ready'::text AS previous, runs.slots
        FROM runs CROSS JOIN LATERAL (
            SELECT w.ctid AS tid, w.run_id, w.task_id, w.phase, w.next_run_at FROM wf_tasks w
            WHERE w.run_id = runs.id AND w.status = 'ready' AND NOT w.free AND w.next_run_at <= clock_timestamp()
              AND (CAST(:kinds AS text[]) IS NULL OR w.kind = ANY(:kinds))
            ORDER BY w.next_run_at LIMIT greatest(least(runs.slots, :limit), 0)) t
        UNION ALL
        SELECT t.ctid, t.run_id, t.task_id, t.phase, t.next_run_at, 'running'::text, runs.slots
        FROM runs JOIN wf_tasks t ON t.run_id = runs.id
        WHERE t.status = 'running' AND NOT t.free AND t.lease_until < clock_timestamp()
          AND (CAST(:kinds AS text[]) IS NULL OR t.kind = ANY(:kinds))
    ) x
), held AS (
    SELECT c.tid, c.run_id, c.task_id, c.phase, c.previous
    FROM candidates c JOIN runs ON runs.id = c.run_id
    WHERE c.rank <= c.slots ORDER BY c.next_run_at LIMIT :limit
), free_ready AS (
    SELECT w.ctid AS tid, w.run_id, w.task_id, w.phase, 'ready'::text AS previous FROM wf_tasks w
    WHERE w.status = 'ready' AND w.free AND w.next_run_at <= clock_timestamp()
      AND (CAST(:kinds AS text[]) IS NULL OR w.kind = ANY(:kinds))
    ORDER BY w.next_run_at LIMIT greatest(:limit - (SELECT count(*) FROM held), 0) FOR UPDATE SKIP LOCKED
), free_expired AS (
    SELECT w.ctid AS tid, w.run_id, w.task_id, w.phase, 'running'::text AS previous FROM wf_tasks w
    WHERE w.status = 'running' AND w.free AND w.lease_until < clock_timestamp()
      AND (CAST(:kinds AS text[]) IS NULL OR w.kind = ANY(:kinds))
    LIMIT greatest(:limit - (SELECT count(*) FROM held) - (SELECT count(*) FROM free_ready), 0)
    FOR UPDATE SKIP LOCKED
), free_runs AS (
    SELECT r.id FROM wf_runs r
    WHERE r.id = ANY(ARRAY(SELECT run_id FROM free_ready UNION SELECT run_id FROM free_expired))  -- by key
      AND r.status IN ('running', 'compensating')
    FOR SHARE SKIP LOCKED
), chosen AS (
    SELECT tid, run_id, task_id, phase, previous FROM held
    UNION ALL
    -- the tasks whose run this claim locked (an array: a join of the two CTEs ran as a nested loop)
    SELECT f.tid, f.run_id, f.task_id, f.phase, f.previous
    FROM (SELECT * FROM free_ready UNION ALL SELECT * FROM free_expired) f
    WHERE f.run_id = ANY(ARRAY(SELECT id FROM free_runs))
), updated AS (
    -- Joined to the chosen tasks alone (the runs' columns are read afterwards), so each is found by its ctid. Joined
    -- to wf_runs too, the planner (statistics of runs with a task or two) looked tasks up by run id alone and
    -- filtered every task of the run for each one claimed: 215-297 ms for 256 tasks of a 1,000-task run, with the
    -- dead versions of its claimed tasks (auto_explain in bench.workflow's fan-out), against 6-10 ms this way.
    UPDATE wf_tasks t SET status = 'running', attempt = t.attempt + 1, lease_owner = :worker,
        lease_until = clock_timestamp() + make_interval(secs => :lease), started_at = clock_timestamp()
    FROM chosen c
    WHERE t.ctid = c.tid AND t.run_id = c.run_id AND t.task_id = c.task_id AND t.phase = c.phase
      AND (t.status = 'ready' OR (t.status = 'running' AND t.lease_until < clock_timestamp()))
    RETURNING t.run_id, t.task_id, t.phase, t.kind, t.spec, t.attempt, t.retry_base, t.ready_at, t.started_at,
        c.previous, t.free, t.ctid AS tid
)
SELECT u.run_id, u.task_id, u.phase, u.kind, u.spec, u.attempt, u.retry_base, u.ready_at, u.started_at, u.previous,
    r.inputs, r.name, r.correlation_id, r.has_ai, u.free, u.tid
FROM updated u JOIN wf_runs r ON r.id = u.run_id
""")
