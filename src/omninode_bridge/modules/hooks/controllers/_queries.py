"""Query endpoints: events, sessions and their timelines, statistics, and replay."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import Identifier, Namespace, check_datetime_range, param, text
from omninode_bridge.core.inputs import limit as page_size
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.core.paging import BigintCursorQuery, bigint_cursor
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.controllers._requests import visible_namespaces
from omninode_bridge.modules.hooks.services import HookQueryService, HookStatsService
from omninode_bridge.modules.hooks.state import HooksState

__all__ = ["HookQueryController"]

Limit = Annotated[int, param(Annotated[int, page_size(500)])]
Source = Annotated[schemas.SourceName | None, param(schemas.SourceName)]
EventType = Annotated[schemas.EventType | None, param(schemas.EventType)]
Id = Annotated[Identifier | None, param(Identifier)]
NamespaceFilter = Annotated[
    Namespace | None,
    param(Namespace, description="Only this namespace (a restricted key sees only its own anyway)."),
]
_WHEN = "RFC 3339 with a timezone offset or Z (naive -> 422), between 1970 and 9999-12-30"
_SessionCursor = Annotated[str, text(max_length=1024, description="next_cursor of the previous page")]
SessionCursor = Annotated[_SessionCursor | None, param(_SessionCursor)]
_NOT_FOUND = error_responses({404: "Unknown (or outside the key's namespaces)"})
_SESSION_RESPONSES = error_responses({
    404: "No such session (or outside the key's namespaces)",
    409: "Several sessions (sources or namespaces) share this id: `sessions` lists them; repeat with ?source= "
    "(and ?namespace=)",
})  # fmt: skip


def _in_range(**values: dt.datetime | None) -> None:
    for name, value in values.items():
        check_datetime_range(value, name, source="query")


class HookQueryController(Controller):
    """Stored hooks, sessions and statistics (scope ``hooks``)."""

    path = "/hooks"
    tags = ["hooks"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("hooks")

    @get("/events", operation_id="listHookEvents", summary="Page through hook events, newest first",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def events(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        cursor: BigintCursorQuery = None,
        limit: Limit = 50,
        source: Source = None,
        event_type: EventType = None,
        session_id: Id = None,
        correlation_id: Id = None,
        tool_name: Id = None,
        since: Annotated[dt.datetime | None, QueryParameter(description=f"occurred_at >= since; {_WHEN}")] = None,
        until: Annotated[dt.datetime | None, QueryParameter(description=f"occurred_at < until; {_WHEN}")] = None,
        namespace: NamespaceFilter = None,
    ) -> schemas.HookEventPage:
        """Hook events newest first, filtered by source, type, session, correlation id, tool, time and
        namespace. A namespace-restricted key sees only its namespaces."""
        _in_range(since=since, until=until)
        return await HookQueryService(uow).page(
            limit=limit, cursor=bigint_cursor(cursor), source=source, event_type=event_type, session_id=session_id,
            correlation_id=correlation_id, tool_name=tool_name, since=since, until=until,
            namespaces=await visible_namespaces(request, namespace),
        )  # fmt: skip

    @get("/events/{event_id:uuid}", operation_id="getHookEvent", summary="One hook event",
         responses=_NOT_FOUND)  # fmt: skip
    async def event(
        self, request: Request[Any, Any, Any], uow: NamedDependency[UnitOfWork], event_id: FromPath[uuid.UUID]
    ) -> schemas.HookEvent:
        """A stored hook event (404 if unknown, purged or outside the key's namespaces)."""
        found = await HookQueryService(uow).get(event_id, namespaces=await visible_namespaces(request, None))
        if found is None:
            raise ProblemError(404, f"No hook event with id {event_id}.")
        return found

    @post("/events/{event_id:uuid}/replay", operation_id="replayHookEvent", summary="Publish a hook event again",
          status_code=202, responses=_NOT_FOUND)  # fmt: skip
    async def replay(
        self, request: Request[Any, Any, Any], hooks: NamedDependency[HooksState], uow: NamedDependency[UnitOfWork],
        event_id: FromPath[uuid.UUID],
    ) -> schemas.HookEvent:  # fmt: skip
        """Re-publish `HookEventReceived` with the original event id and `replay: true` (also a `replay`
        header). Consumers that deduplicate by event id ignore it. Audited."""
        actor = platform.Actor.from_request(request)
        namespaces = await visible_namespaces(request, None)
        return await HookQueryService(uow).replay(hooks.publisher, event_id, actor=actor, namespaces=namespaces)

    @get("/sessions", operation_id="listHookSessions", summary="Sessions, most recently active first",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def sessions(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        cursor: SessionCursor = None,
        limit: Limit = 50,
        source: Source = None,
        status: FromQuery[Literal["active", "ended"] | None] = None,
        namespace: NamespaceFilter = None,
    ) -> schemas.HookSessionPage:
        """Sessions with first/last seen, status and event counts by type. A session is identified by
        (namespace, source, session_id)."""
        return await HookQueryService(uow).sessions(
            limit=limit, cursor=cursor or None, source=source, status=status,  # empty: the first page
            namespaces=await visible_namespaces(request, namespace),
        )  # fmt: skip

    @get("/sessions/{session_id:str}", operation_id="getHookSession", summary="A session's timeline",
         responses=_SESSION_RESPONSES)  # fmt: skip
    async def session(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        session_id: Annotated[
            Identifier, param(Identifier, description="The session id the hooks carried.", path=True)
        ],
        source: Annotated[
            schemas.SourceName | None,
            param(schemas.SourceName, description="The session's source; needed when several share the id."),
        ] = None,
        namespace: NamespaceFilter = None,
    ) -> schemas.HookSessionDetail:
        """The session, its events oldest first and its tool calls with pre/post paired and durations.
        Sessions are keyed by (namespace, source, session_id): when several sources (or namespaces) use the
        same id, name one with `?source=` (and `?namespace=`); otherwise this is a 409 listing them."""
        found = await HookQueryService(uow).session(
            session_id, source=source, namespaces=await visible_namespaces(request, namespace)
        )
        if found is None:
            raise ProblemError(404, f"No hook session {session_id}.")
        return found

    @get("/stats", operation_id="getHookStats", summary="Counts per source and type; tool durations",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def stats(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        source: Source = None,
        namespace: NamespaceFilter = None,
    ) -> schemas.HookStats:
        """Processed events per source and event type; per tool the calls, completed calls, errors and the
        p50/p95/max duration in milliseconds (over the key's namespaces, or the one named)."""
        return await HookStatsService(uow).stats(source=source, namespaces=await visible_namespaces(request, namespace))
