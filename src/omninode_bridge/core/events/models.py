"""Tables of the event backbone: the outbox, the event log, processed events and dead letters."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import cast

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Identity, Index, LargeBinary, String, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["OUTBOX_TABLE", "DeadLetter", "EventLog", "OutboxEntry", "OutboxPending", "ProcessedEvent"]


class OutboxEntry(DefaultBase):
    """An envelope for Kafka, written in the same transaction as its change and kept for the retention.

    Whether it was sent is not stored on this row: it is pending while its id is in
    :class:`OutboxPending`, which an ``AFTER INSERT`` trigger (migration 0006) fills for every insert,
    whoever the writer (Core insert, ``COPY``, a module's own statement). Marking a row sent is then a
    delete of a narrow row instead of an ``UPDATE`` that copies this wide one and its index entries.
    Marking 20,000 rows (with their ``event_logs`` rows) took 0.38-0.51 s as an update and takes
    0.22-0.26 s as a delete; ``bench/outbox_relay.py`` went from 0.40-0.45 to 0.6-1.0 of the raw producer.
    """

    __tablename__ = "event_outbox"
    __table_args__ = (
        # Retention pruning only: a BRIN index costs next to nothing per insert on an append-only table.
        Index("ix_event_outbox_created_at", "created_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    topic: Mapped[str] = mapped_column(String(249))
    key: Mapped[str] = mapped_column(String(255), comment="Kafka key: the correlation id")
    event_type: Mapped[str] = mapped_column(String(128))
    envelope: Mapped[bytes] = mapped_column(LargeBinary, comment="The encoded OnexEnvelopeV1")
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


#: The class's table, for Core statements (SQLAlchemy annotates ``__table__`` as the wider FromClause).
OUTBOX_TABLE = cast("Table", OutboxEntry.__table__)


class OutboxPending(DefaultBase):
    """The ids of the outbox rows not yet acknowledged by Kafka: the relay's queue.

    Filled by the ``event_outbox_staged`` trigger; the relay deletes a row in the transaction that logs
    the event as published, so "pending" and "logged as sent" never disagree.
    """

    __tablename__ = "event_outbox_pending"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), comment="Copied from the outbox row: the claim filters by it")


class EventLog(DefaultBase):
    """One published or consumed event, to follow a request end to end (seed 001's ``event_logs``)."""

    __tablename__ = "event_logs"
    # What each index costs PostgreSQL per 1,000 rows inserted (backend CPU, 1,000-row statements, 100k+ rows):
    # the heap 2 ms, the primary key 1, (event_type, id) 1.5-2.5, (correlation_id, id) 3.5-5.5 with random
    # (uuid4) correlation ids, each insert on a random leaf page, and about 2 with time-ordered (uuid7) ones.
    # The console filters by both; a hash index on correlation_id costs less per insert but walks the
    # overflow chain of a repeated id on every insert, and without (event_type, id) a rare type is a scan.
    __table_args__ = (
        Index("ix_event_logs_correlation_id", "correlation_id", "id"),
        Index("ix_event_logs_event_type", "event_type", "id"),
        # Time filters only (pages are ordered by id): BRIN, as rows arrive in time order.
        Index("ix_event_logs_created_at", "created_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(128))
    topic: Mapped[str] = mapped_column(String(249))
    correlation_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16), comment="published or consumed")
    status: Mapped[str] = mapped_column(String(16), comment="queued, processed, duplicate, dead_lettered")
    consumer: Mapped[str | None] = mapped_column(String(128), default=None)
    duration_ms: Mapped[float | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


class ProcessedEvent(DefaultBase):
    """Which consumer has applied which event: the idempotency record, in the handler's transaction."""

    __tablename__ = "event_processed"

    consumer: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


class DeadLetter(DefaultBase):
    """A message a consumer gave up on; also sent to the DLQ topic. Admins can re-drive it."""

    __tablename__ = "event_dead_letters"
    __table_args__ = (Index("ix_event_dead_letters_dlq_topic", "dlq_topic", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(128))
    topic: Mapped[str] = mapped_column(String(249))
    dlq_topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int]
    offset: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str | None] = mapped_column(String(255), default=None)
    event_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    event_type: Mapped[str | None] = mapped_column(String(128), default=None)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    redriven_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
