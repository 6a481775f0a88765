"""Nodes against the real stack: TTL health with events, HTTP checks, semver discovery, blocking queries, tools."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import asyncpg
import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import app_client, live_server, make_settings, sql_rows, wait_until
from tests.integration.registry.conftest import HealthServer

H = {"X-API-Key": "onb_test_admin_key_0123456789abcdef"}


def _node(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"node_id": node_id, "name": fields.pop("name", f"svc-{node_id}"), "node_type": "service",
            "version": "1.0.0", "address": "127.0.0.1", "port": 8080, **fields}  # fmt: skip


async def _status(client: AsyncTestClient[Litestar], node_id: str) -> str | None:
    response = await client.get(f"/registry/nodes/{node_id}", headers=H)
    return response.json()["status"] if response.status_code == 200 else None


async def test_ttl_node_goes_critical_comes_back_and_is_deregistered(
    registry_client: AsyncTestClient[Litestar], stack: EmbeddedStack
) -> None:
    client = registry_client
    node_id = f"ttl-{uuid.uuid4().hex[:8]}"
    check = {"kind": "ttl", "ttl": 2, "deregister_critical_after": 3, "status": "passing"}
    first = await client.post("/registry/nodes", json=_node(node_id, check=check), headers=H)
    assert first.status_code == 201, first.text
    again = await client.post("/registry/nodes", json=_node(node_id, check=check), headers=H)
    assert again.status_code == 200  # idempotent by node_id
    name = first.json()["name"]

    async def passing_ids() -> list[str]:
        page = await client.get("/registry/nodes", params={"name": name, "status": "passing"}, headers=H)
        return [n["node_id"] for n in page.json()["items"]]

    assert await passing_ids() == [node_id]
    began = time.monotonic()
    await wait_until(lambda: _is(client, node_id, "critical"), timeout=6, message="TTL did not expire")
    # Within about one TTL (2 s) plus a checker tick, a round and a poll; all of them share this test's event loop
    # with the worker's other apps, so 1 s of slack (the bound was 3.0 s) was close under load. A check missed
    # for a whole TTL would still take 4 s.
    elapsed = time.monotonic() - began
    assert elapsed < 3.5, f"critical {elapsed:.2f} s after the registration's checks"
    assert await passing_ids() == []
    beat = await client.put(f"/registry/nodes/{node_id}/heartbeat", headers=H)
    assert beat.status_code == 200
    assert beat.json()["status"] == "passing"
    assert await passing_ids() == [node_id]
    await wait_until(lambda: _is(client, node_id, None), timeout=8, message="not deregistered")
    rows = await sql_rows(
        stack.urls["database_url"],
        "SELECT event_type FROM event_outbox WHERE topic = 'omninode_bridge_registry_v1' AND key = :k ORDER BY id",
        k=node_id,
    )
    assert [r[0] for r in rows] == [
        "NodeRegistered", "NodeStatusChanged", "NodeStatusChanged", "NodeStatusChanged", "NodeDeregistered",
    ]  # fmt: skip


async def _is(client: AsyncTestClient[Litestar], node_id: str, status: str | None) -> bool:
    return await _status(client, node_id) == status


async def test_http_check_goes_critical_with_output_and_runs_once_per_interval(
    registry_client: AsyncTestClient[Litestar], health_server: HealthServer, stack: EmbeddedStack
) -> None:
    client = registry_client
    # A second app on the same stack, with its own checker and Redis connection, as a second process has: the
    # checker's Redis lease must keep the two from both checking the node each interval.
    settings = make_settings(stack, registry={"allow_private_addresses": True, "checker_tick_seconds": 0.1})
    async with app_client(settings) as second:
        node_id = f"http-{uuid.uuid4().hex[:8]}"
        url = f"http://127.0.0.1:{health_server.port}/health"
        check = {"kind": "http", "http": url, "interval": 1, "timeout": 1}
        assert (await client.post("/registry/nodes", json=_node(node_id, port=health_server.port, check=check),
                                  headers=H)).status_code == 201  # fmt: skip
        # Up to a checker lease (5 s) may pass first: another app of this test process may hold it as it stops.
        await wait_until(lambda: _is(second, node_id, "passing"), timeout=15, message="HTTP check never passed")
        health_server.status = 500
        await wait_until(lambda: _is(client, node_id, "critical"), timeout=10, message="HTTP check never failed")
        node = (await second.get(f"/registry/nodes/{node_id}", headers=H)).json()
        assert "500" in node["output"]
        assert "database down" in node["output"]
        calls, began = health_server.calls, time.monotonic()
        await asyncio.sleep(3.2)  # measuring a rate over a window: the one place a test waits on the clock
        elapsed = time.monotonic() - began
        checked = health_server.calls - calls
        assert 1 <= checked <= int(elapsed / 1.0) + 1, f"{checked} checks in {elapsed:.1f} s by two apps"
        await client.delete(f"/registry/nodes/{node_id}", headers=H)


async def test_http_check_must_target_the_nodes_own_address(registry_client: AsyncTestClient[Litestar]) -> None:
    body = _node("http-elsewhere", address="10.0.0.5",
                 check={"kind": "http", "http": "http://169.254.169.254/latest", "interval": 1})  # fmt: skip
    response = await registry_client.post("/registry/nodes", json=body, headers=H)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "check.http"


async def test_capability_version_ranges(registry_client: AsyncTestClient[Litestar]) -> None:
    client = registry_client
    tag = uuid.uuid4().hex[:8]
    for version in ["1.2.0", "1.9.3", "2.0.0", "1.1.9"]:
        body = _node(f"cap-{tag}-{version}", tags=[tag], capabilities=[{"name": "stamping", "version": version}])
        assert (await client.post("/registry/nodes", json=body, headers=H)).status_code == 201
    page = await client.get("/registry/nodes", params={"capability": "stamping", "version": "^1.2", "tag": tag},
                            headers=H)  # fmt: skip
    assert sorted(n["capabilities"][0]["version"] for n in page.json()["items"]) == ["1.2.0", "1.9.3"]
    bad = await client.get("/registry/nodes", params={"capability": "stamping", "version": "latest"}, headers=H)
    assert bad.status_code == 422
    caps = (await client.get("/registry/capabilities", headers=H)).json()
    stamping = next(c for c in caps if c["name"] == "stamping")
    assert {"1.2.0", "1.9.3", "2.0.0", "1.1.9"} <= set(stamping["versions"])
    small = await client.get("/registry/nodes", params={"tag": tag, "limit": 3}, headers=H)
    rest = await client.get("/registry/nodes", params={"tag": tag, "cursor": small.json()["next_cursor"]}, headers=H)
    assert len(small.json()["items"]) == 3
    assert len(rest.json()["items"]) == 1


async def test_blocking_query_wakes_on_its_change_only(stack: EmbeddedStack) -> None:
    # A served app: the in-process test client handles one request at a time, a held one would block the rest.
    settings = make_settings(stack, registry={"allow_private_addresses": True})
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, headers=H, timeout=10) as client:
        name = f"blocking-{uuid.uuid4().hex[:8]}"
        assert (await client.post("/registry/nodes", json=_node(f"{name}-a", name=name))).status_code == 201
        first = await client.get("/registry/nodes", params={"name": name})
        index = int(first.headers["X-Consul-Index"])
        held = asyncio.create_task(client.get("/registry/nodes", params={"name": name, "index": index, "wait": "5s"}))
        await asyncio.sleep(0.3)  # the request must be held: an unrelated change must not release it
        assert (await client.post("/registry/nodes", json=_node(f"other-{uuid.uuid4().hex[:8]}"))).status_code == 201
        await asyncio.sleep(0.5)
        assert not held.done()
        assert (await client.post("/registry/nodes", json=_node(f"{name}-b", name=name))).status_code == 201
        changed_at = time.monotonic()  # the change is committed and announced once the POST has answered
        response = await held
        # Woken by the change, not by the 5 s wait running out (under the suite's load a wake-up took up to 0.16 s).
        assert time.monotonic() - changed_at < 1.0
        assert int(response.headers["X-Consul-Index"]) > index
        assert len(response.json()["items"]) == 2


async def test_tool_search_finds_tools_of_healthy_providers(registry_client: AsyncTestClient[Litestar]) -> None:
    client = registry_client
    node_id = f"mcp-{uuid.uuid4().hex[:8]}"
    word = f"zebra{uuid.uuid4().hex[:6]}"
    tools = [{"name": "stamp_file", "description": f"Stamps a file with a {word} signature",
              "inputSchema": {"type": "object"}}]  # fmt: skip
    body = _node(node_id, node_type="mcp_server", tools=tools,
                 check={"kind": "ttl", "ttl": 60, "status": "passing"})  # fmt: skip
    assert (await client.post("/registry/nodes", json=body, headers=H)).status_code == 201
    hits = (await client.get("/registry/tools", params={"q": f"{word} signature"}, headers=H)).json()["items"]
    assert [(h["name"], h["node_id"]) for h in hits] == [("stamp_file", node_id)]
    failed = await client.put(f"/registry/nodes/{node_id}/heartbeat", json={"status": "critical", "output": "x"},
                              headers=H)  # fmt: skip
    assert failed.json()["status"] == "critical"
    assert (await client.get("/registry/tools", params={"q": word}, headers=H)).json()["items"] == []
    assert (
        len((await client.get("/registry/tools", params={"q": word, "status": "any"}, headers=H)).json()["items"]) == 1
    )


async def test_a_registered_ttl_node_is_never_seen_without_its_heartbeat(
    registry_client: AsyncTestClient[Litestar], stack: EmbeddedStack
) -> None:
    """What the elected checker reads in a round: a TTL node's row, then its Redis key. A row seen without its
    key is marked critical, so the key must exist before the row is committed (it once came just after, and a
    checker round in between turned a just-registered node critical)."""
    tag = uuid.uuid4().hex[:8]
    registering, unbeaten = threading.Event(), set[str]()
    registering.set()

    async def look() -> None:  # in a thread of its own, as the checker of another process runs in parallel
        redis = Redis.from_url(stack.urls["redis_url"])
        conn = await asyncpg.connect(stack.urls["database_url"].replace("postgresql+asyncpg://", "postgresql://"))
        try:
            while registering.is_set():
                rows = await conn.fetch("SELECT node_id FROM node_registrations WHERE node_id LIKE $1 AND "
                                        "deleted_at IS NULL", f"race-{tag}-%")  # fmt: skip
                ids = [r["node_id"] for r in rows]
                present = await redis.mget([f"registry:ttl:{i}" for i in ids]) if ids else []
                unbeaten.update(i for i, value in zip(ids, present, strict=True) if value is None)
        finally:
            await conn.close()
            await redis.aclose()

    looking = threading.Thread(target=asyncio.run, args=(look(),))
    looking.start()
    try:
        for n in range(40):
            body = _node(f"race-{tag}-{n}", check={"kind": "ttl", "ttl": 60, "status": "passing"})
            assert (await registry_client.post("/registry/nodes", json=body, headers=H)).status_code == 201
    finally:
        registering.clear()
        await asyncio.to_thread(looking.join)
    assert not unbeaten
    for n in range(40):
        assert await _status(registry_client, f"race-{tag}-{n}") == "passing"
        await registry_client.delete(f"/registry/nodes/race-{tag}-{n}", headers=H)


async def test_the_app_registers_itself_and_stays_passing(registry_client: AsyncTestClient[Litestar]) -> None:
    async def registered() -> bool:
        page = await registry_client.get("/registry/nodes", params={"name": "omninode-bridge", "status": "passing"},
                                         headers=H)  # fmt: skip
        return any(n["capabilities"] == [{"name": "registry", "version": "1.0.0"}] for n in page.json()["items"])

    await wait_until(registered, timeout=10, message="the app did not register itself")
