"""The eventlog endpoints: the event log and the DLQs with their re-drive (under ``/events``), and the public
AsyncAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import TopicName
from omninode_bridge.core.inputs import BIGINT_MAX, AwareDatetime, param, text
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.core.paging import BigintCursorQuery, bigint_cursor
from omninode_bridge.modules.eventlog import schemas
from omninode_bridge.modules.eventlog.services import EventLogService
from omninode_bridge.modules.eventlog.state import EventLogState
from omninode_bridge.platform import (
    API_KEY_SECURITY,
    AUTH_RESPONSES,
    PUBLIC_RESPONSES,
    Actor,
    require_scope,
)

__all__ = ["ASYNCAPI_PATH", "SCOPE", "AsyncApiController", "EventsController"]

#: The API-key scope of these endpoints. It stays ``events``, not the module's name: keys issued before the
#: module was named ``eventlog`` carry it.
SCOPE = "events"

#: Where the AsyncAPI page is served (its JSON is at ``ASYNCAPI_PATH + ".json"``).
ASYNCAPI_PATH = "/asyncapi"

_TOPIC = param(TopicName)
_FILTER = text(max_length=255)

_REDRIVE_RESPONSES = error_responses(
    {404: "No such dead letter", 409: "Already re-driven, or its original topic left the catalog"}
)
_ASYNCAPI_RESPONSES = {
    **PUBLIC_RESPONSES,
    200: documented(dict[str, Any], "The AsyncAPI 3.0 document (a JSON object)"),
}


class EventsController(Controller):
    """The event log and the dead-letter queues. Requires the ``events`` scope; re-drive needs ``admin``."""

    path = "/events"
    tags = ["events"]
    security = API_KEY_SECURITY
    opt = require_scope(SCOPE)

    @get("/", operation_id="listEvents", summary="Page through the event log", responses=AUTH_RESPONSES)
    async def list_events(
        self,
        uow: NamedDependency[UnitOfWork],
        cursor: BigintCursorQuery = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        correlation_id: Annotated[str | None, param(_FILTER, description="Follow one request end to end")] = None,
        event_type: Annotated[str | None, param(_FILTER)] = None,
        topic: Annotated[str | None, _TOPIC] = None,
        direction: FromQuery[schemas.EventDirection | None] = None,
        status: Annotated[str | None, param(_FILTER, description="e.g. sent, processed, dead_lettered")] = None,
        since: Annotated[dt.datetime | None, param(AwareDatetime)] = None,
        until: Annotated[dt.datetime | None, param(AwareDatetime)] = None,
    ) -> schemas.EventLogPage:
        """Published and consumed events, newest first, filtered by correlation id, type, topic, direction,
        status and time."""
        return await EventLogService(uow).page(
            limit=limit,
            cursor=bigint_cursor(cursor),
            correlation_id=correlation_id,
            event_type=event_type,
            topic=topic,
            direction=direction,
            status=status,
            since=since,
            until=until,
        )

    @get(
        "/dlq",
        operation_id="getDeadLetterQueues",
        summary="DLQ sizes, thresholds and the newest dead letters",
        responses=AUTH_RESPONSES,
    )
    async def dlq(
        self,
        eventlog: NamedDependency[EventLogState],
        uow: NamedDependency[UnitOfWork],
        dlq_topic: Annotated[str | None, param(TopicName, description="Only this DLQ topic")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="How many dead letters to list")] = 20,
    ) -> schemas.DlqOverview:
        """Per DLQ topic of the catalog: messages in Kafka, the alert threshold, whether it is exceeded and
        the stored dead letters not yet re-driven; plus the newest dead letters. When Kafka cannot be
        reached the counts are the last known ones and `kafka_available` is false."""
        return await eventlog.dead_letters(uow).overview(dlq_topic=dlq_topic, limit=limit)

    @post(
        "/dlq/{dead_letter_id:int}/redrive",
        operation_id="redriveDeadLetter",
        summary="Re-drive one dead letter to its original topic",
        status_code=200,
        opt=require_scope("admin"),
        responses=_REDRIVE_RESPONSES,
    )
    async def redrive_one(
        self,
        request: Request[Any, Any, Any],
        eventlog: NamedDependency[EventLogState],
        uow: NamedDependency[UnitOfWork],
        dead_letter_id: Annotated[int, param(path=True, ge=1, le=BIGINT_MAX)],
    ) -> schemas.DeadLetter:
        """Publish the original record again to its original topic (through the outbox) and forget that its
        consumer processed it, so the consumer handles it anew. Audited. 409 when already re-driven."""
        return await eventlog.dead_letters(uow).redrive_one(dead_letter_id, actor=Actor.from_request(request))

    @post(
        "/dlq/redrive",
        operation_id="redriveDeadLetters",
        summary="Re-drive every pending dead letter, oldest first",
        status_code=200,
        opt=require_scope("admin"),
        responses=error_responses(body=True),
    )
    async def redrive_many(
        self,
        request: Request[Any, Any, Any],
        eventlog: NamedDependency[EventLogState],
        uow: NamedDependency[UnitOfWork],
        data: JSONBody[schemas.RedriveRequest],
    ) -> schemas.RedriveResult:
        """Re-drive up to `limit` dead letters not yet re-driven (optionally of one DLQ topic), oldest first,
        in one transaction. Audited."""
        return await eventlog.dead_letters(uow).redrive_many(
            dlq_topic=data.dlq_topic, limit=data.limit, actor=Actor.from_request(request)
        )


class AsyncApiController(Controller):
    """The AsyncAPI description of the Kafka topics. Public, like the OpenAPI docs."""

    # Root-relative handler paths: "/asyncapi" and "/asyncapi.json" are siblings, not parent and child.
    path = "/"
    tags = ["events"]

    @get(
        ASYNCAPI_PATH,
        operation_id="getAsyncApiPage",
        summary="AsyncAPI documentation of the Kafka topics (HTML)",
        media_type=MediaType.HTML,
        responses=PUBLIC_RESPONSES,
    )
    async def page(self, eventlog: NamedDependency[EventLogState]) -> Response[str]:
        """The AsyncAPI web component rendering the document at /asyncapi.json."""
        return Response(eventlog.asyncapi().html, media_type=MediaType.HTML)

    @get(
        ASYNCAPI_PATH + ".json",
        operation_id="getAsyncApiDocument",
        summary="AsyncAPI 3.0 document of the Kafka topics",
        responses=_ASYNCAPI_RESPONSES,
    )
    async def document(self, eventlog: NamedDependency[EventLogState]) -> Response[bytes]:
        """Every catalog topic with its description, event types and envelope schema, and the consumers of
        this process."""
        return Response(eventlog.asyncapi().json.encode(), media_type=MediaType.JSON)
