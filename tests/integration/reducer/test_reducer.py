"""NodeBridgeReducer against the real stack: exact namespace totals, duplicates, contract-driven batching."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.core.contracts import contracts_dir
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.modules.reducer import load_reducer_contract
from omninode_bridge.modules.reducer.services import items_total
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, live_server, make_settings, wait_until
from tests.support.contracts_helper import contracts_copy

HEADERS = {"X-API-Key": ADMIN_KEY}
STAMPS_TOPIC = "omninode_bridge_stamps_v1"


def _ns(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _stamp_many(http: httpx.AsyncClient, namespaces: list[str], count: int, concurrency: int = 16) -> dict:
    """Stamp ``count`` distinct contents spread over ``namespaces``; returns expected totals per namespace."""
    gate = asyncio.Semaphore(concurrency)
    expected: dict[str, dict[str, Any]] = defaultdict(lambda: {"stamps": 0, "bytes": 0, "types": set()})

    async def one(i: int) -> None:
        namespace = namespaces[i % len(namespaces)]
        content, path = (f"<p>{i}</p>\n", f"p{i}.html") if i % 3 == 0 else (f"line {i}\n" + "x" * (i % 97), None)
        async with gate:
            response = await http.post("/stamp", json={"content": content, "namespace": namespace, "file_path": path})
        assert response.status_code == 201, response.text
        body = response.json()
        totals = expected[namespace]
        totals["stamps"] += 1
        totals["bytes"] += body["size_bytes"]
        totals["types"].add(body["content_type"])

    await asyncio.gather(*(one(i) for i in range(count)))
    return expected


async def _stats(http: httpx.AsyncClient, namespace: str) -> dict[str, Any] | None:
    response = await http.get(f"/namespaces/{namespace}/stats")
    return response.json() if response.status_code == 200 else None


async def _totals_match(http: httpx.AsyncClient, expected: dict) -> bool:
    for namespace, totals in expected.items():
        stats = await _stats(http, namespace)
        if stats is None or (stats["total_stamps"], stats["total_size_bytes"]) != (totals["stamps"], totals["bytes"]):
            return False
    return True


async def test_thousand_stamps_in_five_namespaces_counted_exactly_once(
    settings: Settings, stack: EmbeddedStack
) -> None:
    namespaces = [_ns(f"agg{i}") for i in range(5)]
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=60) as http:
        expected = await _stamp_many(http, namespaces, 1000)
        window_s = load_reducer_contract(contracts_dir(settings.server.contracts_dir)).aggregation.window.size_ms / 1000
        await wait_until(lambda: _totals_match(http, expected), timeout=window_s + 30, message="totals never matched")
        for namespace, totals in expected.items():
            stats = await _stats(http, namespace)
            assert stats is not None
            assert stats["total_stamps"] == 200
            assert stats["workflow_count"] == 200
            assert set(stats["unique_file_types"]) == totals["types"]
            assert len(stats["recent_workflow_ids"]) == 20

        # Deliver every STAMP_CREATED event of these namespaces a second time, as a relay re-send would.
        engine = create_async_engine(settings.database.url or "")
        try:
            async with engine.connect() as connection:
                rows = (
                    await connection.execute(
                        text("SELECT key, envelope FROM event_outbox WHERE topic = :topic"
                             " AND event_type = 'STAMP_CREATED'"
                             " AND convert_from(envelope, 'UTF8')::jsonb -> 'payload' ->> 'namespace' = ANY(:ns)"),
                        {"topic": STAMPS_TOPIC, "ns": namespaces},
                    )
                ).all()  # fmt: skip
        finally:
            await engine.dispose()
        assert len(rows) == 1000
        duplicates_before = items_total.labels(outcome="duplicate")._value.get()
        producer = AIOKafkaProducer(bootstrap_servers=stack.urls["kafka"], enable_idempotence=False)
        await producer.start()
        try:
            for key, envelope in rows:
                await producer.send(STAMPS_TOPIC, envelope, key=key.encode())
            await producer.flush()
        finally:
            await producer.stop()

        async def duplicates_seen() -> bool:
            return items_total.labels(outcome="duplicate")._value.get() - duplicates_before >= 1000

        await wait_until(duplicates_seen, timeout=window_s + 30, message="the re-sent events were not consumed")
        assert await _totals_match(http, expected)


async def test_contract_batch_window_and_recent_ids_drive_the_reducer(own_stack: EmbeddedStack, tmp_path: Path) -> None:
    def one_item_batches(aggregation: dict[str, Any]) -> None:
        aggregation["batch"]["size"] = 1
        aggregation["recent_workflow_ids"] = 3

    directory = contracts_copy(tmp_path, one_item_batches, file="reducer/subcontracts/aggregation.yaml")
    settings = make_settings(own_stack, server={"contracts_dir": str(directory)})
    namespace = _ns("batch1")
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=60) as http:
        expected = await _stamp_many(http, [namespace], 12, concurrency=1)
        await wait_until(lambda: _totals_match(http, expected), timeout=30)
        stats = await _stats(http, namespace)
        assert stats is not None
        assert stats["version"] == 12  # one upsert per event: batches of one
        assert len(stats["recent_workflow_ids"]) == 3

    def large_batches(aggregation: dict[str, Any]) -> None:
        aggregation["batch"]["size"] = 1000
        aggregation["window"]["size_ms"] = 1500

    directory = contracts_copy(tmp_path, large_batches, file="reducer/subcontracts/aggregation.yaml")
    settings = make_settings(own_stack, server={"contracts_dir": str(directory)})
    namespace = _ns("window")
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=60) as http:
        expected = await _stamp_many(http, [namespace], 12, concurrency=1)
        await wait_until(lambda: _totals_match(http, expected), timeout=30)
        stats = await _stats(http, namespace)
        assert stats is not None
        assert stats["version"] < 12  # the window gathered several events into each upsert
