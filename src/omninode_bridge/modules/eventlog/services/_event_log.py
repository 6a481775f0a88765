"""Reading the event log to follow requests end to end."""

from __future__ import annotations

import datetime as dt

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import LoggedEvent, event_log_page
from omninode_bridge.modules.eventlog import schemas


def _entry(row: LoggedEvent) -> schemas.EventLogEntry:
    return schemas.EventLogEntry(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        topic=row.topic,
        correlation_id=row.correlation_id,
        direction=row.direction,
        status=row.status,
        consumer=row.consumer,
        duration_ms=row.duration_ms,
        error=row.error,
        created_at=row.created_at,
    )


class EventLogService:
    """Reads the event log (``event_logs``) to follow requests end to end.

    Args:
        uow: The request's unit of work.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def page(
        self,
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
    ) -> schemas.EventLogPage:
        """Entries newest first, after ``cursor`` (an entry id), matching every filter given.

        Args:
            limit: Page size.
            cursor: The id of the last entry of the previous page.
            correlation_id: Only events of this correlation id.
            event_type: Only events of this type.
            topic: Only events of this topic.
            direction: ``published`` or ``consumed``.
            status: e.g. ``sent``, ``processed``, ``dead_lettered``.
            since: Only events created at or after this time.
            until: Only events created before this time.

        Returns:
            The page and the cursor of the next one (None on the last page).
        """
        rows, next_cursor = await event_log_page(
            self.uow, limit=limit, cursor=cursor, correlation_id=correlation_id, event_type=event_type, topic=topic,
            direction=direction, status=status, since=since, until=until,
        )  # fmt: skip
        return schemas.EventLogPage(items=[_entry(r) for r in rows], next_cursor=next_cursor)
