"""The reducer's Kafka consumer: windowed batches, offsets committed only after the batch is persisted.

Written on aiokafka directly rather than as a FastStream subscriber: FastStream acknowledges per handler
call (per poll), while the reducer holds a window that spans several polls and may only commit those
offsets once the window's aggregate is in PostgreSQL. The loop is: poll (at most ``batch.max_wait_ms``)
-> add to the window (FSM AGGREGATING) -> when the window holds ``batch.size`` items or is
``window.size_ms`` old, persist it in one transaction (PERSISTING) -> commit the offsets -> IDLE.
A crash before the offset commit redelivers the window; the event-id claim makes that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.db import is_database_unavailable
from omninode_bridge.core.events import ConsumerResources, InvalidEnvelopeError, dead_letter
from omninode_bridge.core.safe_errors import loggable_error
from omninode_bridge.core.settings import KafkaSettings
from omninode_bridge.modules.reducer.services import NamespaceReducer, StampEvent

__all__ = ["ReducerConsumer"]

log = structlog.get_logger(__name__)

IDLE, AGGREGATING, PERSISTING = "IDLE", "AGGREGATING", "PERSISTING"


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
        self._window: list[StampEvent] = []
        self._offsets: dict[TopicPartition, int] = {}
        self._opened_at = 0.0

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
                self._window.clear()
                self._offsets.clear()
                self.reducer.transition(IDLE) if self.reducer.state == AGGREGATING else None
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
            due = self._window and (
                len(self._window) >= self.batch_size or time.monotonic() - self._opened_at >= self.window_seconds
            )
            if due or (not self._window and self._offsets):
                await self._persist()
                await self._commit(consumer)

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
            self.reducer.transition(AGGREGATING)
        self._window.append(event)

    async def _persist(self) -> None:
        """Persist the window, retrying while the database is unavailable (the offsets wait with it)."""
        if not self._window:
            return
        self.reducer.transition(PERSISTING)
        events = self._window
        delay = 0.2
        while True:
            try:
                async with self.resources.database.unit_of_work() as uow:
                    counted = await self.reducer.persist(uow, events, self.topic)
                    await uow.commit()
            except Exception as exc:
                if not (isinstance(exc, CircuitOpenError) or is_database_unavailable(exc)):
                    log.exception("reducer batch failed; retrying", items=len(events))
                else:
                    log.warning("database unavailable; reducer batch waits", items=len(events))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.debug("reducer batch persisted", items=len(events), counted=counted)
            break
        self._window.clear()
        self.reducer.transition(IDLE)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets, self._offsets = self._offsets, {}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: the next owner re-reads them and the event-id claim skips
            # what this batch already counted.
            log.warning("reducer offset commit failed", error=str(exc))
