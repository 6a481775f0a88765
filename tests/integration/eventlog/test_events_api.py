"""The eventlog module against the real stack: event log, DLQ overview, re-drive and the AsyncAPI document."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from omninode_bridge.core.events import encode_envelope, load_catalog, new_envelope
from omninode_bridge.embedded import EmbeddedStack, free_port
from omninode_bridge.modules.eventlog import ASYNCAPI_PATH, build_module
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, wait_until

Client = AsyncTestClient[Litestar]

ADMIN = {"X-API-Key": ADMIN_KEY}
STATUS_TOPIC = "omninode_codegen_status_session_v1"
STATUS_CONSUMER = "codegen.status_recorder"
PATTERN_DLQ = "omninode_codegen_dlq_pattern_v1"
PROBLEM = "https://omninode.dev/problems/"


@pytest.fixture(scope="module")
async def events_client(settings: Settings) -> AsyncIterator[Client]:
    """An app with only the eventlog module."""
    async with app_client(settings, modules=[build_module(settings.kafka.bootstrap_servers or "")]) as client:
        yield client


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The test's own engine, in the test's event loop (the app's runs in the client's portal)."""
    db = create_async_engine(settings.database.url or "")
    yield db
    await db.dispose()


async def _insert_event_log(engine: AsyncEngine, **fields: Any) -> int:
    row = {
        "event_id": uuid.uuid4(),
        "event_type": "CodegenStatusEvent",
        "topic": STATUS_TOPIC,
        "direction": "published",
        "status": "sent",
        "consumer": None,
        "duration_ms": 1.5,
        "error": None,
        **fields,
    }
    async with engine.begin() as conn:
        return (
            await conn.execute(
                text(
                    "INSERT INTO event_logs (event_id, event_type, topic, correlation_id, direction, status, "
                    "consumer, duration_ms, error) VALUES (:event_id, :event_type, :topic, :correlation_id, "
                    ":direction, :status, :consumer, :duration_ms, :error) RETURNING id"
                ),
                row,
            )
        ).scalar_one()


async def _insert_dead_letter(engine: AsyncEngine, **fields: Any) -> int:
    row = {
        "consumer": STATUS_CONSUMER,
        "topic": STATUS_TOPIC,
        "dlq_topic": PATTERN_DLQ,
        "partition": 0,
        "offset": 7,
        "key": None,
        "event_id": None,
        "event_type": None,
        "value": b"not an envelope",
        "error": "RuntimeError: boom",
        "attempts": 3,
        **fields,
    }
    async with engine.begin() as conn:
        return (
            await conn.execute(
                text(
                    'INSERT INTO event_dead_letters (consumer, topic, dlq_topic, "partition", "offset", key, '
                    "event_id, event_type, value, error, attempts) VALUES (:consumer, :topic, :dlq_topic, "
                    ":partition, :offset, :key, :event_id, :event_type, :value, :error, :attempts) RETURNING id"
                ),
                row,
            )
        ).scalar_one()


async def _envelope_dead_letter(engine: AsyncEngine, **fields: Any) -> tuple[int, Any, bytes]:
    """A dead-lettered envelope whose consumer recorded it as processed (what the consumer does)."""
    envelope = new_envelope(event_type="CodegenStatusEvent", payload={"status": "failed", "n": 1})
    value = encode_envelope(envelope)
    dead_letter_id = await _insert_dead_letter(
        engine,
        key=envelope.correlation_id,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        value=value,
        **fields,
    )
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO event_processed (consumer, event_id) VALUES (:c, :e)"),
            {"c": fields.get("consumer", STATUS_CONSUMER), "e": envelope.event_id},
        )
    return dead_letter_id, envelope, value


