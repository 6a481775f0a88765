"""The stored dead letters (``event_dead_letters``): what the operator console lists and re-drives.

Consumers write them (:func:`~omninode_bridge.core.events.consumers.dead_letter`); this module reads them
and re-drives them to their original topic through the outbox, in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select, update

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events.inbox import release
from omninode_bridge.core.events.models import DeadLetter
from omninode_bridge.core.events.outbox import EventPublisher

__all__ = [
    "DeadLetterRecord",
    "latest_dead_letters",
    "lock_dead_letter",
    "lock_dead_letters",
    "redrive",
    "stored_dead_letter_counts",
]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A message a consumer gave up on, with its original key and bytes."""

    id: int
    consumer: str
    topic: str
    dlq_topic: str
    partition: int
    offset: int
    key: str | None
    event_id: uuid.UUID | None
    event_type: str | None
    value: bytes
    error: str
    attempts: int
    created_at: dt.datetime
    redriven_at: dt.datetime | None


def _record(row: DeadLetter) -> DeadLetterRecord:
    return DeadLetterRecord(
        id=row.id, consumer=row.consumer, topic=row.topic, dlq_topic=row.dlq_topic, partition=row.partition,
        offset=row.offset, key=row.key, event_id=row.event_id, event_type=row.event_type, value=row.value,
        error=row.error, attempts=row.attempts, created_at=row.created_at, redriven_at=row.redriven_at,
    )  # fmt: skip


async def _records(uow: UnitOfWork, query: Select[DeadLetter]) -> list[DeadLetterRecord]:
    return [_record(row) for row in (await uow.session.scalars(query)).all()]


async def stored_dead_letter_counts(uow: UnitOfWork) -> dict[str, int]:
    """How many dead letters wait for a re-drive, per DLQ topic."""
    query = (
        select(DeadLetter.dlq_topic, func.count())
        .where(DeadLetter.redriven_at.is_(None))
        .group_by(DeadLetter.dlq_topic)
    )
    return {topic: int(n) for topic, n in (await uow.session.execute(query)).all()}


async def latest_dead_letters(uow: UnitOfWork, *, limit: int, dlq_topic: str | None = None) -> list[DeadLetterRecord]:
    """The newest dead letters (re-driven or not), newest first, of ``dlq_topic`` when given."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if dlq_topic is not None:
        query = query.where(DeadLetter.dlq_topic == dlq_topic)
    return await _records(uow, query)


async def lock_dead_letter(uow: UnitOfWork, dead_letter_id: int) -> DeadLetterRecord | None:
    """One dead letter, locked until ``uow`` ends (two concurrent re-drives must not both publish it)."""
    found = await _records(uow, select(DeadLetter).where(DeadLetter.id == dead_letter_id).with_for_update())
    return found[0] if found else None


async def lock_dead_letters(uow: UnitOfWork, *, limit: int, dlq_topic: str | None = None) -> list[DeadLetterRecord]:
    """The oldest dead letters not re-driven yet, locked until ``uow`` ends; rows another re-drive holds
    are skipped (they are its to publish)."""
    query = (
        select(DeadLetter)
        .where(DeadLetter.redriven_at.is_(None))
        .order_by(DeadLetter.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if dlq_topic is not None:
        query = query.where(DeadLetter.dlq_topic == dlq_topic)
    return await _records(uow, query)


async def redrive(
    uow: UnitOfWork, publisher: EventPublisher, records: Sequence[DeadLetterRecord]
) -> list[DeadLetterRecord]:
    """Stage the re-drive of locked dead letters to their original topics in ``uow`` (no commit).

    Each goes out with its original bytes (the envelope keeps its event id, hash and correlation id), and
    its consumer's claim of the event is released, so the re-driven copy is not skipped as a duplicate.

    Returns:
        The records with ``redriven_at`` set.

    Raises:
        CatalogError: An original topic is not in the catalog.
    """
    if not records:
        return []
    # The consumer recorded these events as handled when it dead-lettered them.
    await release(uow, [(r.consumer, r.event_id) for r in records if r.event_id is not None])
    for r in records:
        headers = {"redriven_from": r.dlq_topic, "dead_letter_id": str(r.id)}
        if r.event_type is not None:
            headers["event_type"] = r.event_type
        if r.event_id is not None:
            headers["event_id"] = str(r.event_id)
        await publisher.publish_raw(
            uow, r.topic, key=r.key, value=r.value, headers=headers, event_type=r.event_type or "Redrive"
        )
    now = dt.datetime.now(dt.UTC)
    await uow.session.execute(
        update(DeadLetter).where(DeadLetter.id.in_([r.id for r in records])).values(redriven_at=now)
    )
    return [dataclasses.replace(r, redriven_at=now) for r in records]
