"""The event backbone against the real broker and database: outbox, relay, consumers, DLQ, request-reply."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import (
    EventPublisher,
    TopicCatalog,
    encode_envelope,
    load_catalog,
    new_envelope,
    subscribe,
)
from omninode_bridge.core.events import consumers as consumers_module
from omninode_bridge.core.module import Module
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, app_client, live_server, make_settings, wait_until
from tests.support.contracts_helper import contracts_copy
from tests.support.kafka_helpers import read_topic, verify_envelope

HEADERS = {"X-API-Key": ADMIN_KEY}
STATUS_TOPIC = "omninode_codegen_status_session_v1"
TEST_TOPIC = "omninode_bridge_test_events_v1"


# --- pure logic ------------------------------------------------------------------------------------


# --- outbox ---------------------------------------------------------------------------------------


async def _pending(database_url: str, event_id: uuid.UUID) -> int:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        count = (
            await conn.execute(text("SELECT count(*) FROM event_outbox WHERE event_id = :id"), {"id": event_id})
        ).scalar_one()
    await engine.dispose()
    return int(count)


async def test_rolled_back_publish_produces_no_event(settings: Settings) -> None:
    database = Database(settings.database)
    publisher = EventPublisher(load_catalog(), database)
    status = {"session_id": str(uuid.uuid4()), "status": "started", "progress_percent": 0, "current_step": "x"}
    rolled_back = new_envelope(event_type="CodegenStatusEvent", payload=status)
    committed = new_envelope(event_type="CodegenStatusEvent", payload=status)
    try:

        async def failing_change() -> None:
            async with database.unit_of_work() as uow:
                await publisher.publish(uow, STATUS_TOPIC, rolled_back)
                raise RuntimeError("the change failed after publish")

        with pytest.raises(RuntimeError):
            await failing_change()
        async with database.unit_of_work() as uow:
            await publisher.publish(uow, STATUS_TOPIC, committed)
            await uow.commit()
    finally:
        await database.dispose()
    assert await _pending(settings.database.url or "", rolled_back.event_id) == 0
    assert await _pending(settings.database.url or "", committed.event_id) == 1


async def test_topics_are_created_with_catalog_partitions(client: Any, stack: EmbeddedStack) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls["kafka"])
    await admin.start()
    try:
        described = await admin.describe_topics([STATUS_TOPIC, "omninode_codegen_request_analyze_v1"])
    finally:
        await admin.close()
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    assert partitions == {STATUS_TOPIC: 6, "omninode_codegen_request_analyze_v1": 3}


# --- Kafka outage: nothing acknowledged is lost ---------------------------------------------------


async def test_kafka_down_requests_accepted_then_delivered_once_in_order(own_stack: EmbeddedStack) -> None:
    stack = own_stack
    assert stack.kafka is not None
    settings = make_settings(stack)
    session = uuid.uuid4()
    keys = [f"order-{uuid.uuid4()}" for _ in range(10)]  # Kafka key = the request's correlation id
    async with app_client(settings) as client:
        stack.kafka.stop()
        try:
            for step in range(10):
                for key in keys:
                    response = await client.post(
                        f"/codegen/sessions/{session}/status",
                        json={"status": "in_progress", "progress_percent": step * 10, "current_step": key},
                        headers={**HEADERS, "X-Correlation-ID": key},
                    )
                    assert response.status_code == 202, response.text
        finally:
            stack.kafka.start()  # same port, empty broker: the relay must recreate the topics
        records = await read_topic(
            stack.urls["kafka"], STATUS_TOPIC, expect=100, timeout=120,
            match=lambda r: r.key is not None and r.key.decode() in keys,
        )  # fmt: skip
        ours = [verify_envelope(r.value) for r in records]
        assert len({e["event_id"] for e in ours}) == 100, "an accepted event was lost"
        # Delivery is at-least-once; a batch cut short by the outage may be re-sent. Consumers dedupe by
        # event_id, so what counts is the first arrival of each event, in order per key.
        first_seen: dict[str, dict[str, Any]] = {}
        for envelope in ours:
            first_seen.setdefault(envelope["event_id"], envelope)
        for key in keys:
            steps = [e["payload"]["progress_percent"] for e in first_seen.values() if e["correlation_id"] == key]
            assert steps == [step * 10 for step in range(10)], f"order was not kept for key {key}"

        async def recorded() -> bool:
            timeline = await client.get(f"/codegen/sessions/{session}", headers=HEADERS)
            return timeline.status_code == 200 and len(timeline.json()["events"]) == 100

        await wait_until(recorded, timeout=60, interval=0.5, message="the status consumer did not catch up")
        timeline = (await client.get(f"/codegen/sessions/{session}", headers=HEADERS)).json()
        assert len({e["event_id"] for e in timeline["events"]}) == 100  # each event applied exactly once


# --- consumers: idempotency, retries, DLQ ---------------------------------------------------------


def _test_contracts(tmp_path: Path) -> Path:
    def add_test_consumers(data: dict[str, Any]) -> None:
        data["topics"].append({"name": TEST_TOPIC, "description": "tests", "dlq": "omninode_bridge_dlq_v1"})
        data["consumers"]["test.counter"] = {
            "topic": TEST_TOPIC,
            "group": f"test-counter-{uuid.uuid4()}",
            "max_attempts": 3,
        }

    return contracts_copy(tmp_path, add_test_consumers)


async def _counter_handler(envelope: Any, uow: Any) -> None:
    if envelope.payload.get("fail"):
        raise ValueError("this event always fails")
    await uow.session.execute(
        text(
            "INSERT INTO test_counters (name, n) VALUES (:name, 1) "
            "ON CONFLICT (name) DO UPDATE SET n = test_counters.n + 1"
        ),
        {"name": envelope.payload["name"]},
    )


def _counter_module() -> Module:
    def router(catalog: TopicCatalog) -> KafkaRouter:
        kafka_router = KafkaRouter()
        subscribe(kafka_router, catalog, "test.counter", _counter_handler)
        return kafka_router

    return Module(name="test_counter", kafka_routers=[router])


async def _counter(database_url: str, name: str) -> int:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        value = (await conn.execute(text("SELECT n FROM test_counters WHERE name = :n"), {"n": name})).scalar()
    await engine.dispose()
    return int(value or 0)


async def test_redelivery_has_one_effect_and_failures_go_to_the_dlq(
    stack: EmbeddedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers_module, "RETRY_BACKOFF_SECONDS", 0.01)
    url = stack.urls["database_url"]
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS test_counters (name text PRIMARY KEY, n int NOT NULL)"))
    await engine.dispose()
    settings = make_settings(stack, server={"contracts_dir": str(_test_contracts(tmp_path))})
    name = f"counter-{uuid.uuid4()}"
    twice = new_envelope(event_type="TestEvent", payload={"name": name})
    failing = new_envelope(event_type="TestEvent", payload={"name": name, "fail": True})
    after = new_envelope(event_type="TestEvent", payload={"name": name + "-after"})
    poison_value = b"\x00 definitely not an envelope " + name.encode()
    async with app_client(settings, modules=[_counter_module()]):
        producer = AIOKafkaProducer(bootstrap_servers=stack.urls["kafka"])
        await producer.start()
        try:
            # One key, so one partition: consumed in the order sent, and "after" applied means every event before
            # it was handled (with a key per event they spread over partitions and "after" could come first).
            key = name.encode()
            for envelope in (twice, twice, failing, after):  # the same event delivered twice
                await producer.send_and_wait(TEST_TOPIC, encode_envelope(envelope), key=key)
            await producer.send_and_wait(TEST_TOPIC, poison_value, key=key)
        finally:
            await producer.stop()

        async def consumed_all() -> bool:
            return await _counter(url, name + "-after") == 1

        await wait_until(consumed_all, timeout=60, interval=0.2, message="the consumer did not move past the failure")
        assert await _counter(url, name) == 1, "the redelivered event changed state twice"

        # The DLQ is shared with every other test: read this test's two records only.
        dlq = await read_topic(
            stack.urls["kafka"], "omninode_bridge_dlq_v1", expect=2, timeout=30,
            match=lambda r: r.value == poison_value
            or dict(r.headers).get("event_id", b"").decode() == str(failing.event_id),
        )  # fmt: skip
        by_event = {dict(r.headers).get("event_id", b"").decode(): r for r in dlq}
        failed = by_event[str(failing.event_id)]
        headers = {k: v.decode() for k, v in failed.headers}
        assert headers["original_topic"] == TEST_TOPIC
        assert headers["attempts"] == "3"
        assert headers["error"] == "ValueError"  # a classification, never a library's (or handler's) text
        assert headers["original_partition"].isdigit()
        assert headers["original_offset"].isdigit()
        assert failed.value == encode_envelope(failing)
        poison = [r for r in dlq if r.value == poison_value]
        assert poison, "the poison message was not dead-lettered"
        assert "malformed" in dict(poison[0].headers)["error"].decode()


# --- request-reply ---------------------------------------------------------------------------------


async def _responder(bootstrap: str, stop: asyncio.Event) -> None:
    """A stand-in for omniarchon: answers analyze requests with a correlated response."""
    consumer = AIOKafkaConsumer(
        "omninode_codegen_request_analyze_v1", bootstrap_servers=bootstrap, group_id=f"responder-{uuid.uuid4()}",
        auto_offset_reset="latest",
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    request = verify_envelope(record.value)
                    reply = new_envelope(
                        event_type="CodegenAnalysisResponse",
                        correlation_id=request["correlation_id"],
                        source="omniarchon-test",
                        payload={
                            "analysis_result": {"echo": request["payload"]["prd_content"]},
                            "confidence_score": 0.9,
                            "recommendations": ["ship it"],
                        },
                    )
                    await producer.send_and_wait(
                        "omninode_codegen_response_analyze_v1",
                        encode_envelope(reply),
                        key=reply.correlation_id.encode(),
                    )
    finally:
        await consumer.stop()
        await producer.stop()


async def test_request_reply_returns_the_correlated_response_or_504(stack: EmbeddedStack, tmp_path: Path) -> None:
    def short_timeout(data: dict[str, Any]) -> None:
        data["request_reply"]["timeout_ms"] = 8000

    settings = make_settings(stack, server={"contracts_dir": str(contracts_copy(tmp_path, short_timeout))})
    stop = asyncio.Event()
    responder = asyncio.create_task(_responder(stack.urls["kafka"], stop))
    try:
        # A real server in this event loop: the in-process test client blocks the loop during a request,
        # which would starve the responder task.
        async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            body = {"prd_content": "As a user I want stamps", "target_language": "python"}

            async def answered() -> bool:
                # The responder's and the app's consumers join asynchronously; retry until both listen.
                response = await client.post("/codegen/analyze", json=body, headers=HEADERS)
                return response.status_code == 200

            await wait_until(answered, timeout=90, interval=0.1, message="no correlated response")
            response = await client.post("/codegen/analyze", json=body, headers=HEADERS)
            assert response.status_code == 200
            reply = response.json()
            assert reply["event_type"] == "CodegenAnalysisResponse"
            assert reply["payload"]["analysis_result"] == {"echo": body["prd_content"]}
            assert reply["source"] == "omniarchon-test"

            unanswered = await client.post(
                "/codegen/mixin",
                json={"node_name": "n", "required_capabilities": ["x"], "language": "python"},
                headers=HEADERS,
            )
            assert unanswered.status_code == 504
            assert unanswered.json()["type"] == "https://omninode.dev/problems/codegen-timeout"
            assert "8000 ms" in unanswered.json()["detail"]
    finally:
        stop.set()
        await responder