async def _outbox_rows(engine: AsyncEngine, dead_letter_id: int) -> list[Any]:
    async with engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT o.topic, key, event_type, envelope, headers, p.id IS NULL AS sent "
                        "FROM event_outbox AS o LEFT JOIN event_outbox_pending AS p USING (id) "
                        "WHERE headers->>'dead_letter_id' = :id"
                    ),
                    {"id": str(dead_letter_id)},
                )
            ).all()
        )


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def _create_key(client: Client, scopes: list[str]) -> str:
    response = await client.post("/admin/api-keys", json={"name": "events-test", "scopes": scopes}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


# --- the event log ---------------------------------------------------------------------------------


async def test_event_log_follows_a_correlation_id_across_pages(events_client: Client, engine: AsyncEngine) -> None:
    correlation = f"corr-{uuid.uuid4()}"
    ids = [await _insert_event_log(engine, correlation_id=correlation) for _ in range(3)]
    ids += [
        await _insert_event_log(
            engine, correlation_id=correlation, direction="consumed", status="processed", consumer=STATUS_CONSUMER
        )
        for _ in range(2)
    ]
    await _insert_event_log(engine, correlation_id=f"other-{uuid.uuid4()}")

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"correlation_id": correlation, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await events_client.get("/events", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        assert all(item["correlation_id"] == correlation for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)  # newest first, each once
    assert pages == 3

    consumed = (
        await events_client.get(
            "/events", params={"correlation_id": correlation, "direction": "consumed"}, headers=ADMIN
        )
    ).json()["items"]
    assert [item["id"] for item in consumed] == sorted(ids[3:], reverse=True)
    item = consumed[0]
    assert set(item) == {
        "id", "event_id", "event_type", "topic", "correlation_id", "direction", "status", "consumer",
        "duration_ms", "error", "created_at",
    }  # fmt: skip
    assert (item["consumer"], item["status"], item["topic"]) == (STATUS_CONSUMER, "processed", STATUS_TOPIC)

    newest = consumed[0]["created_at"]
    after = await events_client.get(
        "/events", params={"correlation_id": correlation, "since": "2999-01-01T00:00:00Z"}, headers=ADMIN
    )
    assert after.json() == {"items": [], "next_cursor": None}
    before = await events_client.get(
        "/events", params={"correlation_id": correlation, "until": newest, "status": "sent"}, headers=ADMIN
    )
    assert {i["id"] for i in before.json()["items"]} <= set(ids[:3])


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "abc"},
        {"cursor": "9" * 30},
        {"limit": 0},
        {"limit": 501},
        {"direction": "sideways"},
        {"since": "2025-01-01T00:00:00"},
    ],
)
async def test_event_log_rejects_bad_queries_with_problems(events_client: Client, params: dict[str, Any]) -> None:
    response = await events_client.get("/events", params=params, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM + "validation-error"


async def test_scopes_guard_every_events_endpoint(events_client: Client) -> None:
    assert (await events_client.get("/events")).status_code == 401
    hooks_key = {"X-API-Key": await _create_key(events_client, ["hooks"])}
    for method, path in (("GET", "/events"), ("GET", "/events/dlq"), ("POST", "/events/dlq/1/redrive")):
        response = await events_client.request(method, path, headers=hooks_key)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["type"] == PROBLEM + "forbidden"

    events_key = {"X-API-Key": await _create_key(events_client, ["events"])}
    assert (await events_client.get("/events", params={"limit": 1}, headers=events_key)).status_code == 200
    # Re-drive changes what consumers do: reading the DLQs is not enough for it.
    assert (await events_client.post("/events/dlq/1/redrive", headers=events_key)).status_code == 403
    assert (await events_client.post("/events/dlq/redrive", json={}, headers=events_key)).status_code == 403


# --- DLQs ------------------------------------------------------------------------------------------


def _topic(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in body["topics"] if t["dlq_topic"] == name)


async def test_dlq_overview_counts_kafka_and_stored_dead_letters(
    events_client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    async def overview() -> dict[str, Any]:
        response = await events_client.get("/events/dlq", headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()

    async def kafka_ready() -> bool:
        body = await overview()
        return body["kafka_available"] and _topic(body, PATTERN_DLQ)["count"] is not None

    await wait_until(kafka_ready, timeout=30, interval=0.5, message="DLQ counts never came from Kafka")
    before = await overview()
    assert {t["dlq_topic"] for t in before["topics"]} >= set(load_catalog().dlq_topics())

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        for n in range(2):
            await producer.send_and_wait(PATTERN_DLQ, value=f"dead {n}".encode())
    finally:
        await producer.stop()
    dead_letter_id = await _insert_dead_letter(engine, dlq_topic=PATTERN_DLQ)

    after = await overview()
    status = _topic(after, PATTERN_DLQ)
    assert after["kafka_available"] is True
    assert after["kafka_error"] is None
    assert status["count"] == _topic(before, PATTERN_DLQ)["count"] + 2
    assert status["stored"] == _topic(before, PATTERN_DLQ)["stored"] + 1
    assert status["threshold"] == 10
    assert status["over_threshold"] is (status["count"] > 10)
    assert len(after["latest"]) <= 20
    assert after["latest"][0]["id"] >= dead_letter_id

    filtered = (
        await events_client.get("/events/dlq", params={"dlq_topic": PATTERN_DLQ, "limit": 1}, headers=ADMIN)
    ).json()
    assert [t["dlq_topic"] for t in filtered["topics"]] == [PATTERN_DLQ]
    assert len(filtered["latest"]) == 1
    latest = filtered["latest"][0]
    assert latest["dlq_topic"] == PATTERN_DLQ
    assert set(latest) == {
        "id", "consumer", "topic", "dlq_topic", "partition", "offset", "event_id", "event_type", "error",
        "attempts", "created_at", "redriven_at",
    }  # fmt: skip


async def test_dlq_overview_without_kafka_says_so(stack: EmbeddedStack, engine: AsyncEngine) -> None:
    dead_letter_id = await _insert_dead_letter(engine, dlq_topic=PATTERN_DLQ)
    no_kafka = make_settings(stack, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    async with app_client(no_kafka, modules=[build_module(no_kafka.kafka.bootstrap_servers or "")]) as client:
        response = await client.get("/events/dlq", params={"dlq_topic": PATTERN_DLQ}, headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kafka_available"] is False
    assert body["kafka_error"]
    status = _topic(body, PATTERN_DLQ)
    assert status["count"] is None  # never counted by this process
    assert status["over_threshold"] is False
    assert status["stored"] >= 1
    assert any(d["id"] == dead_letter_id for d in body["latest"])


async def test_redrive_republishes_to_the_original_topic_once(events_client: Client, engine: AsyncEngine) -> None:
    dead_letter_id, envelope, value = await _envelope_dead_letter(engine, dlq_topic="omninode_codegen_dlq_analyze_v1")

    response = await events_client.post(
        f"/events/dlq/{dead_letter_id}/redrive", headers={**ADMIN, "X-Correlation-ID": "redrive-1"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == dead_letter_id
    assert body["redriven_at"] is not None
    assert body["event_id"] == str(envelope.event_id)

    # The consumer would otherwise skip the re-driven event as already processed.
    processed = await _scalar(
        engine,
        "SELECT count(*) FROM event_processed WHERE consumer = :c AND event_id = :e",
        c=STATUS_CONSUMER,
        e=envelope.event_id,
    )
    assert processed == 0
    rows = await _outbox_rows(engine, dead_letter_id)
    assert len(rows) == 1
    row = rows[0]
    assert row.topic == STATUS_TOPIC  # the original topic, not the DLQ
    assert bytes(row.envelope) == value  # the original bytes, unchanged
    assert row.key == envelope.correlation_id
    assert row.event_type == "CodegenStatusEvent"
    assert row.headers == {
        "redriven_from": "omninode_codegen_dlq_analyze_v1",
        "dead_letter_id": str(dead_letter_id),
        "event_type": "CodegenStatusEvent",
        "event_id": str(envelope.event_id),
    }
    assert await _scalar(
        engine, "SELECT redriven_at IS NOT NULL FROM event_dead_letters WHERE id = :id", id=dead_letter_id
    )

    # The outbox row was staged pending; the relay then ships it like any other.
    async def shipped() -> bool:
        return all(r.sent for r in await _outbox_rows(engine, dead_letter_id))

    await wait_until(shipped, timeout=30, interval=0.2, message="the re-driven record was never sent")

    again = await events_client.post(f"/events/dlq/{dead_letter_id}/redrive", headers=ADMIN)
    assert again.status_code == 409
    assert again.json()["type"] == PROBLEM + "already-redriven"
    assert len(await _outbox_rows(engine, dead_letter_id)) == 1

    missing = await events_client.post("/events/dlq/999999999/redrive", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["type"] == PROBLEM + "not-found"

    audit = (
        await events_client.get("/admin/audit", params={"action": "events.dead_letter.redriven"}, headers=ADMIN)
    ).json()["items"]
    entry = next(e for e in audit if e["detail"].get("dead_letter_id") == dead_letter_id)
    assert entry["outcome"] == "allowed"
    assert entry["correlation_id"] == "redrive-1"
    assert entry["key_id"] is not None


async def test_bulk_redrive_oldest_first_within_one_dlq_topic(events_client: Client, engine: AsyncEngine) -> None:
    dlq = f"test_events_dlq_{uuid.uuid4().hex[:8]}"  # a DLQ of its own: other tests' dead letters stay put
    first, envelope, _ = await _envelope_dead_letter(engine, dlq_topic=dlq)
    poison = await _insert_dead_letter(engine, dlq_topic=dlq)
    gone = await _insert_dead_letter(engine, dlq_topic=dlq, topic="omninode_topic_removed_from_catalog")
    last, _, _ = await _envelope_dead_letter(engine, dlq_topic=dlq)
    try:
        response = await events_client.post("/events/dlq/redrive", json={"dlq_topic": dlq, "limit": 2}, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert response.json() == {"redriven": 2, "skipped": []}
        assert len(await _outbox_rows(engine, first)) == 1
        poison_rows = await _outbox_rows(engine, poison)
        assert len(poison_rows) == 1
        assert poison_rows[0].event_type == "Redrive"
        assert "event_id" not in poison_rows[0].headers
        assert await _outbox_rows(engine, last) == []
        assert (
            await _scalar(engine, "SELECT count(*) FROM event_processed WHERE event_id = :e", e=envelope.event_id) == 0
        )

        rest = await events_client.post("/events/dlq/redrive", json={"dlq_topic": dlq}, headers=ADMIN)
        assert rest.json() == {"redriven": 1, "skipped": [gone]}
        assert len(await _outbox_rows(engine, last)) == 1
        done = await events_client.post("/events/dlq/redrive", json={"dlq_topic": dlq}, headers=ADMIN)
        assert done.json() == {"redriven": 0, "skipped": [gone]}

        overview = (await events_client.get("/events/dlq", params={"dlq_topic": dlq}, headers=ADMIN)).json()
        assert _topic(overview, dlq)["stored"] == 1  # only the one whose topic left the catalog
        assert {d["id"]: d["redriven_at"] is not None for d in overview["latest"]} == {
            first: True,
            poison: True,
            gone: False,
            last: True,
        }

        for bad in ({"limit": 0}, {"limit": 1001}, {"unknown": 1}):
            invalid = await events_client.post("/events/dlq/redrive", json=bad, headers=ADMIN)
            assert invalid.status_code == 422, bad
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM event_dead_letters WHERE dlq_topic = :d"), {"d": dlq})


# --- AsyncAPI --------------------------------------------------------------------------------------


async def test_asyncapi_documents_every_catalog_topic_without_a_key(events_client: Client) -> None:
    assert ASYNCAPI_PATH == "/asyncapi"
    response = await events_client.get("/asyncapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["asyncapi"].startswith("3.")
    channels = document["channels"]
    addresses = {c["address"] for c in channels.values()}
    assert STATUS_TOPIC in addresses
    assert addresses >= set(load_catalog().topics)

    status = next(c for c in channels.values() if c["address"] == STATUS_TOPIC)
    assert status["description"] == "Real-time session status (bidirectional)"
    message_name = next(iter(status["messages"].values()))["$ref"].rpartition("/")[2]
    message = document["components"]["messages"][message_name]
    assert message["payload"] == {"$ref": "#/components/schemas/OnexEnvelopeV1"}
    assert "CodegenStatusEvent" in message["description"]
    assert "correlation_id" in document["components"]["schemas"]["OnexEnvelopeV1"]["properties"]
    dlq = next(c for c in channels.values() if c["address"] == PATTERN_DLQ)
    dlq_message = document["components"]["messages"][next(iter(dlq["messages"].values()))["$ref"].rpartition("/")[2]]
    assert "original_topic" in dlq_message["description"]

    # Cached per app: the documentation publishers are registered once, the document does not change.
    assert (await events_client.get("/asyncapi.json")).json() == document

    page = await events_client.get(ASYNCAPI_PATH)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "AsyncApiStandalone" in page.text
    assert STATUS_TOPIC in page.text


async def test_openapi_describes_the_events_endpoints(events_client: Client) -> None:
    schema = (await events_client.get("/schema/openapi.json")).json()
    operations = {
        op["operationId"]: op for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)
    }
    for operation_id in (
        "listEvents",
        "getDeadLetterQueues",
        "redriveDeadLetter",
        "redriveDeadLetters",
        "getAsyncApiDocument",
        "getAsyncApiPage",
    ):
        assert operations[operation_id]["summary"], operation_id
    assert "403" in operations["listEvents"]["responses"]
    assert "409" in operations["redriveDeadLetter"]["responses"]
    assert "/asyncapi.json" in schema["paths"]
