"""The outbox relay: ships pending ``event_outbox`` rows to Kafka, marks them sent and logs them.

A row is pending while its id is in ``event_outbox_pending`` (staged by a trigger on insert); marking
it sent deletes that narrow row, so the wide outbox row is written once and never updated.

:meth:`OutboxRelay.relay_once` runs one round (``_relay_round.py``): one transaction that holds
``pg_try_advisory_xact_lock`` (at most one relaying process at a time), claims up to ``batch_size``
pending rows ``FOR UPDATE SKIP LOCKED`` in id order, sends them in order per key, and marks sent (and
logs in ``event_logs``) only what Kafka acknowledged with ``acks=all``. :meth:`OutboxRelay.run` repeats
rounds, backs off while Kafka or PostgreSQL is down, recreates the catalog's topics when the broker
comes back empty (the embedded one keeps messages in memory), refreshes the backlog gauges and prunes
sent rows after the retention. Delivery is at-least-once; consumers deduplicate by ``event_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import Any, cast

import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge
from sqlalchemy import CursorResult, delete, func, select

from omninode_bridge.core.db import Database
from omninode_bridge.core.events._partitioner import KeyHashes
from omninode_bridge.core.events._relay_round import RelayRound
from omninode_bridge.core.events.catalog import TopicCatalog
from omninode_bridge.core.events.models import OutboxEntry, OutboxPending
from omninode_bridge.core.events.outbox import OUTBOX_SIGNAL
from omninode_bridge.core.events.topics import ensure_topics
from omninode_bridge.core.safe_errors import loggable_error

__all__ = ["OutboxRelay"]

log = structlog.get_logger(__name__)

# Any constant works; it only has to be the same in every process sharing the database.
_RELAY_LOCK_ID = 0x0B1D6E_0001
_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
#: Rows fetched per step inside a round (the round itself locks up to ``batch_size``).
CHUNK_SIZE = 1000

sent_total = Counter("omninode_outbox_sent_total", "Events the relay delivered to Kafka.", ["topic"])
publish_errors_total = Counter("omninode_outbox_publish_errors_total", "Failed relay batches.")
backlog_gauge = Gauge("omninode_outbox_backlog", "Outbox rows not yet sent.")
oldest_gauge = Gauge("omninode_outbox_oldest_pending_seconds", "Age of the oldest unsent outbox row.")


class OutboxRelay:
    """Ships outbox rows to Kafka; one per process, at most one active at a time across processes.

    Args:
        database: Where the outbox lives; its outbox signal wakes the relay after each commit.
        catalog: The topics (recreated when the broker comes back empty) and the outbox settings.
        bootstrap_servers: Kafka bootstrap servers.
        client_id: Kafka client id of the relay's producer.
        request_timeout_ms: Producer request timeout; a record not acknowledged by then fails.
        chunk_size: Rows read per step inside a round.
    """

    def __init__(
        self,
        database: Database,
        catalog: TopicCatalog,
        bootstrap_servers: str,
        *,
        client_id: str = "omninode-bridge-relay",
        request_timeout_ms: int = 10_000,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.database = database
        self.catalog = catalog
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.batch_size = catalog.outbox.batch_size
        self.chunk_size = max(1, min(chunk_size, self.batch_size))
        self.poll_interval = catalog.outbox.poll_interval_ms / 1000
        self.retention = dt.timedelta(hours=catalog.outbox.retention_hours)
        self._topics = list(catalog.topics)
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False
        self._last_gauges = 0.0
        self._last_prune = 0.0
        self._key_hashes = KeyHashes()

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
                    log.warning("outbox relay batch failed; retrying", error=loggable_error(exc),
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
        """Send one round of pending rows (up to ``batch_size``); returns how many were sent.

        Raises:
            Exception: The first record that failed, after the acknowledged ones were committed.
        """
        # On the drivers of two pooled connections, not through a session: per round, the session's
        # BEGIN, the lock query built and compiled, and the commit were half of the relay's CPU (py-spy),
        # and at one connection a commit wakes a round per request.
        # The lock lasts until the transaction ends; a round that wrote nothing (no lock, nothing sent)
        # commits an empty transaction.
        async with (
            self.database.unit_of_work() as uow,
            uow.pooled_driver() as driver,
            uow.pooled_driver() as reader,
            driver.transaction(),
        ):
            if not await driver.fetchval(_LOCK, _RELAY_LOCK_ID):
                return 0  # another process is relaying right now
            work = RelayRound(driver, self._topics, self.chunk_size, reader, self._key_hashes)
            try:
                await work.run(self.batch_size, self._round_producer)
            except BaseException:
                await work.abandon()
                raise
        for topic, count in work.sent.items():
            sent_total.labels(topic=topic).inc(count)
        if work.failure is not None:
            raise work.failure
        return sum(work.sent.values())

    async def connect(self) -> None:
        """Create the catalog's missing topics and start the producer now rather than at the first send."""
        await self._ready_producer()

    async def close(self) -> None:
        """Stop the producer (:meth:`run` does it when cancelled); the next send starts a new one."""
        await self._reset_producer()

    async def _round_producer(self) -> AIOKafkaProducer:
        producer = await self._ready_producer()
        # Fresh metadata once per round (only when there is something to send): after a broker restart
        # the cached partition map can be stale although nothing failed, and the embedded broker
        # acknowledges records sent to partitions the recreated topic no longer has.
        await producer.client.force_metadata_update()
        return producer

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
                # Tansu rejects InitProducerId, so no idempotent producer; aiokafka keeps one request in
                # flight per broker and puts a retried batch back at the head of its partition's queue,
                # so retries cannot reorder a key, and a retry's duplicate is dropped by the consumers'
                # event_id check.
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
            count, oldest_id = (await uow.session.execute(select(func.count(), func.min(OutboxPending.id)))).one()
            oldest = None
            if oldest_id is not None:
                oldest = await uow.session.scalar(select(OutboxEntry.created_at).where(OutboxEntry.id == oldest_id))
        age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else 0.0
        backlog_gauge.set(count)
        oldest_gauge.set(age)
        return {"backlog": count, "oldest_pending_seconds": age}

    async def prune(self, batch: int = 10_000) -> int:
        """Delete sent rows created more than the retention ago, in bounded batches; returns how many."""
        removed = 0
        cutoff = dt.datetime.now(dt.UTC) - self.retention
        while True:
            async with self.database.unit_of_work() as uow:
                # Created before the cutoff and no longer pending: sent at least a retention ago.
                doomed = (
                    select(OutboxEntry.id)
                    .where(
                        OutboxEntry.created_at < cutoff,
                        ~select(OutboxPending.id).where(OutboxPending.id == OutboxEntry.id).exists(),
                    )
                    .limit(batch)
                    .scalar_subquery()
                )
                # A DELETE gives a CursorResult (with rowcount); Session.execute is annotated as the wider Result.
                result = cast(
                    "CursorResult[Any]",
                    await uow.session.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(doomed))),
                )
                await uow.commit()
            removed += result.rowcount or 0
            if (result.rowcount or 0) < batch:
                return removed
