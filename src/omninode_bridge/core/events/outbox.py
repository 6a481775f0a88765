"""The transactional outbox: ``publish`` inside a unit of work; the relay (``relay.py``) ships the rows.

``EventPublisher.publish`` inserts the encoded envelope into ``event_outbox`` in the caller's
transaction, so rolled-back work publishes nothing and committed work is never lost, whatever Kafka
is doing. After the commit it wakes the relay through the database's ``outbox`` signal.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.events.catalog import TopicCatalog
from omninode_bridge.core.events.envelope import OnexEnvelopeV1, encode_envelope, kafka_headers
from omninode_bridge.core.events.models import OUTBOX_TABLE, OutboxEntry

__all__ = ["OUTBOX_SIGNAL", "EventPublisher"]

#: Name of the database signal that wakes the relay after a commit that staged events.
OUTBOX_SIGNAL = "outbox"


class EventPublisher:
    """Writes envelopes to the outbox; the only way modules publish.

    Args:
        catalog: Topics are checked against it, so an unknown topic fails here, never at the broker.
        database: Its outbox signal wakes the relay after each commit.
    """

    def __init__(self, catalog: TopicCatalog, database: Database) -> None:
        self.catalog = catalog
        self.database = database

    async def publish(self, uow: UnitOfWork, topic: str, envelope: OnexEnvelopeV1) -> None:
        """Stage one envelope for ``topic`` in ``uow``'s transaction."""
        await self.publish_many(uow, topic, [envelope])

    async def publish_many(self, uow: UnitOfWork, topic: str, envelopes: Sequence[OnexEnvelopeV1]) -> None:
        """Stage several envelopes in one statement (batch endpoints)."""
        if not envelopes:
            return
        # A Core insert of the table: no ORM bulk-persistence bookkeeping, no RETURNING.
        await uow.session.execute(insert(OUTBOX_TABLE), self.outbox_rows(uow, topic, envelopes))

    def outbox_rows(self, uow: UnitOfWork, topic: str, envelopes: Sequence[OnexEnvelopeV1]) -> list[dict[str, Any]]:
        """The ``event_outbox`` rows of ``envelopes``, for a caller that inserts them in a statement of its own
        (together with its change, in one round trip); the relay is woken when ``uow`` commits.

        Raises:
            CatalogError: ``topic`` is not in the catalog.
        """
        self.catalog.require(topic)
        uow.after_commit(self.database.signal(OUTBOX_SIGNAL).set)
        return [
            {
                "event_id": e.event_id,
                "topic": topic,
                "key": e.correlation_id,
                "event_type": e.event_type,
                "envelope": encode_envelope(e),
                "headers": {name: value.decode() for name, value in kafka_headers(e)},
            }
            for e in envelopes
        ]

    async def publish_raw(
        self,
        uow: UnitOfWork,
        topic: str,
        *,
        key: str | None,
        value: bytes,
        headers: dict[str, str],
        event_type: str,
    ) -> None:
        """Stage a record that is not one of our envelopes (dead letters keep their original bytes)."""
        self.catalog.require(topic)
        await uow.session.execute(
            insert(OutboxEntry),
            [{"event_id": uuid.uuid4(), "topic": topic, "key": key or "", "event_type": event_type,
              "envelope": value, "headers": headers}],
        )  # fmt: skip
        uow.after_commit(self.database.signal(OUTBOX_SIGNAL).set)
