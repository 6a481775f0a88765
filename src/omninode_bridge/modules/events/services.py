"""The event log, dead letters and their re-drive, and the AsyncAPI document of the broker.

Services stage their changes in the caller's unit of work and commit themselves; nothing here opens a
transaction of its own. Dead letters are re-driven through the transactional outbox, so a re-drive
that rolls back publishes nothing and one that commits is never lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
import yaml
from faststream.specification import AsyncAPI, get_asyncapi_html

from omninode_bridge import __version__, platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import (
    DeadLetterRecord,
    LoggedEvent,
    OnexEnvelopeV1,
    event_log_page,
    latest_dead_letters,
    lock_dead_letter,
    lock_dead_letters,
    redrive,
    stored_dead_letter_counts,
)
from omninode_bridge.core.module import Runtime
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.modules.events import schemas

__all__ = [
    "KAFKA_CHECK_TIMEOUT_SECONDS",
    "Actor",
    "AsyncApiDocument",
    "DeadLetterService",
    "EventLogService",
    "asyncapi_document",
]

log = structlog.get_logger(__name__)

#: Upper bound on asking Kafka for DLQ sizes; past it the endpoint answers with the last known counts.
KAFKA_CHECK_TIMEOUT_SECONDS = 5.0

_ASYNCAPI_CACHE = "events.asyncapi"
_ENVELOPE_SCHEMA = "OnexEnvelopeV1"
_DLQ_MESSAGE = (
    "The record a consumer gave up on, with its original key and bytes (usually an OnexEnvelopeV1). Headers: "
    "error, original_topic, original_partition, original_offset, consumer, attempts, and event_id and "
    "event_type when the record was an envelope."
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for an administrative action, as the audit log records it.

    Attributes:
        key_id: The API key of the request.
        client_ip: The client address.
        method: HTTP method.
        path: Request path.
        correlation_id: The request's correlation id.
    """

    key_id: uuid.UUID | None
    client_ip: str | None = None
    method: str | None = None
    path: str | None = None
    correlation_id: str | None = None

    def audit_fields(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`platform.AuditService.add`."""
        return {
            "key_id": self.key_id,
            "client_ip": self.client_ip,
            "method": self.method,
            "path": self.path[:2048] if self.path else None,
            "correlation_id": self.correlation_id,
        }


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


def _dead_letter(row: DeadLetterRecord) -> schemas.DeadLetter:
    return schemas.DeadLetter(
        id=row.id,
        consumer=row.consumer,
        topic=row.topic,
        dlq_topic=row.dlq_topic,
        partition=row.partition,
        offset=row.offset,
        event_id=row.event_id,
        event_type=row.event_type,
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
        redriven_at=row.redriven_at,
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


class DeadLetterService:
    """DLQ sizes, stored dead letters and their re-drive to the original topic.

    Args:
        uow: The request's unit of work.
        runtime: The app's runtime (catalog, publisher, DLQ monitor).
    """

    def __init__(self, uow: UnitOfWork, runtime: Runtime) -> None:
        self.uow = uow
        self.runtime = runtime
        self.audit = platform.AuditService(uow)

    async def overview(self, *, dlq_topic: str | None = None, limit: int = 20) -> schemas.DlqOverview:
        """Per DLQ topic: the Kafka count, the threshold and the stored count; plus the newest dead letters.

        Args:
            dlq_topic: Only this DLQ topic (the topics and the newest dead letters).
            limit: How many of the newest dead letters to list.

        Returns:
            The overview; ``kafka_available`` is false when the counts are the last known ones.
        """
        # Kafka first: no database connection is held while the broker is asked.
        counts, kafka_error = await self._kafka_counts()
        catalog = self.runtime.catalog
        threshold = catalog.dlq_monitor.alert_threshold

        stored = await stored_dead_letter_counts(self.uow)
        # Dead letters can name a DLQ topic the catalog no longer has; list them too so none is hidden.
        names = [*catalog.dlq_topics(), *sorted(set(stored) - set(catalog.dlq_topics()))]
        if dlq_topic is not None:
            names = [n for n in names if n == dlq_topic]
        topics = [
            schemas.DlqTopicStatus(
                dlq_topic=name,
                count=counts.get(name),
                threshold=threshold,
                # Same comparison as the DLQ monitor's alert, so the flag and the alert agree.
                over_threshold=(counts.get(name) or 0) > threshold,
                stored=stored.get(name, 0),
            )
            for name in names
        ]

        latest = [_dead_letter(r) for r in await latest_dead_letters(self.uow, limit=limit, dlq_topic=dlq_topic)]
        return schemas.DlqOverview(
            kafka_available=kafka_error is None, topics=topics, latest=latest, kafka_error=kafka_error
        )

    async def _kafka_counts(self) -> tuple[dict[str, int], str | None]:
        """Fresh counts from Kafka, or the monitor's last ones and the reason Kafka could not answer."""
        monitor = self.runtime.extras.get("dlq_monitor")
        if monitor is None:
            return {}, "the DLQ monitor is not running"
        try:
            async with asyncio.timeout(KAFKA_CHECK_TIMEOUT_SECONDS):
                return dict(await monitor.check()), None
        except Exception as exc:
            reason = describe_error(exc)  # returned to the client: a classification, not the library's text
            if isinstance(exc, TimeoutError):
                reason = f"Kafka did not answer within {KAFKA_CHECK_TIMEOUT_SECONDS:g} s"
            log.warning("DLQ counts unavailable; using the last known ones", error=reason)
            return dict(monitor.counts), reason

    async def redrive_one(self, dead_letter_id: int, *, actor: Actor) -> schemas.DeadLetter:
        """Re-drive one dead letter to its original topic and commit.

        Args:
            dead_letter_id: The dead letter.
            actor: Who asked, for the audit log.

        Returns:
            The dead letter with ``redriven_at`` set.

        Raises:
            ProblemError: 404 when it does not exist; 409 when it was re-driven already or its original
                topic is no longer in the catalog.
        """
        row = await lock_dead_letter(self.uow, dead_letter_id)
        if row is None:
            raise ProblemError(404, f"No dead letter with id {dead_letter_id}.")
        if row.redriven_at is not None:
            raise ProblemError(
                409,
                f"Dead letter {dead_letter_id} was re-driven at {row.redriven_at.isoformat()}.",
                slug="already-redriven",
            )
        if row.topic not in self.runtime.catalog.topics:
            raise ProblemError(
                409,
                f"The original topic {row.topic} of dead letter {dead_letter_id} is not in the catalog.",
                slug="topic-not-in-catalog",
            )
        (row,) = await redrive(self.uow, self.runtime.publisher, [row])
        self.audit.add(
            "events.dead_letter.redriven",
            "allowed",
            **actor.audit_fields(),
            detail={
                "dead_letter_id": row.id,
                "consumer": row.consumer,
                "topic": row.topic,
                "dlq_topic": row.dlq_topic,
                "event_id": str(row.event_id) if row.event_id else None,
            },
        )
        await self.uow.commit()
        return _dead_letter(row)

    async def redrive_many(self, *, dlq_topic: str | None, limit: int, actor: Actor) -> schemas.RedriveResult:
        """Re-drive the oldest dead letters not yet re-driven, in one transaction, and commit.

        Args:
            dlq_topic: Only dead letters of this DLQ topic.
            limit: At most this many.
            actor: Who asked, for the audit log.

        Returns:
            How many were re-driven, and the ids left alone because their topic left the catalog.
        """
        rows = await lock_dead_letters(self.uow, limit=limit, dlq_topic=dlq_topic)
        # A topic removed from the catalog would fail the whole batch at publish time; leave those rows.
        known = self.runtime.catalog.topics
        redrivable = [r for r in rows if r.topic in known]
        skipped = [r.id for r in rows if r.topic not in known]
        await redrive(self.uow, self.runtime.publisher, redrivable)
        self.audit.add(
            "events.dead_letters.redriven",
            "allowed",
            **actor.audit_fields(),
            detail={
                "dlq_topic": dlq_topic,
                "count": len(redrivable),
                "dead_letter_ids": [r.id for r in redrivable],
                "skipped_ids": skipped,
            },
        )
        await self.uow.commit()
        return schemas.RedriveResult(redriven=len(redrivable), skipped=skipped)


@dataclass(frozen=True, slots=True)
class AsyncApiDocument:
    """The app's AsyncAPI document, rendered once.

    It satisfies FastStream's ``Specification`` protocol so FastStream's HTML page can render it.

    Attributes:
        title: The document's title.
        json: The document as JSON text.
        html: The AsyncAPI web component page showing it.
    """

    title: str
    json: str
    html: str = ""

    def to_json(self) -> str:
        """The document as JSON text."""
        return self.json

    def to_jsonable(self) -> Any:
        """The document as plain data."""
        return msgspec.json.decode(self.json)

    def to_yaml(self) -> str:
        """The document as YAML text."""
        return yaml.safe_dump(self.to_jsonable(), sort_keys=False)


def asyncapi_document(runtime: Runtime) -> AsyncApiDocument:
    """The AsyncAPI 3.0 document of the broker's topics, built on first use and cached per app.

    Every catalog topic is in it: topics no subscriber of this process consumes get a documentation-only
    publisher on the broker first (never used to send: the outbox relay publishes). Messages of event
    topics are described as :class:`OnexEnvelopeV1`.

    Args:
        runtime: The app's runtime.

    Returns:
        The document; the same object on every later call with this runtime.
    """
    cached: AsyncApiDocument | None = runtime.extras.get(_ASYNCAPI_CACHE)
    if cached is not None:
        return cached
    # Synchronous on purpose: with no await in between, concurrent first requests cannot both register
    # the documentation publishers.
    broker = runtime.broker
    documented = _addresses(_specification(runtime).to_jsonable())
    for topic in runtime.catalog.topics.values():
        if topic.name not in documented:
            broker.publisher(topic.name, title=topic.name, description=topic.description or None)
    raw = _specification(runtime).to_jsonable()
    _describe_envelopes(raw, runtime)
    title = raw["info"]["title"]
    json_text = msgspec.json.encode(raw).decode()
    # FastStream's page renders any Specification; ours is the post-processed document. Without the "try it"
    # plugin, because this app serves no AsyncAPI try-out endpoint.
    html = get_asyncapi_html(AsyncApiDocument(title=title, json=json_text), try_it_out_path=None)
    document = AsyncApiDocument(title=title, json=json_text, html=html)
    runtime.extras[_ASYNCAPI_CACHE] = document
    return document


def _specification(runtime: Runtime) -> Any:
    return AsyncAPI(
        runtime.broker,
        title="OmniNode Bridge events",
        version=__version__,
        description=(
            "Kafka topics of OmniNode Bridge, from the topic catalog (contracts/topics.yaml). Every event is "
            "an OnexEnvelopeV1 in JSON, keyed by its correlation id, with event_type, event_id and "
            "envelope_version headers. A consumer that gives up on a record sends the original bytes to the "
            "topic's DLQ; admins re-drive them with POST /events/dlq/{id}/redrive."
        ),
        schema_version="3.0.0",
    ).to_specification()


def _addresses(raw: dict[str, Any]) -> set[str]:
    return {c.get("address") for c in (raw.get("channels") or {}).values() if c.get("address")}


def _describe_envelopes(raw: dict[str, Any], runtime: Runtime) -> None:
    """Point the messages of event topics at the envelope's JSON schema and name their event types; say
    what DLQ records carry."""
    catalog = runtime.catalog
    components = raw.setdefault("components", {})
    messages: dict[str, Any] = components.setdefault("messages", {})
    schema_defs: dict[str, Any] = components.setdefault("schemas", {})
    # FastStream derives payload schemas with pydantic, which cannot describe a msgspec Struct.
    (envelope,), defs = msgspec.json.schema_components([OnexEnvelopeV1], ref_template="#/components/schemas/{name}")
    schema_defs.update(defs)
    for channel in (raw.get("channels") or {}).values():
        topic = catalog.topics.get(channel.get("address", ""))
        if topic is None:
            continue
        for ref in (channel.get("messages") or {}).values():
            message = messages.get(str(ref.get("$ref", "")).rpartition("/")[2])
            if message is None:
                continue
            if topic.kind == "dlq":
                # The original bytes, which may not be an envelope at all (poison messages): no schema.
                message["description"] = _DLQ_MESSAGE
                continue
            old = str((message.get("payload") or {}).get("$ref", "")).rpartition("/")[2]
            if old and old != _ENVELOPE_SCHEMA:
                schema_defs.pop(old, None)
            message["payload"] = envelope
            if topic.event_types:
                message["description"] = "Event types: " + ", ".join(topic.event_types)
