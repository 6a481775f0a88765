"""The reducer's Kafka consumer: windowed batches, offsets committed only after the batch is persisted.

Written on aiokafka directly rather than as a FastStream subscriber: FastStream acknowledges per handler
call (per poll), while the reducer holds a window that spans several polls and may only commit those
offsets once the window's aggregate is in PostgreSQL. The loop is: poll (at most ``batch.max_wait_ms``)
-> add to the window (FSM AGGREGATING) -> when the window holds ``batch.size`` items or is
``window.size_ms`` old, hand it to the writer (PERSISTING) and open the next window -> once its
statement has committed, commit its offsets -> IDLE (or AGGREGATING, when the next window has items).

One batch is in flight at a time (:class:`InFlight`): the next window is polled and decoded while the
database writes the previous one, and waits for it before it is handed over, so offsets are committed
in order and only for committed batches. A crash before an offset commit redelivers what it covers;
the event-id claim makes that harmless (no double reduction).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.db import Database, is_database_unavailable
from omninode_bridge.core.events import ConsumerResources, InvalidEnvelopeError, dead_letter
from omninode_bridge.core.safe_errors import loggable_error
from omninode_bridge.core.settings import KafkaSettings
from omninode_bridge.modules.reducer.services import NamespaceReducer, StampBatch

__all__ = ["InFlight", "ReducerConsumer", "persist_with_retry"]

log = structlog.get_logger(__name__)

IDLE, AGGREGATING, PERSISTING = "IDLE", "AGGREGATING", "PERSISTING"


async def persist_with_retry(reducer: NamespaceReducer, database: Database, batch: StampBatch, topic: str) -> int:
    """Persist ``batch``, retrying while the database is unavailable (its offsets wait with it); items counted."""
    delay = 0.2
    while True:
        try:
            async with database.unit_of_work() as uow:
                counted = await reducer.persist(uow, batch, topic)
        except Exception as exc:
            if not (isinstance(exc, CircuitOpenError) or is_database_unavailable(exc)):
                log.exception("reducer batch failed; retrying", items=len(batch))
            else:
                log.warning("database unavailable; reducer batch waits", items=len(batch))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        return counted


class InFlight:
    """At most one batch being written while the next one fills (the reducer's pipeline, also its benchmark's).

    Args:
        write: Persists a batch (e.g. :func:`persist_with_retry`); returns the items counted.
    """

    def __init__(self, write: Callable[[StampBatch], Coroutine[Any, Any, int]]) -> None:
        self._write = write
        self._task: asyncio.Task[int] | None = None

    @property
    def busy(self) -> bool:
        """A batch was handed over and not yet collected by :meth:`wait`."""
        return self._task is not None

    def done(self) -> bool:
        """The batch in flight is written (or there is none)."""
        return self._task is None or self._task.done()

    async def start(self, batch: StampBatch) -> None:
        """Start writing ``batch``; the previous one must have been collected by :meth:`wait`.

        Returns once the write has run up to its first wait, the database's answer (checking out an idle
        pooled connection and sending a prepared statement do not wait): its statement is on the wire
        while the caller decodes the next batch, which a poll that finds records already fetched would
        not otherwise allow (it returns them without yielding to the event loop).
        """
        if self._task is not None:
            raise RuntimeError("a batch is already in flight")
        self._task = asyncio.create_task(self._write(batch), name="reducer-persist")
        await asyncio.sleep(0)

    async def wait(self) -> int:
        """Wait for the batch in flight; the items it counted (0 when there was none)."""
        task, self._task = self._task, None
        return 0 if task is None else await task

    async def cancel(self) -> None:
        """Abandon the batch in flight (its offsets are not committed: the next owner re-reads it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class ReducerConsumer:
    """Feeds the reducer from its input topic.

    Args:
        resources: The database, catalog and publisher consumers use.
        kafka: The Kafka settings (broker, client id, request timeout).
        reducer: The contract-driven reducer.
    """

    def __init__(self, resources: ConsumerResources, kafka: KafkaSettings, reducer: NamespaceReducer) -> None:
        self.resources = resources
        self.kafka = kafka
        self.reducer = reducer
        spec = reducer.spec
        self.topic = spec.input.topic
        self.consumer_spec = resources.catalog.consumer(spec.input.consumer)
        if self.consumer_spec.topic != self.topic:
            raise ValueError(f"reducer input topic {self.topic} is not consumer {spec.input.consumer}'s topic")
        self.batch_size = spec.batch.size
        self.poll_ms = min(spec.batch.max_wait_ms, spec.window.size_ms)
        self.window_seconds = spec.window.size_ms / 1000
        self._window = reducer.new_batch()
        self._offsets: dict[TopicPartition, int] = {}
        self._opened_at = 0.0
        self._inflight = InFlight(self._write)
        self._inflight_offsets: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        """Consume until cancelled, reconnecting while Kafka is away."""
        delay = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.kafka.bootstrap_servers,
                client_id=f"{self.kafka.client_id}-reducer",
                request_timeout_ms=self.kafka.request_timeout_ms,
                group_id=self.consumer_spec.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.batch_size,
                session_timeout_ms=self.kafka.session_timeout_ms,
                heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
            )
            try:
                await consumer.start()
                delay = 0.5
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reducer consumer interrupted; reconnecting", error=loggable_error(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                # Unpersisted items are dropped with the connection: their offsets were not committed.
                await self._inflight.cancel()
                self._window = self.reducer.new_batch()
                self._offsets.clear()
                self._inflight_offsets.clear()
                self.reducer.transition(IDLE) if self.reducer.state != IDLE else None
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            room = max(1, self.batch_size - len(self._window))
            batches = await consumer.getmany(timeout_ms=self.poll_ms, max_records=room)
            for partition, records in batches.items():
                for record in records:
                    await self._add(record)
                    self._offsets[partition] = record.offset + 1
            if self._inflight.busy and self._inflight.done():
                await self._collect(consumer)
            due = len(self._window) > 0 and (
                len(self._window) >= self.batch_size or time.monotonic() - self._opened_at >= self.window_seconds
            )
            if due:
                await self._collect(consumer)  # the previous batch first: offsets are committed in order
                self.reducer.transition(PERSISTING)
                self._inflight_offsets, self._offsets = self._offsets, {}
                await self._inflight.start(self._window)
                self._window = self.reducer.new_batch()
            elif not self._window and self._offsets and not self._inflight.busy:
                await self._commit(consumer, self._offsets)  # only uncounted events since the last batch
                self._offsets = {}

    async def _add(self, record: Any) -> None:
        try:
            event = self.reducer.decode(record.value)
        except InvalidEnvelopeError as exc:
            info = {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                    "key": record.key.decode(errors="replace") if record.key else None}  # fmt: skip
            await dead_letter(self.resources, self.reducer.consumer, record.value, info, None, str(exc), attempts=0)
            return
        if event is None:  # an event type the reducer does not count: only its offset moves on
            return
        if not self._window:
            self._opened_at = time.monotonic()
            self.reducer.transition(AGGREGATING)  # from IDLE, or from PERSISTING while a batch is in flight
        self._window.add(event)

    async def _write(self, batch: StampBatch) -> int:
        return await persist_with_retry(self.reducer, self.resources.database, batch, self.topic)

    async def _collect(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the batch in flight, then commit the offsets it covers."""
        if not self._inflight.busy:
            return
        await self._inflight.wait()
        offsets, self._inflight_offsets = self._inflight_offsets, {}
        if self.reducer.state == PERSISTING:  # no next window opened meanwhile
            self.reducer.transition(IDLE)
        await self._commit(consumer, offsets)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: the next owner re-reads them and the event-id claim skips
            # what this batch already counted.
            log.warning("reducer offset commit failed", error=str(exc))
