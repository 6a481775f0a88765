"""What a run leaves behind, and the recorder that writes it: the run-record tables and the outbox.

The execution, its steps, its transitions and its events (in the outbox) go in as one statement, with the
caller's own write as its lead when it has one. A failed run is written in a transaction of its own
(:meth:`RunRecorder.separate`), so recording it never touches the transaction of the work that failed.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import TextClause, text

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.events import EventPublisher, event_ids, new_envelope, outbox_rows_sql

__all__ = ["Lead", "RunRecord", "RunRecorder", "StepRecord", "StepStatus", "TransitionRecord"]

StepStatus = Literal["completed", "failed", "skipped"]

# A finished run as one statement: the execution, its steps and transitions, and its events in the outbox, as
# data-modifying CTEs (one round trip; the foreign keys are checked at the end of the statement, after the
# execution row exists). ``{lead}`` is a caller's own write (``lead AS (INSERT ... RETURNING ...)``) that gates
# the rest: when it writes no row (a conflict), nothing is written. Arrays keep the text the same for any
# number of steps and events, so it is prepared once per connection.
_WRITE_RUN = """
WITH {lead}execution AS (
    INSERT INTO workflow_executions (id, workflow_type, contract_version, correlation_id, namespace, state, degraded,
                                     started_at, completed_at, duration_ms, error, result)
    SELECT CAST(:id AS uuid), CAST(:workflow_type AS text), CAST(:contract_version AS text),
           CAST(:correlation_id AS text), CAST(:namespace AS text), CAST(:state AS text), CAST(:degraded AS boolean),
           CAST(:started_at AS timestamptz), CAST(:completed_at AS timestamptz), CAST(:duration_ms AS float8),
           CAST(:error AS text), CAST(:result AS jsonb)
    WHERE {gate}
), steps AS (
    INSERT INTO workflow_steps (workflow_id, position, name, step_type, status, optional, started_at, duration_ms,
                                timeout_ms, error, output)
    SELECT CAST(:id AS uuid), * FROM unnest(CAST(:step_positions AS smallint[]), CAST(:step_names AS text[]),
                              CAST(:step_types AS text[]), CAST(:step_statuses AS text[]),
                              CAST(:step_optional AS boolean[]), CAST(:step_started AS timestamptz[]),
                              CAST(:step_durations AS float8[]), CAST(:step_timeouts AS integer[]),
                              CAST(:step_errors AS text[]), CAST(:step_outputs AS jsonb[])) AS step
    WHERE {gate}
), transitions AS (
    INSERT INTO fsm_transitions (workflow_id, from_state, to_state, at, reason)
    SELECT CAST(:id AS uuid), * FROM unnest(CAST(:from_states AS text[]), CAST(:to_states AS text[]),
                              CAST(:transition_at AS timestamptz[]), CAST(:reasons AS text[])) AS move
    WHERE {gate}
), outbox AS (
    {outbox}
)
SELECT {written}
"""
_statements: dict[str, TextClause] = {}


def _write_run(lead: str | None) -> TextClause:
    """The run's statement, with ``lead`` as its first CTE when given (built once per lead)."""
    key = lead or ""
    statement = _statements.get(key)
    if statement is None:
        gate = "EXISTS (SELECT 1 FROM lead)" if lead else "true"
        statement = _statements[key] = text(_WRITE_RUN.format(
            lead=f"lead AS ({lead}), " if lead else "", gate=gate, outbox=outbox_rows_sql(gate),
            written="(SELECT count(*) FROM lead)" if lead else "1",
        ))  # fmt: skip
    return statement


@dataclass(frozen=True, slots=True)
class Lead:
    """A caller's own write, made by the run's statement before the run's rows, and gating them.

    Attributes:
        sql: ``INSERT ... RETURNING ...`` (or any data-modifying query) that yields a row when it wrote; a
            constant text (the statement is built once per text), named parameters not clashing with the
            run's (prefix them).
        params: Its parameters.
    """

    sql: str
    params: dict[str, Any]


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

    async def save(
        self,
        uow: UnitOfWork,
        run: RunRecord,
        events: Sequence[tuple[str, Any]],
        *,
        lead: Lead | None = None,
        commit: bool = False,
    ) -> bool:
        """The execution, its steps, transitions and ``events`` (type, payload) in the outbox: one statement.

        Args:
            uow: Where to write.
            run: The run.
            events: Its events, in order.
            lead: A write of the caller's made first; when it writes nothing, neither does the run.
            commit: Commit ``uow`` with the statement (:meth:`UnitOfWork.commit_one`: one round trip when
                nothing else was written in it).

        Returns:
            Whether the run was written (always, without a ``lead``).
        """
        # One random draw and one clock read for all of them: per event they were a third of an envelope's CPU.
        # Time-ordered ids (UUIDv7): their consumers' inbox claims append to its index instead of spreading.
        ids, now = event_ids(len(events)), dt.datetime.now(dt.UTC)
        envelopes = [
            new_envelope(event_type=event_type, payload=payload, correlation_id=run.correlation_id, source=self.source,
                         event_id=event_id, timestamp=now)
            for event_id, (event_type, payload) in zip(ids, events, strict=True)
        ]  # fmt: skip
        steps, moves = run.steps, run.transitions
        params = {
            "id": run.workflow_id, "workflow_type": run.workflow_type, "contract_version": run.contract_version,
            "correlation_id": run.correlation_id, "namespace": run.namespace, "state": run.state,
            "degraded": run.degraded, "started_at": run.started_at, "completed_at": now,
            "duration_ms": round(run.duration_ms, 3), "error": run.error, "result": json.dumps(run.result),
            "step_positions": list(range(len(steps))), "step_names": [s.name for s in steps],
            "step_types": [s.type for s in steps], "step_statuses": [s.status for s in steps],
            "step_optional": [s.optional for s in steps], "step_started": [s.started_at for s in steps],
            "step_durations": [s.duration_ms for s in steps], "step_timeouts": [s.timeout_ms for s in steps],
            "step_errors": [s.error for s in steps], "step_outputs": [json.dumps(s.output) for s in steps],
            "from_states": [t.from_state for t in moves], "to_states": [t.to_state for t in moves],
            "transition_at": [t.at for t in moves], "reasons": [t.reason for t in moves],
            **self.publisher.staged_arrays(uow, self.topic, envelopes),
            **(lead.params if lead else {}),
        }  # fmt: skip
        statement = _write_run(lead.sql if lead else None)
        if commit:
            written = (await uow.commit_one(statement, params)).scalar_one()
        else:
            written = (await uow.session.execute(statement, params)).scalar_one()
        return bool(written)
