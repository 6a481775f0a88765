"""Idempotent FastStream consumers with retries and a dead-letter queue.

``subscribe`` registers a handler on a module's FastStream router, bound by name to its catalog entry
(topic, consumer group, retry budget). Each delivery runs in its own unit of work that first records
``(consumer, event_id)`` in ``event_processed``: a redelivered event finds the row and has no second
effect. The Kafka offset is committed only after the transaction commits (FastStream's
``NACK_ON_ERROR`` policy with auto-commit off). A handler that keeps failing is retried with backoff
``max_attempts`` times, then the original record goes to the paired DLQ topic (through the outbox, with
the error, topic, partition and offset in headers) and the consumer moves on. A message that is not a
valid envelope is dead-lettered at once. Database outages are not the message's fault: the delivery
is retried later instead of being dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.db import Database, UnitOfWork, is_database_unavailable
from omninode_bridge.core.events.catalog import TopicCatalog
from omninode_bridge.core.events.envelope import InvalidEnvelopeError, OnexEnvelopeV1, decode_envelope
from omninode_bridge.core.events.eventlog import log_consumed
from omninode_bridge.core.events.inbox import claim
from omninode_bridge.core.events.models import DeadLetter
from omninode_bridge.core.events.outbox import EventPublisher
from omninode_bridge.core.safe_errors import describe_error

__all__ = ["ConsumerResources", "EventHandler", "bind_consumers", "consume", "dead_letter", "subscribe"]

log = structlog.get_logger(__name__)

EventHandler = Callable[[OnexEnvelopeV1, UnitOfWork], Awaitable[None]]
"""``async def handler(envelope, uow)``: apply the event inside ``uow``; do not commit.

What else a handler needs (a module's state, its settings) it closes over: the module's router factory
builds it.
"""

#: The FastStream context key of :class:`ConsumerResources` (set once per broker by :func:`bind_consumers`).
_RESOURCES = "omninode_consumer_resources"


@dataclass(frozen=True, slots=True)
class ConsumerResources:
    """What the consumers of one app need: the database they commit to, the catalog of their retry
    budgets and DLQ topics, and the outbox publisher that sends dead letters.
    """

    database: Database
    catalog: TopicCatalog
    publisher: EventPublisher


def bind_consumers(broker: KafkaBroker, resources: ConsumerResources) -> None:
    """Hand ``resources`` to every consumer :func:`subscribe` registers on ``broker``'s routers."""
    broker.context.set_global(_RESOURCES, resources)


consumed_total = Counter("omninode_events_consumed_total", "Events consumed, by outcome.", ["consumer", "outcome"])

#: Base of the exponential backoff between attempts, in seconds (tests shorten it).
RETRY_BACKOFF_SECONDS = 0.1


def subscribe(router: KafkaRouter, catalog: TopicCatalog, consumer: str, handler: EventHandler) -> None:
    """Register ``handler`` as the catalog consumer ``consumer`` on ``router``."""
    spec = catalog.consumer(consumer)

    @router.subscriber(
        spec.topic,
        group_id=spec.group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        session_timeout_ms=catalog.group_timing.session_timeout_ms,
        heartbeat_interval_ms=catalog.group_timing.heartbeat_interval_ms,
        title=f"{consumer}:{spec.topic}",
        description=handler.__doc__,
    )
    async def _on_message(msg: KafkaMessage, resources: Annotated[ConsumerResources, Context(_RESOURCES)]) -> None:
        await consume(resources, consumer, handler, msg.body, _record_info(msg))


def _record_info(msg: Any) -> dict[str, Any]:  # a KafkaMessage of one record (no batch: not a tuple)
    record = msg.raw_message
    key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else record.key
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": key}


async def consume(
    resources: ConsumerResources, consumer: str, handler: EventHandler, value: bytes, record: dict[str, Any]
) -> str:
    """Process one record exactly once in effect; returns the outcome (processed, duplicate, dead_lettered).

    Raises:
        Exception: Only when the database is unavailable, so the broker redelivers the record later.
    """
    catalog = resources.catalog
    database = resources.database
    try:
        envelope = decode_envelope(value)
    except InvalidEnvelopeError as exc:
        await dead_letter(resources, consumer, value, record, None, describe_error(exc), attempts=0)
        consumed_total.labels(consumer=consumer, outcome="poison").inc()
        return "dead_lettered"

    max_attempts = catalog.max_attempts(consumer)
    error = ""
    for attempt in range(1, max_attempts + 1):
        started = time.perf_counter()
        try:
            async with database.unit_of_work() as uow:
                if not await claim(uow, consumer, [envelope.event_id]):
                    consumed_total.labels(consumer=consumer, outcome="duplicate").inc()
                    return "duplicate"
                await handler(envelope, uow)
                await log_consumed(
                    uow, consumer, record["topic"], [envelope], duration_ms=(time.perf_counter() - started) * 1000
                )
                await uow.commit()
            consumed_total.labels(consumer=consumer, outcome="processed").inc()
            return "processed"
        except Exception as exc:
            if isinstance(exc, CircuitOpenError) or is_database_unavailable(exc):
                await asyncio.sleep(1.0)  # let the broker redeliver once the database is back
                raise
            # Goes to the DLQ headers, the dead_letters row and the event log: a classification only.
            error = describe_error(exc)
            log.warning("event handler failed", consumer=consumer, attempt=attempt, max_attempts=max_attempts,
                        event_id=str(envelope.event_id), error=error)  # fmt: skip
            if attempt < max_attempts:
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
    await dead_letter(resources, consumer, value, record, envelope, error, attempts=max_attempts)
    consumed_total.labels(consumer=consumer, outcome="dead_lettered").inc()
    return "dead_lettered"


async def dead_letter(
    resources: ConsumerResources,
    consumer: str,
    value: bytes,
    record: dict[str, Any],
    envelope: OnexEnvelopeV1 | None,
    error: str,
    *,
    attempts: int,
) -> None:
    """Send a record a consumer gave up on to its DLQ topic (through the outbox) and record it."""
    catalog = resources.catalog
    dlq_topic = catalog.dlq_for(record["topic"]) or "omninode_bridge_dlq_v1"
    headers = {
        "error": error[:1000],
        "original_topic": record["topic"],
        "original_partition": str(record["partition"]),
        "original_offset": str(record["offset"]),
        "consumer": consumer,
        "attempts": str(attempts),
    }
    if envelope is not None:
        headers["event_id"] = str(envelope.event_id)
        headers["event_type"] = envelope.event_type
    async with resources.database.unit_of_work() as uow:
        if envelope is not None:
            # Mark it handled so a redelivery of the same record is not dead-lettered twice.
            await claim(uow, consumer, [envelope.event_id])
        uow.session.add(
            DeadLetter(
                consumer=consumer, topic=record["topic"], dlq_topic=dlq_topic, partition=record["partition"],
                offset=record["offset"], key=record["key"], event_id=envelope.event_id if envelope else None,
                event_type=envelope.event_type if envelope else None, value=value, error=error,
                attempts=attempts,
            )
        )  # fmt: skip
        if envelope is not None:
            await log_consumed(uow, consumer, record["topic"], [envelope], status="dead_lettered", error=error[:2000])
        await resources.publisher.publish_raw(
            uow, dlq_topic, key=record["key"], value=value, headers=headers,
            event_type=envelope.event_type if envelope else "PoisonMessage",
        )  # fmt: skip
        await uow.commit()
    log.error("message dead-lettered", consumer=consumer, dlq_topic=dlq_topic, error=error, **record)
