"""API keys: both headers, hashing at rest, revocation, rotation, scopes, namespaces, audit."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.core.db import Database
from omninode_bridge.platform import ApiKeyService, parse_key_specs
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY

Client = AsyncTestClient[Litestar]


async def _create_key(client: Client, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = await client.post("/admin/api-keys", json={"name": "k", "scopes": ["admin"], **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_missing_key_is_401_problem_details(client: Client) -> None:
    response = await client.get("/admin/api-keys", headers={"X-Correlation-ID": "corr-401"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == "https://omninode.dev/problems/unauthorized"
    assert body["title"] == "Unauthorized"
    assert body["status"] == 401
    assert "X-API-Key" in body["detail"]
    assert body["correlation_id"] == "corr-401"
    assert response.headers["x-correlation-id"] == "corr-401"


async def test_both_headers_accepted(client: Client) -> None:
    assert (await client.get("/admin/api-keys", headers={"X-API-Key": ADMIN_KEY})).status_code == 200
    bearer = await client.get("/admin/api-keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert bearer.status_code == 200


async def test_wrong_key_is_401(client: Client) -> None:
    response = await client.get("/admin/api-keys", headers={"X-API-Key": "onb_not_a_real_key_at_all"})
    assert response.status_code == 401
    assert response.json()["detail"] == "The API key is invalid, expired or revoked."


async def test_created_key_shown_once_and_stored_hashed(
    client: Client, admin_headers: dict[str, str], settings: Settings
) -> None:
    created = await _create_key(client, admin_headers, name="hashed")
    key = str(created["key"])
    listed = (await client.get("/admin/api-keys", headers=admin_headers)).json()
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine
    assert mine["prefix"] == key[:12]
    engine = create_async_engine(settings.database.url or "")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT key_hash FROM platform_api_keys WHERE id = :id"), {"id": created["id"]})
        ).all()
        dump = (await conn.execute(text("SELECT string_agg(t::text, '') FROM platform_api_keys t"))).scalar_one()
    await engine.dispose()
    assert rows[0][0] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in dump


async def test_revoked_key_is_401(client: Client, admin_headers: dict[str, str]) -> None:
    created = await _create_key(client, admin_headers, name="to-revoke")
    own = {"X-API-Key": str(created["key"])}
    assert (await client.get("/admin/api-keys", headers=own)).status_code == 200
    revoked = await client.delete(f"/admin/api-keys/{created['id']}", headers=admin_headers)
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    assert (await client.get("/admin/api-keys", headers=own)).status_code == 401


async def test_rotation_both_keys_work_during_overlap(client: Client, admin_headers: dict[str, str]) -> None:
    old = await _create_key(client, admin_headers, name="svc-v1")
    new = await _create_key(client, admin_headers, name="svc-v2")
    for key in (old, new):
        assert (await client.get("/admin/api-keys", headers={"X-API-Key": str(key["key"])})).status_code == 200
    await client.delete(f"/admin/api-keys/{old['id']}", headers=admin_headers)
    assert (await client.get("/admin/api-keys", headers={"X-API-Key": str(old["key"])})).status_code == 401
    assert (await client.get("/admin/api-keys", headers={"X-API-Key": str(new["key"])})).status_code == 200


async def test_scope_without_admin_is_403_and_audited(client: Client, admin_headers: dict[str, str]) -> None:
    created = await _create_key(client, admin_headers, name="hooks-only", scopes=["hooks"], namespaces=["team-a"])
    assert created["namespaces"] == ["team-a"]
    response = await client.get("/admin/api-keys", headers={"X-API-Key": str(created["key"])})
    assert response.status_code == 403
    assert response.json()["type"] == "https://omninode.dev/problems/forbidden"
    audit = await client.get("/admin/audit", params={"action": "auth.forbidden"}, headers=admin_headers)
    assert any(e["key_id"] == created["id"] for e in audit.json()["items"])


async def test_auth_failures_and_admin_actions_are_audited(client: Client, admin_headers: dict[str, str]) -> None:
    await client.get(
        "/admin/audit", headers={"X-API-Key": "onb_wrong_wrong_wrong_wrong", "X-Correlation-ID": "audit-me"}
    )
    created = await _create_key(client, admin_headers, name="audited")
    await client.delete(f"/admin/api-keys/{created['id']}", headers=admin_headers)
    failed = (await client.get("/admin/audit", params={"action": "auth.failed"}, headers=admin_headers)).json()
    assert any(e["correlation_id"] == "audit-me" and e["outcome"] == "denied" for e in failed["items"])
    for action in ("api_key.created", "api_key.revoked"):
        items = (await client.get("/admin/audit", params={"action": action}, headers=admin_headers)).json()["items"]
        assert any(e["detail"].get("api_key_id") == created["id"] for e in items), action


async def test_audit_is_cursor_paginated(client: Client, admin_headers: dict[str, str]) -> None:
    for _ in range(3):
        await client.get("/admin/audit", headers={"X-API-Key": "onb_nope_nope_nope_nope"})
    first = (await client.get("/admin/audit", params={"limit": 2}, headers=admin_headers)).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = (
        await client.get("/admin/audit", params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin_headers)
    ).json()
    assert second["items"][0]["id"] < first["items"][-1]["id"]
    bad = await client.get("/admin/audit", params={"cursor": "x"}, headers=admin_headers)
    assert bad.status_code == 422


async def test_invalid_body_names_the_field(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post("/admin/api-keys", json={"name": "x", "scopes": []}, headers=admin_headers)
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "scopes"
    assert "scopes" in body["detail"]


async def test_processes_starting_at_once_seed_each_key_once(database: Database) -> None:
    """Two app processes seed ``OMNINODE_API_KEYS`` at the same moment: both start, the key is stored once."""
    specs = parse_key_specs(f"racer:onb_seed_race_{uuid.uuid4().hex}:admin")

    async def seed() -> int:
        async with database.unit_of_work() as uow:
            return await ApiKeyService(uow).seed(specs)

    assert sorted(await asyncio.gather(seed(), seed())) == [0, 1]
    async with database.unit_of_work() as uow:
        query = text("SELECT count(*) FROM platform_api_keys WHERE name = 'racer' AND prefix = :p")
        stored = await uow.session.scalar(query, {"p": specs[0].key[:12]})
    assert stored == 1
