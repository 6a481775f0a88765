"""Create the catalog's topics on the broker (idempotent; also against an existing cluster)."""

from __future__ import annotations

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from omninode_bridge.core.events.catalog import TopicCatalog

__all__ = ["ensure_topics"]

log = structlog.get_logger(__name__)


async def ensure_topics(
    bootstrap_servers: str, catalog: TopicCatalog, *, client_id: str = "omninode-bridge-admin"
) -> list[str]:
    """Create every catalog topic the broker lacks, with its partition count; returns those created.

    Existing topics are left alone (a partition count that differs is logged, never changed: shrinking
    is impossible and growing would remap keys).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=topic.name,
                num_partitions=catalog.partitions(topic.name),
                replication_factor=topic.replication_factor or catalog.defaults.replication_factor,
            )
            for topic in catalog.topics.values()
            if topic.name not in existing
        ]
        created: list[str] = []
        if wanted:
            try:
                await admin.create_topics(wanted)
                created = [t.name for t in wanted]
            except TopicAlreadyExistsError:  # another process won the race; fine
                created = []
        if existing:
            for description in await admin.describe_topics(sorted(existing & set(catalog.topics))):
                name = description.get("topic")
                have = len(description.get("partitions") or [])
                if name in catalog.topics and have and have != catalog.partitions(name):
                    log.warning("topic partition count differs from the catalog", topic=name, have=have,
                                want=catalog.partitions(name))  # fmt: skip
        if created:
            log.info("created kafka topics", topics=created)
        return created
    finally:
        await admin.close()
