"""Request and response bodies of the eventlog endpoints (``/events``: event log, dead letters, re-drive)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from omninode_bridge.core.events import TopicName

__all__ = [
    "DeadLetter",
    "DlqOverview",
    "DlqTopicStatus",
    "EventDirection",
    "EventLogEntry",
    "EventLogPage",
    "RedriveRequest",
    "RedriveResult",
]

EventDirection = Literal["published", "consumed"]


class EventLogEntry(msgspec.Struct):
    """One published or consumed event of the event log."""

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


class EventLogPage(msgspec.Struct):
    """A page of the event log, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[EventLogEntry]
    next_cursor: str | None


class DeadLetter(msgspec.Struct):
    """A message a consumer gave up on. The original bytes are not shown, only where they came from."""

    id: int
    consumer: str
    topic: str
    dlq_topic: str
    partition: int
    offset: int
    event_id: uuid.UUID | None
    event_type: str | None
    error: str
    attempts: int
    created_at: dt.datetime
    redriven_at: dt.datetime | None


class DlqTopicStatus(msgspec.Struct):
    """One DLQ topic: what Kafka holds and what is stored for re-drive."""

    dlq_topic: str
    count: Annotated[
        int | None,
        msgspec.Meta(description="Messages in the Kafka topic; null when Kafka was never reachable."),
    ]
    threshold: Annotated[int, msgspec.Meta(description="Alert threshold of the DLQ monitor.")]
    over_threshold: bool
    stored: Annotated[int, msgspec.Meta(description="Stored dead letters not yet re-driven.")]


class DlqOverview(msgspec.Struct):
    """Every DLQ topic and the newest dead letters."""

    kafka_available: Annotated[
        bool,
        msgspec.Meta(description="False when Kafka could not be asked; counts are then the last known ones."),
    ]
    topics: list[DlqTopicStatus]
    latest: list[DeadLetter]
    kafka_error: str | None = None


class RedriveRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Which dead letters to re-drive in bulk."""

    dlq_topic: Annotated[TopicName | None, msgspec.Meta(description="Only dead letters of this DLQ topic.")] = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000, description="At most this many, oldest first.")] = 100


class RedriveResult(msgspec.Struct):
    """The outcome of a bulk re-drive."""

    redriven: int
    skipped: Annotated[
        list[int],
        msgspec.Meta(description="Dead letters left alone: their original topic is no longer in the catalog."),
    ] = msgspec.field(default_factory=list)
