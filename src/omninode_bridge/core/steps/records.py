"""What a run leaves behind, and the recorder that writes it: the run-record tables and the outbox.

The execution, its steps and its transitions go in as one statement; the run's events go to the outbox in
the same unit of work. A failed run is written in a transaction of its own (:meth:`RunRecorder.separate`),
so recording it never touches the transaction of the work that failed.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import text

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.events import EventPublisher, new_envelope

__all__ = ["RunRecord", "RunRecorder", "StepRecord", "StepStatus", "TransitionRecord"]

StepStatus = Literal["completed", "failed", "skipped"]

# The three inserts of a finished run as data-modifying CTEs: one round trip instead of three (the foreign
# keys are checked at the end of the statement, after the execution row exists).
_WRITE_RUN = text("""
WITH execution AS (
    INSERT INTO workflow_executions (id, workflow_type, contract_version, correlation_id, namespace, state, degraded,
                                     started_at, completed_at, duration_ms, error, result)
    VALUES (:id, :workflow_type, :contract_version, :correlation_id, :namespace, :state, :degraded, :started_at,
            :completed_at, :duration_ms, :error, CAST(:result AS jsonb))
), steps AS (
    INSERT INTO workflow_steps (workflow_id, position, name, step_type, status, optional, started_at, duration_ms,
                                timeout_ms, error, output)
    SELECT :id, * FROM unnest(CAST(:step_positions AS smallint[]), CAST(:step_names AS text[]),
                              CAST(:step_types AS text[]), CAST(:step_statuses AS text[]),
                              CAST(:step_optional AS boolean[]), CAST(:step_started AS timestamptz[]),
                              CAST(:step_durations AS float8[]), CAST(:step_timeouts AS integer[]),
                              CAST(:step_errors AS text[]), CAST(:step_outputs AS jsonb[]))
)
INSERT INTO fsm_transitions (workflow_id, from_state, to_state, at, reason)
SELECT :id, * FROM unnest(CAST(:from_states AS text[]), CAST(:to_states AS text[]),
                          CAST(:transition_at AS timestamptz[]), CAST(:reasons AS text[]))
""")


@dataclass(frozen=True, slots=True)
class StepRecord:
    """How one step went."""

    name: str
    type: str
    status: StepStatus
    optional: bool
    started_at: dt.datetime
    duration_ms: float
    timeout_ms: int
    error: str | None = None
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One state change of a run."""

    from_state: str
    to_state: str
    at: dt.datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A finished run as it is stored."""

    workflow_id: uuid.UUID
    workflow_type: str
    contract_version: str
    correlation_id: str
    namespace: str | None
    state: str
    degraded: bool
    started_at: dt.datetime
    duration_ms: float
    error: str | None
    result: dict[str, Any]
    steps: Sequence[StepRecord]
    transitions: Sequence[TransitionRecord]


class RunRecorder:
    """Writes runs to the run-record tables and their events to the outbox of ``topic``.

    Args:
        database: Opens the separate transaction a failed run is recorded in.
        publisher: The outbox.
        topic: Where the run's events go (must be in the catalog).
        source: The envelopes' ``source``.
    """

    def __init__(self, database: Database, publisher: EventPublisher, topic: str, source: str) -> None:
        publisher.catalog.require(topic)
        self.database = database
        self.publisher = publisher
        self.topic = topic
        self.source = source

    def separate(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A fresh unit of work, independent of any request's."""
        return self.database.unit_of_work()

    async def publish(self, uow: UnitOfWork, correlation_id: str, events: Sequence[tuple[str, Any]]) -> None:
        """Stage ``events`` (type, payload) in the outbox, in order."""
        envelopes = [new_envelope(event_type=event_type, payload=payload, correlation_id=correlation_id,
                                  source=self.source) for event_type, payload in events]  # fmt: skip
        await self.publisher.publish_many(uow, self.topic, envelopes)

    async def save(self, uow: UnitOfWork, run: RunRecord) -> None:
        """The execution, its steps and its transitions: one statement (one round trip)."""
        steps, moves = run.steps, run.transitions
        await uow.session.execute(
            _WRITE_RUN,
            {
                "id": run.workflow_id, "workflow_type": run.workflow_type, "contract_version": run.contract_version,
                "correlation_id": run.correlation_id, "namespace": run.namespace, "state": run.state,
                "degraded": run.degraded, "started_at": run.started_at, "completed_at": dt.datetime.now(dt.UTC),
                "duration_ms": round(run.duration_ms, 3), "error": run.error, "result": json.dumps(run.result),
                "step_positions": list(range(len(steps))), "step_names": [s.name for s in steps],
                "step_types": [s.type for s in steps], "step_statuses": [s.status for s in steps],
                "step_optional": [s.optional for s in steps], "step_started": [s.started_at for s in steps],
                "step_durations": [s.duration_ms for s in steps], "step_timeouts": [s.timeout_ms for s in steps],
                "step_errors": [s.error for s in steps], "step_outputs": [json.dumps(s.output) for s in steps],
                "from_states": [t.from_state for t in moves], "to_states": [t.to_state for t in moves],
                "transition_at": [t.at for t in moves], "reasons": [t.reason for t in moves],
            },
        )  # fmt: skip
