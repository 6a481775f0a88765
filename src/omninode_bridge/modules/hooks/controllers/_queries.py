"""Query endpoints: events, sessions and their timelines, statistics, and replay."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.deps import actor_of
from omninode_bridge.modules.hooks.services import HookQueryService

__all__ = ["HookQueryController"]

_MAX_ID = 2**63 - 1


def _aware(**values: dt.datetime | None) -> None:
    for name, value in values.items():
        if value is not None and value.tzinfo is None:
            raise ProblemError(
                422, f"{name} must carry a timezone (e.g. 2025-01-01T00:00:00Z)", extra={"errors": [{"field": name}]}
            )


class HookQueryController(Controller):
    """Stored hooks, sessions and statistics (scope ``hooks``)."""

    path = "/hooks"
    tags = ["hooks"]
    security = platform.API_KEY_SECURITY
    guards = [platform.require_scope("hooks")]

    @get("/events", operation_id="listHookEvents", summary="Page through hook events, newest first",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def events(
        self,
        uow: NamedDependency[UnitOfWork],
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        source: FromQuery[str | None] = None,
        event_type: FromQuery[str | None] = None,
        session_id: FromQuery[str | None] = None,
        correlation_id: FromQuery[str | None] = None,
        tool_name: FromQuery[str | None] = None,
        since: Annotated[dt.datetime | None, QueryParameter(description="occurred_at >= since")] = None,
        until: Annotated[dt.datetime | None, QueryParameter(description="occurred_at < until")] = None,
    ) -> schemas.HookEventPage:
        """Hook events newest first, filtered by source, type, session, correlation id, tool and time."""
        if cursor is not None and (not cursor.isdigit() or int(cursor) > _MAX_ID):
            raise ProblemError(
                422, "cursor must be the next_cursor of a previous page", extra={"errors": [{"field": "cursor"}]}
            )
        _aware(since=since, until=until)
        return await HookQueryService(uow).page(
            limit=limit, cursor=int(cursor) if cursor else None, source=source, event_type=event_type,
            session_id=session_id, correlation_id=correlation_id, tool_name=tool_name, since=since, until=until,
        )  # fmt: skip

    @get("/events/{event_id:uuid}", operation_id="getHookEvent", summary="One hook event",
         responses=error_responses({404: "No hook event with this id"}))  # fmt: skip
    async def event(self, uow: NamedDependency[UnitOfWork], event_id: FromPath[uuid.UUID]) -> schemas.HookEvent:
        """A stored hook event (404 if unknown or purged)."""
        found = await HookQueryService(uow).get(event_id)
        if found is None:
            raise ProblemError(404, f"No hook event with id {event_id}.")
        return found

    @post("/events/{event_id:uuid}/replay", operation_id="replayHookEvent", summary="Publish a hook event again",
          status_code=202, responses=error_responses({404: "No hook event with this id"}))  # fmt: skip
    async def replay(
        self, request: Request[Any, Any, Any], state: State, uow: NamedDependency[UnitOfWork],
        event_id: FromPath[uuid.UUID],
    ) -> schemas.HookEvent:  # fmt: skip
        """Re-publish `HookEventReceived` with the original event id and `replay: true` (also a `replay`
        header). Consumers that deduplicate by event id ignore it. Audited."""
        actor = actor_of(request, platform.principal_of(request).key_id)
        return await HookQueryService(uow).replay(state.runtime, event_id, actor=actor)

    @get("/sessions", operation_id="listHookSessions", summary="Sessions, most recently active first",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def sessions(
        self,
        uow: NamedDependency[UnitOfWork],
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        source: FromQuery[str | None] = None,
        status: FromQuery[Literal["active", "ended"] | None] = None,
    ) -> schemas.HookSessionPage:
        """Sessions with first/last seen, status and event counts by type."""
        return await HookQueryService(uow).sessions(limit=limit, cursor=cursor, source=source, status=status)

    @get("/sessions/{session_id:str}", operation_id="getHookSession", summary="A session's timeline",
         responses=error_responses({404: "No hook session with this id"}))  # fmt: skip
    async def session(self, uow: NamedDependency[UnitOfWork], session_id: FromPath[str]) -> schemas.HookSessionDetail:
        """The session, its events oldest first and its tool calls with pre/post paired and durations."""
        found = await HookQueryService(uow).session(session_id)
        if found is None:
            raise ProblemError(404, f"No hook session {session_id}.")
        return found

    @get("/stats", operation_id="getHookStats", summary="Counts per source and type; tool durations",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def stats(self, uow: NamedDependency[UnitOfWork], source: FromQuery[str | None] = None) -> schemas.HookStats:
        """Processed events per source and event type; per tool the calls, completed calls, errors and the
        p50/p95/max duration in milliseconds."""
        return await HookQueryService(uow).stats(source=source)
