"""Prometheus instruments of the workflow module, and the gauges of what is in flight (:func:`refresh_gauges`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import text

from omninode_bridge.core.db import UnitOfWork

__all__ = ["ACTIVE_RUNS", "ACTIVE_TASKS", "DISPATCH", "DURATION", "QUEUE_DEPTH", "RUNS", "TASKS", "refresh_gauges"]

RUNS = Counter("omninode_workflow_runs_total", "Workflow runs submitted", ["name"])
TASKS = Counter("omninode_workflow_tasks_total", "Workflow task attempts by kind and how they ended",
                ["kind", "status"])  # fmt: skip
DISPATCH = Histogram("omninode_workflow_dispatch_seconds", "Time from a task being ready to its claim",
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))  # fmt: skip
DURATION = Histogram("omninode_workflow_task_seconds", "Duration of a task attempt", ["kind"])
ACTIVE_RUNS = Gauge("omninode_workflow_runs_active", "Runs not ended yet, by state (all processes)", ["status"])
ACTIVE_TASKS = Gauge("omninode_workflow_tasks_active", "Tasks of runs not ended: ready (due or waiting for a retry "
                     "backoff), running, waiting for dependencies (all processes)", ["status"])  # fmt: skip
QUEUE_DEPTH = Gauge("omninode_workflow_queue_depth", "Tasks due to run that no process has claimed yet")

_RUN_STATES = ("running", "failing", "compensating")
_TASK_STATES = ("ready", "running", "waiting")
# Only the rows of what is in flight, through the partial indexes (ix_wf_runs_active, ix_wf_tasks_run_ready,
# ix_wf_tasks_run_busy): the cost follows the backlog, not the history.
_RUNS = text("SELECT status, count(*) FROM wf_runs WHERE status IN ('running', 'failing', 'compensating') "
             "GROUP BY status")  # fmt: skip
_READY = text("SELECT count(*), count(*) FILTER (WHERE next_run_at <= clock_timestamp()) FROM wf_tasks "
              "WHERE status = 'ready'")  # fmt: skip
_BUSY = text("SELECT status, count(*) FROM wf_tasks WHERE status IN ('running', 'waiting') GROUP BY status")


async def refresh_gauges(uow: UnitOfWork) -> None:
    """Set the gauges of runs and tasks in flight and of the queue from the database (read only)."""
    runs = dict.fromkeys(_RUN_STATES, 0) | {row[0]: row[1] for row in await uow.session.execute(_RUNS)}
    ready, due = (await uow.session.execute(_READY)).one()
    tasks = dict.fromkeys(_TASK_STATES, 0) | {row[0]: row[1] for row in await uow.session.execute(_BUSY)}
    tasks["ready"] = ready
    for status, count in runs.items():
        ACTIVE_RUNS.labels(status=status).set(count)
    for status, count in tasks.items():
        ACTIVE_TASKS.labels(status=status).set(count)
    QUEUE_DEPTH.set(due)
