"""The transactional outbox: ``publish`` inside a unit of work, a relay that ships rows to Kafka.

``EventPublisher.publish`` inserts the encoded envelope into ``event_outbox`` in the caller's
transaction, so rolled-back work publishes nothing and committed work is never lost, whatever Kafka
is doing. :class:`OutboxRelay` claims pending rows in id order (``FOR UPDATE SKIP LOCKED`` under a
transaction-level advisory lock, so several app processes never double-send or interleave a key),
sends them (``acks=all``), waits for the acks, then marks them sent and logs them in
``event_logs`` in the same transaction. While Kafka is down it backs off and retries; when the broker
comes back empty (the embedded one keeps messages in memory) it recreates the catalog's topics first.
A crash between the acks and the commit re-sends that batch: delivery is at-least-once and consumers
deduplicate by ``event_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge
from sqlalchemy import delete, func, insert, select, text, update

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.events.catalog import TopicCatalog
from omninode_bridge.core.events.envelope import OnexEnvelopeV1, encode_envelope, kafka_headers
from omninode_bridge.core.events.models import EventLog, OutboxEntry
from omninode_bridge.core.events.topics import ensure_topics

__all__ = ["EventPublisher", "OutboxRelay"]

log = structlog.get_logger(__name__)

OUTBOX_SIGNAL = "outbox"
# Any constant works; it only has to be the same in every process sharing the database.
_RELAY_LOCK_ID = 0x0B1D6E_0001

sent_total = Counter("omninode_outbox_sent_total", "Events the relay delivered to Kafka.", ["topic"])
publish_errors_total = Counter("omninode_outbox_publish_errors_total", "Failed relay batches.")
backlog_gauge = Gauge("omninode_outbox_backlog", "Outbox rows not yet sent.")
oldest_gauge = Gauge("omninode_outbox_oldest_pending_seconds", "Age of the oldest unsent outbox row.")


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
        await uow.session.execute(insert(OutboxEntry.__table__), self.outbox_rows(uow, topic, envelopes))

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
        import uuid

        self.catalog.require(topic)
        await uow.session.execute(
            insert(OutboxEntry),
            [{"event_id": uuid.uuid4(), "topic": topic, "key": key or "", "event_type": event_type,
              "envelope": value, "headers": headers}],
        )  # fmt: skip
        uow.after_commit(self.database.signal(OUTBOX_SIGNAL).set)


class OutboxRelay:
    """Ships outbox rows to Kafka; one per process, at most one active at a time across processes."""

    def __init__(
        self,
        database: Database,
        catalog: TopicCatalog,
        bootstrap_servers: str,
        *,
        client_id: str = "omninode-bridge-relay",
        request_timeout_ms: int = 10_000,
    ) -> None:
        self.database = database
        self.catalog = catalog
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.batch_size = catalog.outbox.batch_size
        self.poll_interval = catalog.outbox.poll_interval_ms / 1000
        self.retention = dt.timedelta(hours=catalog.outbox.retention_hours)
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False
        self._last_gauges = 0.0
        self._last_prune = 0.0

    async def run(self) -> None:
        """Relay until cancelled, backing off while Kafka or PostgreSQL is unavailable."""
        signal = self.database.signal(OUTBOX_SIGNAL)
        backoff = 0.2
        try:
            while True:
                try:
                    sent = await self.relay_once()
                    backoff = 0.2
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    publish_errors_total.inc()
                    log.warning("outbox relay batch failed; retrying", error=str(exc) or type(exc).__name__,
                                retry_in_s=backoff)  # fmt: skip
                    await self._reset_producer()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                await self._housekeeping()
                if sent < self.batch_size:
                    signal.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(signal.wait(), self.poll_interval)
        finally:
            await self._reset_producer()

    async def relay_once(self) -> int:
        """Send one batch of pending rows; returns how many were sent."""
        async with self.database.unit_of_work() as uow:
            session = uow.session
            locked = await session.scalar(select(func.pg_try_advisory_xact_lock(_RELAY_LOCK_ID)))
            if not locked:
                return 0  # another process is relaying right now
            rows = (
                await session.execute(
                    select(
                        OutboxEntry.id,
                        OutboxEntry.topic,
                        OutboxEntry.key,
                        OutboxEntry.envelope,
                        OutboxEntry.headers,
                    )
                    # Rows for topics this process's catalog lacks (written under another contract) wait
                    # for a process that knows them instead of failing every batch here.
                    .where(OutboxEntry.sent_at.is_(None), OutboxEntry.topic.in_(list(self.catalog.topics)))
                    .order_by(OutboxEntry.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            producer = await self._ready_producer()
            # Fresh metadata for every batch: after a broker restart the cached partition map can be stale
            # although nothing failed, and the embedded broker acknowledges records sent to partitions the
            # recreated topic no longer has (they were lost in tests). One metadata round trip per batch.
            await producer.client.force_metadata_update()
            # Sends are issued in id order and aiokafka keeps per-partition order, so per-key order holds.
            futures = [
                await producer.send(
                    row.topic,
                    value=row.envelope,
                    key=row.key.encode() if row.key else None,
                    headers=[(k, v.encode()) for k, v in (row.headers or {}).items()],
                )
                for row in rows
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            # Rows the broker acknowledged are marked sent even if others failed, so a retry does not
            # send them twice. A partition's records travel in one request, so they share their fate and
            # the order within a key holds.
            ids = [row.id for row, result in zip(rows, results, strict=True) if not isinstance(result, BaseException)]
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if not ids:
                raise failure or RuntimeError("no record was acknowledged")
            await session.execute(
                insert(EventLog).from_select(
                    ["event_id", "event_type", "topic", "correlation_id", "direction", "status",
                     "duration_ms", "created_at"],
                    select(
                        OutboxEntry.event_id, OutboxEntry.event_type, OutboxEntry.topic, OutboxEntry.key,
                        text("'published'"), text("'sent'"),
                        func.extract("epoch", func.now() - OutboxEntry.created_at) * 1000,
                        OutboxEntry.created_at,
                    ).where(OutboxEntry.id.in_(ids)),
                )
            )  # fmt: skip
            await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id.in_(ids))
                .values(sent_at=func.now(), attempts=OutboxEntry.attempts + 1)
            )
            await uow.commit()
        for row, result in zip(rows, results, strict=True):
            if not isinstance(result, BaseException):
                sent_total.labels(topic=row.topic).inc()
        if failure is not None:
            raise failure
        return len(ids)

    async def _ready_producer(self) -> AIOKafkaProducer:
        if not self._topics_ready:
            # The broker may have come back empty: recreate the catalog's topics before sending.
            await ensure_topics(self.bootstrap_servers, self.catalog)
            self._topics_ready = True
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id,
                acks="all",
                # Tansu rejects InitProducerId, so no idempotent producer; aiokafka keeps one batch in
                # flight per partition, so retries cannot reorder a key, and a retry's duplicate is
                # dropped by the consumers' event_id check.
                enable_idempotence=False,
                linger_ms=2,
                max_batch_size=1024 * 1024,
                request_timeout_ms=self.request_timeout_ms,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _reset_producer(self) -> None:
        self._topics_ready = False
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_gauges >= 1.0:
            self._last_gauges = now
            await self.update_gauges()
        if now - self._last_prune >= 60.0:
            self._last_prune = now
            await self.prune()

    async def update_gauges(self) -> dict[str, Any]:
        """Refresh the backlog gauges; returns the figures."""
        async with self.database.unit_of_work() as uow:
            count, oldest = (
                await uow.session.execute(
                    select(func.count(), func.min(OutboxEntry.created_at)).where(OutboxEntry.sent_at.is_(None))
                )
            ).one()
        age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else 0.0
        backlog_gauge.set(count)
        oldest_gauge.set(age)
        return {"backlog": count, "oldest_pending_seconds": age}

    async def prune(self, batch: int = 10_000) -> int:
        """Delete sent rows older than the retention, in bounded batches; returns how many."""
        removed = 0
        cutoff = dt.datetime.now(dt.UTC) - self.retention
        while True:
            async with self.database.unit_of_work() as uow:
                doomed = (
                    select(OutboxEntry.id)
                    .where(OutboxEntry.sent_at.is_not(None), OutboxEntry.sent_at < cutoff)
                    .limit(batch)
                    .scalar_subquery()
                )
                result = await uow.session.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(doomed)))
                await uow.commit()
            removed += result.rowcount or 0
            if (result.rowcount or 0) < batch:
                return removed
