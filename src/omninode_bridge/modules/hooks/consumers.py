"""The hooks processor (catalog consumer ``hooks.processor``): applies hook events in batches.

Written on aiokafka directly, as the reducer's consumer is, rather than as a FastStream subscriber: a
subscriber handles one record at a time, each in its own transaction of several round trips, so it
applied about a hundred events a second while ``POST /hooks/batch`` accepts tens of thousands. Here each
poll's records (up to ``BATCH_SIZE``) are applied in one transaction: the event ids claimed and logged as
consumed in one statement (``claim_and_log``, so a redelivery has no second effect), then
:func:`process_hooks`; the offsets are committed only after that commit. A record that is not a valid
envelope is dead-lettered at once. When a batch fails for a reason other than the database being away,
its records go through the per-record path (:func:`~omninode_bridge.core.events.consume` with
:func:`process_hook`): retries with backoff, then the DLQ for the record that keeps failing, exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.db import is_database_unavailable
from omninode_bridge.core.events import (
    ConsumerResources,
    EnvelopeHead,
    InvalidEnvelopeError,
    PayloadDecoder,
    claim_and_log,
    consume,
    dead_letter,
    decode_head,
)
from omninode_bridge.core.safe_errors import describe_error, loggable_error
from omninode_bridge.core.settings import KafkaSettings
from omninode_bridge.modules.hooks.messages import HookEventReceived
from omninode_bridge.modules.hooks.services import process_hook, process_hooks

__all__ = ["BATCH_SIZE", "PROCESSOR", "HookProcessor"]

log = structlog.get_logger(__name__)

PROCESSOR = "hooks.processor"
#: Most records applied in one transaction (one poll).
BATCH_SIZE = 1000
#: Longest a poll waits for records: the processor's added latency when hooks trickle in.
POLL_MS = 100

_payloads = PayloadDecoder(HookEventReceived)


def _info(record: Any) -> dict[str, Any]:
    key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else record.key
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": key}


class HookProcessor:
    """Feeds :func:`process_hooks` from the hook topic.

    Args:
        resources: The database, catalog and publisher consumers use.
        kafka: The Kafka settings (broker, client id, timeouts).
    """

    def __init__(self, resources: ConsumerResources, kafka: KafkaSettings) -> None:
        self.resources = resources
        self.kafka = kafka
        self.spec = resources.catalog.consumer(PROCESSOR)

    async def run(self) -> None:
        """Consume until cancelled, reconnecting while Kafka is away."""
        delay = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                self.spec.topic,
                bootstrap_servers=self.kafka.bootstrap_servers,
                client_id=f"{self.kafka.client_id}-hooks",
                request_timeout_ms=self.kafka.request_timeout_ms,
                group_id=self.spec.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=BATCH_SIZE,
                session_timeout_ms=self.kafka.session_timeout_ms,
                heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
            )
            try:
                await consumer.start()
                delay = 0.5
                while True:
                    batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH_SIZE)
                    if batches:
                        await self.apply([record for records in batches.values() for record in records])
                        await self._commit(consumer, {tp: records[-1].offset + 1 for tp, records in batches.items()})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hooks processor interrupted; reconnecting", error=loggable_error(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def apply(self, records: list[Any]) -> None:
        """Apply a poll's records, retrying while the database is unavailable (the offsets wait with it).

        Raises:
            Exception: Only what the per-record path raises (the database went away during it).
        """
        events: dict[uuid.UUID, tuple[EnvelopeHead, HookEventReceived]] = {}
        unusual: list[Any] = []
        for record in records:
            try:
                head = decode_head(record.value)
            except InvalidEnvelopeError as exc:
                await dead_letter(self.resources, PROCESSOR, record.value, _info(record), None, describe_error(exc),
                                  attempts=0)  # fmt: skip
                continue
            try:
                events.setdefault(head.event_id, (head, _payloads.decode(head)))
            except InvalidEnvelopeError:
                unusual.append(record)  # the per-record path tells a bad hash from a payload it cannot apply
        if events:
            await self._apply_batch(records, events)
        for record in unusual:
            await consume(self.resources, PROCESSOR, process_hook, record.value, _info(record))

    async def _apply_batch(
        self, records: list[Any], events: dict[uuid.UUID, tuple[EnvelopeHead, HookEventReceived]]
    ) -> None:
        delay = 0.2
        while True:
            try:
                async with self.resources.database.unit_of_work() as uow:
                    heads = [head for head, _ in events.values()]
                    claimed = await claim_and_log(uow, PROCESSOR, self.spec.topic, heads)
                    await process_hooks(uow, [(i, hook) for i, (_, hook) in events.items() if i in claimed])
                    await uow.commit()
                return
            except Exception as exc:
                if not (isinstance(exc, CircuitOpenError) or is_database_unavailable(exc)):
                    break
                log.warning("database unavailable; hooks batch waits", events=len(events))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.warning("hooks batch failed; applying its records one by one", events=len(events))
        for record in records:
            await consume(self.resources, PROCESSOR, process_hook, record.value, _info(record))

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: the next owner re-reads them and the claims skip what is applied.
            log.warning("hooks processor offset commit failed", error=str(exc))
