"""The event log (``event_logs``): the one writer of its rows, and the reader of the operator console.

Every row of the log is written here: events consumed (by the idempotent consumers, together with their
claim in the reducer's batches, see :mod:`.inbox`), dead-lettered, and published (by the relay, in the
statement that marks outbox rows sent). Rows are written from parallel arrays in one statement, however
many events there are.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from sqlalchemy import text

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events.envelope import OnexEnvelopeV1
from omninode_bridge.core.events.models import EventLog
from omninode_bridge.core.paging import Filter, newest_first

__all__ = [
    "EventRef",
    "LoggedEvent",
    "consumed_params",
    "consumed_rows_sql",
    "event_log_page",
    "log_consumed",
    "log_published",
]


_CONSUMED_ROWS = """
    INSERT INTO event_logs (event_id, event_type, topic, correlation_id, direction, status, consumer, duration_ms,
                            error)
    SELECT e.event_id, e.event_type, CAST(:topic AS varchar), e.correlation_id, 'consumed', CAST(:status AS varchar),
           CAST(:consumer AS varchar), CAST(:duration_ms AS double precision), CAST(:error AS text)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:correlations AS text[]))
         WITH ORDINALITY AS e(event_id, event_type, correlation_id, n)
    {where}
    ORDER BY e.n
"""


class EventRef(Protocol):
    """What the inbox and the event log read of an event: an envelope, or a consumer's lighter record of one."""

    @property
    def event_id(self) -> uuid.UUID: ...

    @property
    def event_type(self) -> str: ...

    @property
    def correlation_id(self) -> str: ...


def consumed_rows_sql(*, only_claimed: bool = False) -> str:
    """``INSERT INTO event_logs`` of consumed events given as arrays (``:ids``, ``:types``, ``:correlations``).

    Args:
        only_claimed: Log only the ids a ``claimed`` CTE of the same statement returned (see :mod:`.inbox`).

    Returns:
        The statement's text; its parameters are :func:`consumed_params`. Rows keep the arrays' order.
    """
    return _CONSUMED_ROWS.format(where="WHERE e.event_id IN (SELECT event_id FROM claimed)" if only_claimed else "")


_LOG_CONSUMED = text(consumed_rows_sql())


def consumed_params(
    consumer: str,
    topic: str,
    envelopes: Sequence[EventRef],
    *,
    status: str = "processed",
    duration_ms: float | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The parameters of :func:`consumed_rows_sql` for ``envelopes`` (two arrays, not a parameter per row)."""
    return {
        "ids": [e.event_id for e in envelopes],
        "types": [e.event_type for e in envelopes],
        "correlations": [e.correlation_id for e in envelopes],
        "topic": topic,
        "status": status,
        "consumer": consumer,
        "duration_ms": duration_ms,
        "error": error,
    }


async def log_consumed(
    uow: UnitOfWork,
    consumer: str,
    topic: str,
    envelopes: Sequence[OnexEnvelopeV1],
    *,
    status: str = "processed",
    duration_ms: float | None = None,
    error: str | None = None,
) -> None:
    """Log ``envelopes`` as consumed by ``consumer`` from ``topic``, in ``uow``'s transaction (one statement).

    Args:
        uow: The consumer's unit of work.
        consumer: The catalog consumer.
        topic: Where the events came from.
        envelopes: The events.
        status: ``processed`` or ``dead_lettered``.
        duration_ms: How long handling took, when measured per event.
        error: Why the events were dead-lettered (a classification, never a record's value).
    """
    if envelopes:
        await uow.session.execute(
            _LOG_CONSUMED,
            consumed_params(consumer, topic, envelopes, status=status, duration_ms=duration_ms, error=error),
        )


# Mark the acknowledged rows sent (their pending rows go) and log them as published, in one statement. The
# outbox rows are read by the id array itself (one index scan over mostly consecutive ids), not joined to the
# deleted rows (an index search per row): about a fifth less PostgreSQL CPU per event. The ids are the relay round's
# claim, pending and locked by its transaction, and each is marked once, so every one of them is deleted here.
_LOG_PUBLISHED = """
WITH sent AS (DELETE FROM event_outbox_pending WHERE id = ANY($1::bigint[]))
INSERT INTO event_logs (event_id, event_type, topic, correlation_id, direction, status, duration_ms, created_at)
SELECT o.event_id, o.event_type, o.topic, o.key, 'published', 'sent', extract(epoch FROM now() - o.created_at) * 1000,
       o.created_at
FROM event_outbox AS o WHERE o.id = ANY($1::bigint[])
"""


async def log_published(conn: asyncpg.Connection, outbox_ids: list[int]) -> None:
    """Mark outbox rows sent and log them as published, in one statement on the relay's connection.

    The relay's hot path runs on asyncpg directly (no per-statement SQLAlchemy work); ``conn`` is inside
    the round's transaction, so the marks commit with it. ``outbox_ids`` must be pending rows the round
    claimed (locked by this transaction), each passed once.
    """
    await conn.execute(_LOG_PUBLISHED, outbox_ids)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One row of the event log, as the operator console shows it."""

    id: int
    event_id: uuid.UUID
    event_type: str
    topic: str
    correlation_id: str
    direction: str
    status: str
    consumer: str | None
    duration_ms: float | None
    error: str | None
    created_at: dt.datetime


async def event_log_page(
    uow: UnitOfWork,
    *,
    limit: int,
    cursor: int | None = None,
    correlation_id: str | None = None,
    event_type: str | None = None,
    topic: str | None = None,
    direction: str | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> tuple[list[LoggedEvent], str | None]:
    """Entries newest first, after ``cursor`` (an entry id), matching every filter given.

    Returns:
        The entries and the cursor of the next page (None on the last page).
    """
    table = EventLog
    filters: list[Filter] = [
        (correlation_id, lambda: table.correlation_id == correlation_id),
        (event_type, lambda: table.event_type == event_type),
        (topic, lambda: table.topic == topic),
        (direction, lambda: table.direction == direction),
        (status, lambda: table.status == status),
        (since, lambda: table.created_at >= since),
        (until, lambda: table.created_at < until),
    ]
    rows, next_cursor = await newest_first(uow.session, table, limit=limit, cursor=cursor, filters=filters)
    entries = [
        LoggedEvent(
            id=r.id,
            event_id=r.event_id,
            event_type=r.event_type,
            topic=r.topic,
            correlation_id=r.correlation_id,
            direction=r.direction,
            status=r.status,
            consumer=r.consumer,
            duration_ms=r.duration_ms,
            error=r.error,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return entries, next_cursor
