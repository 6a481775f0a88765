"""Reading hooks back: events, sessions with their timelines, statistics; and replays."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, literal_column, select

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import encode_envelope
from omninode_bridge.core.events.envelope import kafka_headers
from omninode_bridge.core.module import Runtime
from omninode_bridge.core.paging import Filter, newest_first
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.events import EVENT_TYPE, HOOK_TOPIC, AcceptedHook, envelope_of
from omninode_bridge.modules.hooks.models import HookEvent, HookSession, SourceStat, ToolCall

__all__ = ["HookQueryService", "to_event"]

#: Events a session timeline shows at most.
TIMELINE_LIMIT = 5000


def to_event(row: HookEvent) -> schemas.HookEvent:
    """The API form of a stored event."""
    return schemas.HookEvent(
        id=row.id, event_id=row.event_id, kind=row.kind, source=row.source, event_type=row.event_type,
        session_id=row.session_id, correlation_id=row.correlation_id, tool_name=row.tool_name,
        tool_call_id=row.tool_call_id, occurred_at=row.occurred_at, received_at=row.received_at, status=row.status,
        processed_at=row.processed_at, data=dict(row.data or {}), redacted=row.redacted, body_hash=row.body_hash,
        content_type=row.content_type, batch_id=row.batch_id,
    )  # fmt: skip


def _session(row: HookSession) -> schemas.HookSessionSummary:
    return schemas.HookSessionSummary(
        session_id=row.session_id, source=row.source, status=row.status, first_seen=row.first_seen,
        last_seen=row.last_seen, ended_at=row.ended_at, event_count=row.event_count,
        counts_by_type=dict(row.counts_by_type or {}),
    )  # fmt: skip


def _tool_call(row: ToolCall) -> schemas.ToolCall:
    return schemas.ToolCall(
        tool_call_id=row.tool_call_id, tool_name=row.tool_name, pre_event_id=row.pre_event_id,
        post_event_id=row.post_event_id, started_at=row.started_at, finished_at=row.finished_at,
        duration_ms=row.duration_ms, outcome=row.outcome, error=row.error,
    )  # fmt: skip


class HookQueryService:
    """Queries over the hooks tables in the caller's unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def page(
        self,
        *,
        limit: int,
        cursor: int | None = None,
        source: str | None = None,
        event_type: str | None = None,
        session_id: str | None = None,
        correlation_id: str | None = None,
        tool_name: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> schemas.HookEventPage:
        """Events newest first (by arrival), after ``cursor``, matching every filter given.

        ``since``/``until`` bound ``occurred_at`` (``since`` inclusive, ``until`` exclusive).
        """
        filters: list[Filter] = [
            (source, lambda: HookEvent.source == source),
            (event_type, lambda: HookEvent.event_type == event_type),
            (session_id, lambda: HookEvent.session_id == session_id),
            (correlation_id, lambda: HookEvent.correlation_id == correlation_id),
            (tool_name, lambda: HookEvent.tool_name == tool_name),
            (since, lambda: HookEvent.occurred_at >= since),
            (until, lambda: HookEvent.occurred_at < until),
        ]
        rows, next_cursor = await newest_first(self.uow.session, HookEvent, limit=limit, cursor=cursor, filters=filters)
        return schemas.HookEventPage(items=[to_event(r) for r in rows], next_cursor=next_cursor)

    async def get(self, event_id: uuid.UUID) -> schemas.HookEvent | None:
        """One event, or None."""
        row = await self.uow.session.scalar(select(HookEvent).where(HookEvent.event_id == event_id))
        return to_event(row) if row is not None else None

    async def sessions(
        self, *, limit: int, cursor: str | None = None, source: str | None = None, status: str | None = None
    ) -> schemas.HookSessionPage:
        """Sessions, most recently active first; the cursor is ``<last_seen ISO>|<session_id>``."""
        query = (
            select(HookSession).order_by(HookSession.last_seen.desc(), HookSession.session_id.desc()).limit(limit + 1)
        )
        if cursor is not None:
            stamp, _, after = cursor.partition("|")
            try:
                seen = dt.datetime.fromisoformat(stamp)
            except ValueError:
                raise ProblemError(
                    422, "cursor must be the next_cursor of a previous page", extra={"errors": [{"field": "cursor"}]}
                ) from None
            query = query.where(
                (HookSession.last_seen < seen) | ((HookSession.last_seen == seen) & (HookSession.session_id < after))
            )
        if source is not None:
            query = query.where(HookSession.source == source)
        if status is not None:
            query = query.where(HookSession.status == status)
        rows = list((await self.uow.session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = f"{rows[-1].last_seen.isoformat()}|{rows[-1].session_id}" if more and rows else None
        return schemas.HookSessionPage(items=[_session(r) for r in rows], next_cursor=next_cursor)

    async def session(self, session_id: str) -> schemas.HookSessionDetail | None:
        """A session's summary, its events oldest first and its tool calls by start; None if unknown."""
        summary = await self.uow.session.get(HookSession, session_id)
        if summary is None:
            return None
        events = list(
            (
                await self.uow.session.scalars(
                    select(HookEvent)
                    .where(HookEvent.session_id == session_id)
                    .order_by(HookEvent.occurred_at, HookEvent.id)
                    .limit(TIMELINE_LIMIT + 1)
                )
            ).all()
        )
        calls = (
            await self.uow.session.scalars(
                select(ToolCall)
                .where(ToolCall.session_id == session_id)
                .order_by(ToolCall.started_at.asc().nulls_last(), ToolCall.id)
            )
        ).all()
        return schemas.HookSessionDetail(
            session=_session(summary),
            events=[to_event(e) for e in events[:TIMELINE_LIMIT]],
            tool_calls=[_tool_call(c) for c in calls],
            events_truncated=len(events) > TIMELINE_LIMIT,
        )

    async def stats(self, *, source: str | None = None) -> schemas.HookStats:
        """Counts per source and event type, and per tool the calls, errors and p50/p95/max durations."""
        stats_query = select(SourceStat).order_by(SourceStat.source, SourceStat.event_type)
        if source is not None:
            stats_query = stats_query.where(SourceStat.source == source)
        counts = (await self.uow.session.scalars(stats_query)).all()
        duration = ToolCall.duration_ms
        # A literal, not a parameter: PostgreSQL must see the same expression in SELECT and GROUP BY.
        tool = func.coalesce(ToolCall.tool_name, literal_column("'(unknown)'"))
        tools_query = (
            select(
                tool.label("tool_name"),
                func.count().label("calls"),
                func.count(duration).label("completed"),
                func.count().filter(ToolCall.outcome == "error").label("errors"),
                func.percentile_cont(0.5).within_group(duration).label("p50"),
                func.percentile_cont(0.95).within_group(duration).label("p95"),
                func.max(duration).label("max"),
            )
            .group_by(tool)
            .order_by(tool)
        )
        if source is not None:
            tools_query = tools_query.where(ToolCall.source == source)
        tools = (await self.uow.session.execute(tools_query)).all()
        sessions_query = select(func.count()).select_from(HookSession)
        if source is not None:
            sessions_query = sessions_query.where(HookSession.source == source)
        sessions_total = await self.uow.session.scalar(sessions_query)
        return schemas.HookStats(
            sources=[
                schemas.SourceStat(source=c.source, event_type=c.event_type, count=c.count, last_seen=c.last_seen)
                for c in counts
            ],
            tools=[
                schemas.ToolStat(
                    tool_name=t.tool_name,
                    calls=t.calls,
                    completed=t.completed,
                    errors=t.errors,
                    p50_ms=_round(t.p50),
                    p95_ms=_round(t.p95),
                    max_ms=_round(t.max),
                )
                for t in tools
            ],
            events_total=sum(c.count for c in counts),
            sessions_total=int(sessions_total or 0),
        )

    async def replay(self, runtime: Runtime, event_id: uuid.UUID, *, actor: dict[str, Any]) -> schemas.HookEvent:
        """Publish a stored hook again, with its original event id and ``replay: true``; audited; commits.

        Consumers that deduplicate by event id (the hooks processor among them) skip it; others see the
        ``replay`` flag in the payload and the ``replay`` header.

        Raises:
            ProblemError: 404 when the event does not exist.
        """
        row = await self.uow.session.scalar(select(HookEvent).where(HookEvent.event_id == event_id))
        if row is None:
            raise ProblemError(404, f"No hook event with id {event_id}.")
        hook = AcceptedHook(
            event_id=row.event_id, kind=row.kind, source=row.source, event_type=row.event_type,
            correlation_id=row.correlation_id, occurred_at=row.occurred_at, data=dict(row.data or {}),
            redacted=row.redacted, session_id=row.session_id, tool_name=row.tool_name, tool_call_id=row.tool_call_id,
            body_hash=row.body_hash, received_at=row.received_at,
        )  # fmt: skip
        envelope = envelope_of(hook, replay=True)
        headers = {name: value.decode() for name, value in kafka_headers(envelope)}
        headers["replay"] = "true"
        # The outbox gives each staged record its own row id; the envelope keeps the original event id.
        await runtime.publisher.publish_raw(
            self.uow, HOOK_TOPIC, key=envelope.correlation_id, value=encode_envelope(envelope), headers=headers,
            event_type=EVENT_TYPE,
        )  # fmt: skip
        platform.AuditService(self.uow).add(
            "hooks.event.replayed", "allowed", **actor, detail={"event_id": str(event_id), "source": row.source}
        )
        await self.uow.commit()
        return to_event(row)


def _round(value: float | None) -> float | None:
    return round(float(value), 3) if value is not None else None
