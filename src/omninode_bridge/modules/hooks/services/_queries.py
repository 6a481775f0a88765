"""Reading hooks back: events and sessions with their timelines; and replays (statistics are in ``_stats``)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, tuple_

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, encode_envelope, kafka_headers
from omninode_bridge.core.paging import Filter, newest_first
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.messages import EVENT_TYPE, HOOK_TOPIC, AcceptedHook, envelope_of
from omninode_bridge.modules.hooks.models import HookEvent, HookSession, ToolCall
from omninode_bridge.modules.hooks.services._stats import Namespaces

__all__ = ["HookQueryService", "to_event"]

#: Events a session timeline shows at most.
TIMELINE_LIMIT = 5000
#: Sessions of one id (from several sources or namespaces) listed in a 409 at most.
AMBIGUOUS_LIMIT = 20


def _bad_cursor() -> ProblemError:
    return ProblemError(
        422, "cursor must be the next_cursor of a previous page", extra={"errors": [{"field": "cursor"}]}
    )


def _session_cursor(cursor: str) -> tuple[dt.datetime, str, str, str]:
    """Parse a sessions cursor ``<last_seen ISO>|<namespace>|<source>|<session_id>``."""
    parts = cursor.split("|", 3)
    if len(parts) != 4:
        raise _bad_cursor()
    try:
        seen = dt.datetime.fromisoformat(parts[0])
    except ValueError:
        raise _bad_cursor() from None
    if seen.tzinfo is None:
        raise _bad_cursor()
    return seen, parts[1], parts[2], parts[3]


def to_event(row: HookEvent) -> schemas.HookEvent:
    """The API form of a stored event."""
    return schemas.HookEvent(
        id=row.id, event_id=row.event_id, kind=row.kind, source=row.source, namespace=row.namespace,
        event_type=row.event_type,
        session_id=row.session_id, correlation_id=row.correlation_id, tool_name=row.tool_name,
        tool_call_id=row.tool_call_id, occurred_at=row.occurred_at, received_at=row.received_at, status=row.status,
        processed_at=row.processed_at, data=dict(row.data or {}), redacted=row.redacted, body_hash=row.body_hash,
        content_type=row.content_type, batch_id=row.batch_id,
    )  # fmt: skip


def _session(row: HookSession) -> schemas.HookSessionSummary:
    return schemas.HookSessionSummary(
        session_id=row.session_id, source=row.source, namespace=row.namespace, status=row.status,
        first_seen=row.first_seen, last_seen=row.last_seen, ended_at=row.ended_at, event_count=row.event_count,
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
        namespaces: Namespaces = None,
    ) -> schemas.HookEventPage:
        """Events newest first (by arrival), after ``cursor``, matching every filter given.

        ``since``/``until`` bound ``occurred_at`` (``since`` inclusive, ``until`` exclusive); ``namespaces``
        limits them to the caller's namespaces.
        """
        filters: list[Filter] = [
            (namespaces, lambda: HookEvent.namespace.in_(namespaces or ())),
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

    async def get(self, event_id: uuid.UUID, *, namespaces: Namespaces = None) -> schemas.HookEvent | None:
        """One event, or None (also when it is outside ``namespaces``: its existence is not revealed)."""
        row = await self.uow.session.scalar(select(HookEvent).where(HookEvent.event_id == event_id))
        if row is None or (namespaces is not None and row.namespace not in namespaces):
            return None
        return to_event(row)

    async def sessions(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        source: str | None = None,
        status: str | None = None,
        namespaces: Namespaces = None,
    ) -> schemas.HookSessionPage:
        """Sessions, most recently active first; the cursor is ``<last_seen ISO>|<namespace>|<source>|<id>``."""
        key = tuple_(HookSession.last_seen, HookSession.namespace, HookSession.source, HookSession.session_id)
        query = (
            select(HookSession)
            .order_by(
                HookSession.last_seen.desc(),
                HookSession.namespace.desc(),
                HookSession.source.desc(),
                HookSession.session_id.desc(),
            )
            .limit(limit + 1)
        )
        if cursor is not None:
            query = query.where(key < tuple_(*_session_cursor(cursor)))
        if source is not None:
            query = query.where(HookSession.source == source)
        if status is not None:
            query = query.where(HookSession.status == status)
        if namespaces is not None:
            query = query.where(HookSession.namespace.in_(namespaces))
        rows = list((await self.uow.session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = f"{last.last_seen.isoformat()}|{last.namespace}|{last.source}|{last.session_id}"
        return schemas.HookSessionPage(items=[_session(r) for r in rows], next_cursor=next_cursor)

    async def session(
        self, session_id: str, *, source: str | None = None, namespaces: Namespaces = None
    ) -> schemas.HookSessionDetail | None:
        """A session's summary, its events oldest first and its tool calls by start; None if unknown.

        Sessions are keyed by (namespace, source, session_id). Without ``source`` the id must name one
        visible session.

        Raises:
            ProblemError: 409 listing the candidates when several sources (or namespaces) share the id.
        """
        query = select(HookSession).where(HookSession.session_id == session_id).limit(AMBIGUOUS_LIMIT)
        if source is not None:
            query = query.where(HookSession.source == source)
        if namespaces is not None:
            query = query.where(HookSession.namespace.in_(namespaces))
        found = list((await self.uow.session.scalars(query)).all())
        if not found:
            return None
        if len(found) > 1:
            raise ProblemError(
                409,
                f"{len(found)} sessions have the id {session_id}; name one with ?source= (and ?namespace=).",
                slug="ambiguous-session",
                extra={"sessions": [{"source": r.source, "namespace": r.namespace} for r in found]},
            )
        summary = found[0]
        events = list(
            (
                await self.uow.session.scalars(
                    select(HookEvent)
                    .where(
                        HookEvent.session_id == session_id,
                        HookEvent.source == summary.source,
                        HookEvent.namespace == summary.namespace,
                    )
                    .order_by(HookEvent.occurred_at, HookEvent.id)
                    .limit(TIMELINE_LIMIT + 1)
                )
            ).all()
        )
        calls = (
            await self.uow.session.scalars(
                select(ToolCall)
                .where(
                    ToolCall.session_id == session_id,
                    ToolCall.source == summary.source,
                    ToolCall.namespace == summary.namespace,
                )
                .order_by(ToolCall.started_at.asc().nulls_last(), ToolCall.id)
            )
        ).all()
        return schemas.HookSessionDetail(
            session=_session(summary),
            events=[to_event(e) for e in events[:TIMELINE_LIMIT]],
            tool_calls=[_tool_call(c) for c in calls],
            events_truncated=len(events) > TIMELINE_LIMIT,
        )

    async def replay(
        self,
        publisher: EventPublisher,
        event_id: uuid.UUID,
        *,
        actor: platform.Actor,
        namespaces: Namespaces = None,
    ) -> schemas.HookEvent:
        """Publish a stored hook again, with its original event id and ``replay: true``; audited; commits.

        Consumers that deduplicate by event id (the hooks processor among them) skip it; others see the
        ``replay`` flag in the payload and the ``replay`` header.

        Raises:
            ProblemError: 404 when the event does not exist (or is outside ``namespaces``).
        """
        row = await self.uow.session.scalar(select(HookEvent).where(HookEvent.event_id == event_id))
        if row is None or (namespaces is not None and row.namespace not in namespaces):
            raise ProblemError(404, f"No hook event with id {event_id}.")
        hook = AcceptedHook(
            event_id=row.event_id, kind=row.kind, source=row.source, event_type=row.event_type,
            correlation_id=row.correlation_id, occurred_at=row.occurred_at, data=dict(row.data or {}),
            redacted=row.redacted, session_id=row.session_id, tool_name=row.tool_name, tool_call_id=row.tool_call_id,
            body_hash=row.body_hash, received_at=row.received_at, namespace=row.namespace,
        )  # fmt: skip
        envelope = envelope_of(hook, replay=True)
        headers = {name: value.decode() for name, value in kafka_headers(envelope)}
        headers["replay"] = "true"
        # The outbox gives each staged record its own row id; the envelope keeps the original event id.
        await publisher.publish_raw(
            self.uow, HOOK_TOPIC, key=envelope.correlation_id, value=encode_envelope(envelope), headers=headers,
            event_type=EVENT_TYPE,
        )  # fmt: skip
        platform.AuditService(self.uow).add(
            "hooks.event.replayed",
            "allowed",
            **actor.audit_fields(),
            detail={"event_id": str(event_id), "source": row.source},
        )
        await self.uow.commit()
        return to_event(row)
