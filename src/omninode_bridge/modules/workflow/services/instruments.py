"""Prometheus instruments of the workflow module."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["DISPATCH", "DURATION", "RUNS", "TASKS"]

RUNS = Counter("omninode_workflow_runs_total", "Workflow runs submitted", ["name"])
TASKS = Counter("omninode_workflow_tasks_total", "Workflow task attempts by kind and how they ended",
                ["kind", "status"])  # fmt: skip
DISPATCH = Histogram("omninode_workflow_dispatch_seconds", "Time from a task being ready to its claim",
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))  # fmt: skip
DURATION = Histogram("omninode_workflow_task_seconds", "Duration of a task attempt", ["kind"])
