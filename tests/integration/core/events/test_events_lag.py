"""Consumer lag per group, from the broker's end offsets and the group's committed offsets."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import EventPublisher, ensure_topics, load_catalog
from omninode_bridge.core.events.dlq import DlqMonitor
from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import make_settings
from tests.support.contracts_helper import contracts_copy


async def test_lag_is_what_the_group_has_not_committed(stack: EmbeddedStack, tmp_path: Path) -> None:
    topic = f"omninode_bridge_test_lag_{uuid.uuid4().hex[:8]}"
    group = f"omninode-bridge-test-lag-{uuid.uuid4().hex[:8]}"

    def edit(data: dict[str, Any]) -> None:
        data["topics"].append({"name": topic, "description": "lag test", "partitions": 2})
        data["consumers"]["test.lag"] = {"topic": topic, "group": group}

    catalog = load_catalog(contracts_copy(tmp_path, edit))
    bootstrap = stack.urls["kafka"]
    await ensure_topics(bootstrap, catalog)
    database = Database(make_settings(stack).database)  # never connects here: the lag reads only Kafka
    monitor = DlqMonitor(catalog, bootstrap, database, EventPublisher(catalog, database))
    assert (await monitor.lag())[(group, topic)] == 0  # nothing produced yet

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, b"x", partition=i % 2)
    finally:
        await producer.stop()
    assert (await monitor.lag())[(group, topic)] == 10  # no commit yet: counted from the beginning

    # The group commits 3 records of partition 0 and 4 of partition 1.
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await member.start()
    try:
        partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        member.assign(partitions)
        await member.commit(dict(zip(partitions, (3, 4), strict=True)))
    finally:
        await member.stop()
    assert (await monitor.lag())[(group, topic)] == 3
    assert REGISTRY.get_sample_value("omninode_consumer_lag", {"group": group, "topic": topic}) == 3
