"""DLQ sizes, stored dead letters and their re-drive through the transactional outbox.

A re-drive stages its changes in the caller's unit of work and commits them itself, so one that rolls
back publishes nothing and one that commits is never lost.
"""

from __future__ import annotations

import asyncio

import structlog

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import (
    DeadLetterRecord,
    DlqMonitor,
    EventPublisher,
    TopicCatalog,
    latest_dead_letters,
    lock_dead_letter,
    lock_dead_letters,
    redrive,
    stored_dead_letter_counts,
)
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.modules.eventlog import schemas

log = structlog.get_logger(__name__)

#: Upper bound on asking Kafka for DLQ sizes; past it the endpoint answers with the last known counts.
KAFKA_CHECK_TIMEOUT_SECONDS = 5.0


def _dead_letter(row: DeadLetterRecord) -> schemas.DeadLetter:
    return schemas.DeadLetter(
        id=row.id,
        consumer=row.consumer,
        topic=row.topic,
        dlq_topic=row.dlq_topic,
        partition=row.partition,
        offset=row.offset,
        event_id=row.event_id,
        event_type=row.event_type,
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
        redriven_at=row.redriven_at,
    )


class DeadLetterService:
    """DLQ sizes, stored dead letters and their re-drive to the original topic.

    Args:
        uow: The request's unit of work.
        catalog: The topic catalog (DLQ topics, threshold, the topics a re-drive may go to).
        publisher: Re-drives through the outbox.
        monitor: The DLQ monitor of the app (None: not running), asked for fresh counts.
    """

    def __init__(
        self, uow: UnitOfWork, catalog: TopicCatalog, publisher: EventPublisher, monitor: DlqMonitor | None
    ) -> None:
        self.uow = uow
        self.catalog = catalog
        self.publisher = publisher
        self.monitor = monitor
        self.audit = platform.AuditService(uow)

    async def overview(self, *, dlq_topic: str | None = None, limit: int = 20) -> schemas.DlqOverview:
        """Per DLQ topic: the Kafka count, the threshold and the stored count; plus the newest dead letters.

        Args:
            dlq_topic: Only this DLQ topic (the topics and the newest dead letters).
            limit: How many of the newest dead letters to list.

        Returns:
            The overview; ``kafka_available`` is false when the counts are the last known ones.
        """
        # Kafka first: no database connection is held while the broker is asked.
        counts, kafka_error = await self._kafka_counts()
        catalog = self.catalog
        threshold = catalog.dlq_monitor.alert_threshold

        stored = await stored_dead_letter_counts(self.uow)
        # Dead letters can name a DLQ topic the catalog no longer has; list them too so none is hidden.
        names = [*catalog.dlq_topics(), *sorted(set(stored) - set(catalog.dlq_topics()))]
        if dlq_topic is not None:
            names = [n for n in names if n == dlq_topic]
        topics = [
            schemas.DlqTopicStatus(
                dlq_topic=name,
                count=counts.get(name),
                threshold=threshold,
                # Same comparison as the DLQ monitor's alert, so the flag and the alert agree.
                over_threshold=(counts.get(name) or 0) > threshold,
                stored=stored.get(name, 0),
            )
            for name in names
        ]

        latest = [_dead_letter(r) for r in await latest_dead_letters(self.uow, limit=limit, dlq_topic=dlq_topic)]
        return schemas.DlqOverview(
            kafka_available=kafka_error is None, topics=topics, latest=latest, kafka_error=kafka_error
        )

    async def _kafka_counts(self) -> tuple[dict[str, int], str | None]:
        """Fresh counts from Kafka, or the monitor's last ones and the reason Kafka could not answer."""
        monitor = self.monitor
        if monitor is None:
            return {}, "the DLQ monitor is not running"
        try:
            async with asyncio.timeout(KAFKA_CHECK_TIMEOUT_SECONDS):
                return dict(await monitor.check()), None
        except Exception as exc:
            reason = describe_error(exc)  # returned to the client: a classification, not the library's text
            if isinstance(exc, TimeoutError):
                reason = f"Kafka did not answer within {KAFKA_CHECK_TIMEOUT_SECONDS:g} s"
            log.warning("DLQ counts unavailable; using the last known ones", error=reason)
            return dict(monitor.counts), reason

    async def redrive_one(self, dead_letter_id: int, *, actor: platform.Actor) -> schemas.DeadLetter:
        """Re-drive one dead letter to its original topic and commit.

        Args:
            dead_letter_id: The dead letter.
            actor: Who asked, for the audit log.

        Returns:
            The dead letter with ``redriven_at`` set.

        Raises:
            ProblemError: 404 when it does not exist; 409 when it was re-driven already or its original
                topic is no longer in the catalog.
        """
        row = await lock_dead_letter(self.uow, dead_letter_id)
        if row is None:
            raise ProblemError(404, f"No dead letter with id {dead_letter_id}.")
        if row.redriven_at is not None:
            raise ProblemError(
                409,
                f"Dead letter {dead_letter_id} was re-driven at {row.redriven_at.isoformat()}.",
                slug="already-redriven",
            )
        if row.topic not in self.catalog.topics:
            raise ProblemError(
                409,
                f"The original topic {row.topic} of dead letter {dead_letter_id} is not in the catalog.",
                slug="topic-not-in-catalog",
            )
        (row,) = await redrive(self.uow, self.publisher, [row])
        self.audit.add(
            "events.dead_letter.redriven",
            "allowed",
            **actor.audit_fields(),
            detail={
                "dead_letter_id": row.id,
                "consumer": row.consumer,
                "topic": row.topic,
                "dlq_topic": row.dlq_topic,
                "event_id": str(row.event_id) if row.event_id else None,
            },
        )
        await self.uow.commit()
        return _dead_letter(row)

    async def redrive_many(self, *, dlq_topic: str | None, limit: int, actor: platform.Actor) -> schemas.RedriveResult:
        """Re-drive the oldest dead letters not yet re-driven, in one transaction, and commit.

        Args:
            dlq_topic: Only dead letters of this DLQ topic.
            limit: At most this many.
            actor: Who asked, for the audit log.

        Returns:
            How many were re-driven, and the ids left alone because their topic left the catalog.
        """
        rows = await lock_dead_letters(self.uow, limit=limit, dlq_topic=dlq_topic)
        # A topic removed from the catalog would fail the whole batch at publish time; leave those rows.
        known = self.catalog.topics
        redrivable = [r for r in rows if r.topic in known]
        skipped = [r.id for r in rows if r.topic not in known]
        await redrive(self.uow, self.publisher, redrivable)
        self.audit.add(
            "events.dead_letters.redriven",
            "allowed",
            **actor.audit_fields(),
            detail={
                "dlq_topic": dlq_topic,
                "count": len(redrivable),
                "dead_letter_ids": [r.id for r in redrivable],
                "skipped_ids": skipped,
            },
        )
        await self.uow.commit()
        return schemas.RedriveResult(redriven=len(redrivable), skipped=skipped)
