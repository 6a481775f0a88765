"""The outbox relay's guarantees against the real broker and database.

Several relays at once deliver each event once and in order per key; a broker lost in the middle of a
round leaves, for every key, only a prefix of its rows marked sent (nothing acknowledged out of order),
and the rest follows once the broker is back; sent rows are logged in ``event_logs`` and pruned after the
retention.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY
from sqlalchemy import text

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import (
    EventPublisher,
    OnexEnvelopeV1,
    OutboxRelay,
    TopicCatalog,
    load_catalog,
    new_envelope,
)
from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import make_settings, wait_until
from tests.support.contracts_helper import contracts_copy
from tests.support.kafka_helpers import verify_envelope


def _catalog_with_topic(tmp_path: Path, topic: str, **outbox: int) -> TopicCatalog:
    def edit(data: dict[str, Any]) -> None:
        data["topics"].append({"name": topic, "description": "relay tests", "dlq": "omninode_bridge_dlq_v1"})
        data["outbox"].update(outbox)

    return load_catalog(contracts_copy(tmp_path, edit))


def _envelopes(count: int, keys: list[str], pad: int = 100) -> list[OnexEnvelopeV1]:
    """``count`` envelopes spread round-robin over ``keys``; ``seq`` numbers them within their key."""
    return [
        new_envelope(event_type="RelayTest", payload={"seq": i // len(keys), "pad": "x" * pad}, correlation_id=key)
        for i in range(count)
        for key in [keys[i % len(keys)]]
    ]


async def _stage(database: Database, catalog: TopicCatalog, topic: str, envelopes: list[OnexEnvelopeV1]) -> None:
    publisher = EventPublisher(catalog, database)
    for offset in range(0, len(envelopes), 2000):
        async with database.unit_of_work() as uow:
            await publisher.publish_many(uow, topic, envelopes[offset : offset + 2000])
            await uow.commit()


async def _scalar(database: Database, sql: str, **params: Any) -> Any:
    async with database.unit_of_work() as uow:
        return await uow.session.scalar(text(sql), params)


async def _pending(database: Database, topic: str) -> int:
    return int(await _scalar(database, "SELECT count(*) FROM event_outbox_pending WHERE topic = :t", t=topic))


async def _logged(database: Database, topic: str) -> int:
    sql = "SELECT count(*) FROM event_logs WHERE topic = :t AND direction = 'published' AND status = 'sent'"
    return int(await _scalar(database, sql, t=topic))


async def _read_all(bootstrap: str, topic: str, *, at_least: int, timeout: float = 60.0) -> list[Any]:
    """Every record of ``topic``: read until ``at_least`` arrived and then a one-second poll brings nothing."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch and len(records) >= at_least:
                break
            for items in batch.values():
                records.extend(items)
    finally:
        await consumer.stop()
    assert len(records) >= at_least, f"{topic}: {len(records)} of {at_least} records within {timeout}s"
    return records


async def test_two_relays_deliver_each_event_once_in_order_per_key(stack: EmbeddedStack, tmp_path: Path) -> None:
    topic = f"omninode_bridge_test_relay_{uuid.uuid4().hex[:8]}"
    # Small rounds, so that the two relays take turns many times.
    catalog = _catalog_with_topic(tmp_path, topic, batch_size=300)
    settings = make_settings(stack)
    databases = [Database(settings.database) for _ in range(2)]  # as two app processes would have
    keys = [f"two-relays-{uuid.uuid4()}" for _ in range(20)]
    envelopes = _envelopes(6000, keys)
    relays = [OutboxRelay(database, catalog, stack.urls["kafka"]) for database in databases]
    try:
        await _stage(databases[0], catalog, topic, envelopes)
        tasks = [asyncio.create_task(relay.run()) for relay in relays]
        try:

            async def drained() -> bool:
                return await _pending(databases[0], topic) == 0

            await wait_until(drained, timeout=120, interval=0.1, message="the relays did not drain the outbox")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert await _logged(databases[0], topic) == len(envelopes)
    finally:
        for database in databases:
            await database.dispose()

    received = [verify_envelope(r.value) for r in await _read_all(stack.urls["kafka"], topic, at_least=len(envelopes))]
    assert len(received) == len(envelopes), "an event was sent twice"
    assert {e["event_id"] for e in received} == {str(e.event_id) for e in envelopes}
    for key in keys:
        assert [e["payload"]["seq"] for e in received if e["correlation_id"] == key] == list(range(300))


