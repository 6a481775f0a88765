"""One relay round: claim pending outbox rows, send them to Kafka, mark what Kafka acknowledged.

A round (:meth:`OutboxRelay.relay_once`) is one transaction. It takes
``pg_try_advisory_xact_lock`` (so of several app processes at most one relays at a time and keys are
never interleaved) and locks up to ``batch_size`` ids of ``event_outbox_pending`` ``FOR UPDATE SKIP
LOCKED`` in id order.
The rest of the round is pipelined, so PostgreSQL, the broker and this process work at the same time
instead of taking turns. The claimed rows are read on a second connection (they are committed rows,
any snapshot sees them), so reading the next chunks overlaps marking the acknowledged ones, which the
round's transaction does; with one connection for both the marks queued behind the reads::

    fetch chunk n+1 (PostgreSQL)  |  batch and send chunk n (Kafka)  |  mark what Kafka acknowledged

* Records are grouped per partition, in id order, into batches handed to aiokafka with ``send_batch``.
  A partition has at most one batch at the producer at a time: its next batch is built only once the
  previous one was acknowledged, and after a failure the partition (and the round) sends nothing more.
  So the order per key holds even when a batch fails, and no later record of a key can overtake one
  that has to be sent again.
* Rows are marked only after Kafka acknowledged them (``acks=all``): one statement deletes their
  ``event_outbox_pending`` rows and logs them in ``event_logs``. The wide outbox row is never updated.
* Nothing is visible before the commit at the end of the round. A crash or database error rolls the
  round back; records Kafka had acknowledged are then sent again later (delivery is at-least-once and
  consumers deduplicate by ``event_id``).
* After a failed batch the round waits for the batches in flight, commits what was acknowledged and
  raises, so :meth:`OutboxRelay.run` backs off, recreates the topics and starts a fresh producer.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from omninode_bridge.core.events._partitioner import murmur2
from omninode_bridge.core.events.eventlog import log_published

__all__ = ["RelayRound"]

# The round's three statements run on the asyncpg connection under the session's transaction: they are
# fixed, return plain tuples and sit on the relay's critical path, where SQLAlchemy's per-row and
# per-statement work showed up in profiles. Tables: ``OutboxPending`` and ``OutboxEntry``; the marks are the
# event log's (:func:`log_published`).
# Claim the round: only the ids are sorted (a few bytes each, in memory, whatever the planner's row
# estimate); the wide columns are then read by primary key. Rows for topics this process's catalog
# lacks (written under another contract) wait for a process that knows them.
_CLAIM = """
SELECT id FROM event_outbox_pending
WHERE topic = ANY($1::text[])
ORDER BY id LIMIT $2
FOR UPDATE SKIP LOCKED
"""
_FETCH = "SELECT id, topic, key, envelope, headers::text FROM event_outbox WHERE id = ANY($1::bigint[]) ORDER BY id"
_decode_headers = msgspec.json.Decoder(dict[str, str | None]).decode


class _Lane:
    """The rows of one partition in a round, waiting for their turn; ``busy`` while a batch is out."""

    __slots__ = ("busy", "partition", "pending", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.pending: deque[tuple[int, bytes | None, bytes, str | None]] = deque()  # id, key, value, headers
        self.busy = False


class RelayRound:
    """The pipeline of one relay round over the connection of its transaction.

    Args:
        conn: The round's asyncpg connection, inside the transaction that holds the advisory lock.
        topics: Topics this process may send.
        chunk: Rows fetched per step.
        reader: A second connection for reading the claimed rows; None reads on ``conn``.
        key_hash: The partitioner's hash of a key (the relay's :class:`KeyHashes` keeps them across rounds).
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        topics: list[str],
        chunk: int,
        reader: asyncpg.Connection | None = None,
        key_hash: Callable[[bytes], int] = murmur2,
    ) -> None:
        self.conn = conn
        self.key_hash = key_hash
        self.reader = reader
        self.topics = topics
        self.chunk = chunk
        self.sent = Counter[str]()
        self.failure: BaseException | None = None
        # One statement at a time on the connection; asyncio.Lock is FIFO, so fetches and marks run in
        # the order they were asked for.
        self._db = asyncio.Lock()
        self._reads = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._partitions: dict[str, tuple[list[int], list[int]]] = {}
        self._key_partition: dict[tuple[str, bytes], int] = {}
        self._busy = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._acked: list[int] = []
        self._marking: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._closed = False

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        return task

    async def _fetch(self, ids: list[int]) -> list[asyncpg.Record]:
        if self.reader is not None:  # own connection: reads overlap the marks
            async with self._reads:
                rows: list[asyncpg.Record] = await self.reader.fetch(_FETCH, ids)
                return rows
        async with self._db:
            rows = await self.conn.fetch(_FETCH, ids)
            return rows

    async def run(self, limit: int, producer_factory: Callable[[], Awaitable[AIOKafkaProducer]]) -> None:
        """Claim up to ``limit`` rows, send them and mark what Kafka acknowledged (not committed)."""
        async with self._db:
            ids = [row[0] for row in await self.conn.fetch(_CLAIM, self.topics, limit)]
        if not ids:
            return
        # Every chunk is asked for at once, so the records reach Kafka as early as possible (on one
        # connection the reads queue ahead of the marks, which then cover more rows per statement).
        fetches = [self._spawn(self._fetch(ids[i : i + self.chunk])) for i in range(0, len(ids), self.chunk)]
        self._producer = await producer_factory()  # while the first chunk is being read
        for fetch in fetches:
            rows = await fetch
            try:
                await self._route(rows)
            except Exception as exc:  # no metadata for a topic: keep what was acknowledged so far
                self.failure = self.failure or exc
            if self.failure is not None:
                break
        await self._quiet.wait()  # every lane is empty, or fenced after a failure
        if self._marking is not None:
            await self._marking
        await self._mark()
        await asyncio.gather(*self._tasks)

    async def abandon(self) -> None:
        """Cancel what is still running (the round failed and its transaction rolls back)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _route(self, rows: list[asyncpg.Record]) -> None:
        """Queue ``rows`` on their partitions' lanes, in id order, and start the idle lanes."""
        assert self._producer is not None
        touched: dict[tuple[str, int], _Lane] = {}
        for row_id, topic, text_key, envelope, headers in rows:
            key: bytes = text_key.encode() if text_key else b""
            partition = self._key_partition.get((topic, key))
            if partition is None:
                partition = await self._partition(topic, key)
            lane = touched.get((topic, partition))
            if lane is None:
                lane = self._lanes.get((topic, partition))
                if lane is None:
                    lane = self._lanes[(topic, partition)] = _Lane(topic, partition)
                touched[(topic, partition)] = lane
            lane.pending.append((row_id, key or None, envelope, headers))
        for lane in touched.values():
            self._pump(lane)

    async def _partition(self, topic: str, key: bytes) -> int:
        """The partition aiokafka's default partitioner picks: murmur2 of the key, random without one."""
        known = self._partitions.get(topic)
        if known is None:
            assert self._producer is not None
            every = sorted(await self._producer.partitions_for(topic))
            available = sorted(self._producer.client.cluster.available_partitions_for_topic(topic) or every)
            known = self._partitions[topic] = (every, available)
        if not key:
            return random.choice(known[1])  # noqa: S311 - spreading load, not security
        hashed = self.key_hash(key)
        partition = known[0][(hashed & 0x7FFFFFFF) % len(known[0])]
        self._key_partition[(topic, key)] = partition
        return partition

    def _pump(self, lane: _Lane) -> None:
        """Send the lane's next batch unless one is out already or the round has failed."""
        if lane.busy or not lane.pending or self.failure is not None or self._closed:
            return
        assert self._producer is not None
        batch = self._producer.create_batch()
        ids: list[int] = []
        pending = lane.pending
        while pending:
            row_id, key, value, headers = pending[0]
            appended = batch.append(
                timestamp=None,
                key=key,
                value=value,
                headers=[
                    (name, None if text is None else text.encode())
                    for name, text in (_decode_headers(headers) if headers else {}).items()
                ],
            )
            if appended is None:
                break  # full (the first record always fits)
            pending.popleft()
            ids.append(row_id)
        batch.close()
        lane.busy = True
        self._busy += 1
        self._quiet.clear()
        self._spawn(self._ship(lane, batch, ids))

    async def _ship(self, lane: _Lane, batch: BatchBuilder, ids: list[int]) -> None:
        assert self._producer is not None
        try:
            delivery = await self._producer.send_batch(batch, lane.topic, partition=lane.partition)
            await delivery
        except Exception as exc:
            if self.failure is None:
                self.failure = exc
        else:
            self._acked.extend(ids)
            self.sent[lane.topic] += len(ids)
            if self._marking is None or self._marking.done():
                self._marking = self._spawn(self._mark())
        finally:
            lane.busy = False
            self._busy -= 1
            self._pump(lane)
            if self._busy == 0:
                self._quiet.set()

    async def _mark(self) -> None:
        """Mark the acknowledged rows sent and log them, until none is left over."""
        while self._acked:
            ids, self._acked = self._acked, []
            async with self._db:
                await log_published(self.conn, ids)
