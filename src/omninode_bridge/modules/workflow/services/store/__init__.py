"""The engine's statements: claim ready tasks, renew leases, complete or fail a task, advance a failing run.

Every transition is conditional: a claim (``claims.CLAIM``) takes tasks that are ``ready`` (or ``running`` with
an expired lease), under ``FOR UPDATE SKIP LOCKED`` of their run when ``max_parallel`` can bind (one process at
a time counts and starts them, so it holds across processes), by their own rows otherwise (any process, at
once); a completion or failure names the attempt it was claimed with and changes nothing when the task has
moved on (its lease expired and another process took it over). Every other transition locks the run's row ``FOR
UPDATE`` first, so it waits for the claims in flight on that run, and its lock order is run, then tasks.
"""

from __future__ import annotations

from omninode_bridge.modules.workflow.services.store._claimed import Claimed, backoff_seconds
from omninode_bridge.modules.workflow.services.store._transitions import EngineStore

__all__ = ["Claimed", "EngineStore", "backoff_seconds"]