async def test_broker_lost_mid_round_marks_a_prefix_per_key_then_drains(
    own_stack: EmbeddedStack, tmp_path: Path
) -> None:
    assert own_stack.kafka is not None
    topic = f"omninode_bridge_test_relay_{uuid.uuid4().hex[:8]}"
    catalog = _catalog_with_topic(tmp_path, topic)
    database = Database(make_settings(own_stack).database)
    keys = [f"lost-{uuid.uuid4()}" for _ in range(10)]
    # 20 kB records: a 1 MiB batch holds ~50, so the round takes dozens of produce requests in a row and
    # the broker can be killed while some are acknowledged and others are not.
    envelopes = _envelopes(3000, keys, pad=20_000)
    relay = OutboxRelay(database, catalog, own_stack.urls["kafka"], request_timeout_ms=2000)
    errors = "omninode_outbox_publish_errors_total"
    arrived: list[int] = []

    async def count_arrivals() -> None:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=own_stack.urls["kafka"], auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=50)
                arrived.append(sum(len(items) for items in batch.values()))
        finally:
            await consumer.stop()

    try:
        await _stage(database, catalog, topic, envelopes)
        await relay.connect()  # creates the topic, so that the counting consumer can subscribe first
        counter = asyncio.create_task(count_arrivals())
        task = asyncio.create_task(relay.run())
        try:

            async def first_round_under_way() -> bool:
                return sum(arrived) >= 100

            await wait_until(first_round_under_way, timeout=60, interval=0.005, message="nothing arrived")
            failed_before = REGISTRY.get_sample_value(errors) or 0.0
            # Killed, not stopped: a graceful stop lets Tansu serve for seconds more, enough to drain.
            assert own_stack.kafka.process is not None
            own_stack.kafka.process.kill()
            counter.cancel()
            await asyncio.gather(counter, return_exceptions=True)
            await asyncio.to_thread(own_stack.kafka.stop)

            async def round_failed() -> bool:
                return (REGISTRY.get_sample_value(errors) or 0.0) > failed_before

            await wait_until(round_failed, timeout=60, interval=0.05, message="the relay did not notice")
            sent = len(envelopes) - await _pending(database, topic)
            # The round was cut: what Kafka acknowledged before the kill is committed, the rest waits.
            assert 0 < sent < len(envelopes), f"{sent} rows sent: the broker did not die in the middle of the round"
            # For every key, no row waits while a later row of the same key was marked sent.
            out_of_order = await _scalar(
                database,
                """
                SELECT count(*) FROM (
                    SELECT o.key, max(o.id) FILTER (WHERE p.id IS NULL) AS last_sent,
                           min(o.id) FILTER (WHERE p.id IS NOT NULL) AS first_pending
                    FROM event_outbox AS o LEFT JOIN event_outbox_pending AS p USING (id)
                    WHERE o.topic = :t GROUP BY o.key
                ) k WHERE last_sent > first_pending
                """,
                t=topic,
            )
            assert out_of_order == 0
            await asyncio.to_thread(own_stack.kafka.start)  # empty: the relay recreates the topics

            async def drained() -> bool:
                return await _pending(database, topic) == 0

            await wait_until(drained, timeout=120, interval=0.1, message="the relay did not catch up")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await _logged(database, topic) == len(envelopes)  # each row marked (and logged) once
    finally:
        await database.dispose()


async def test_prune_removes_only_sent_rows_past_the_retention(stack: EmbeddedStack, tmp_path: Path) -> None:
    topic = f"omninode_bridge_test_relay_{uuid.uuid4().hex[:8]}"
    catalog = _catalog_with_topic(tmp_path, topic, retention_hours=1)
    database = Database(make_settings(stack).database)
    # name: (created how long ago, sent)
    rows = {
        "old_sent": (dt.timedelta(hours=2), True),
        "recent_sent": (dt.timedelta(minutes=10), True),
        "old_pending": (dt.timedelta(hours=3), False),
    }
    ids = {name: uuid.uuid4() for name in rows}
    try:
        async with database.unit_of_work() as uow:
            for name, (age, sent) in rows.items():
                await uow.session.execute(
                    text(
                        "INSERT INTO event_outbox (event_id, topic, key, event_type, envelope, headers, created_at)"
                        " VALUES (:id, :t, 'k', 'RelayTest', '\\x00', '{}', now() - CAST(:age AS interval))"
                    ),
                    {"id": ids[name], "t": topic, "age": age},
                )
                if sent:  # what the relay's mark does
                    await uow.session.execute(
                        text(
                            "DELETE FROM event_outbox_pending WHERE id = "
                            "(SELECT id FROM event_outbox WHERE event_id = :id)"
                        ),
                        {"id": ids[name]},
                    )
            await uow.commit()
        relay = OutboxRelay(database, catalog, stack.urls["kafka"])
        assert await relay.prune() >= 1
        left = await _scalar(database, "SELECT array_agg(event_id) FROM event_outbox WHERE topic = :t", t=topic)
        assert set(left) == {ids["recent_sent"], ids["old_pending"]}
    finally:
        await database.dispose()
