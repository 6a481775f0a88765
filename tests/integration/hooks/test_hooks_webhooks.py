"""Third-party webhooks: Standard Webhooks and GitHub signatures, sources CRUD, idempotency by webhook-id."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from typing import Any

import blake3
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks import Webhook

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, wait_until
from tests.support.kafka_helpers import read_topic

HEADERS = {"X-API-Key": ADMIN_KEY}
HOOK_TOPIC = "omninode_bridge_hook_events_v1"

Client = AsyncTestClient[Litestar]


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def _source(client: Client, **fields: Any) -> str:
    name = f"src-{uuid.uuid4().hex[:10]}"
    response = await client.post("/hooks/sources", json={"name": name, **fields}, headers=HEADERS)
    assert response.status_code == 201, response.text
    assert "secrets" not in response.json()
    return name


def _signed(secret: str, body: bytes, *, msg_id: str | None = None, when: dt.datetime | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or dt.datetime.now(dt.UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def _count(database_url: str, query: str, **params: Any) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(query), params)).scalar_one())
    finally:
        await engine.dispose()


async def test_standard_webhooks_signatures(client: Client, stack: EmbeddedStack) -> None:
    secret = _secret()
    name = await _source(client, scheme="standard_webhooks", secrets=[secret], event_type_path="type")
    body = json.dumps({"type": "invoice.paid", "data": {"amount": 42, "token": "tok_secret"}}).encode()

    accepted = await client.post(f"/hooks/{name}", content=body, headers=_signed(secret, body))
    assert accepted.status_code == 202, accepted.text
    stored = (await client.get(f"/hooks/events/{accepted.json()['event_id']}", headers=HEADERS)).json()
    assert stored["kind"] == "webhook"
    assert stored["event_type"] == "invoice.paid"
    assert stored["body_hash"] == blake3.blake3(body).hexdigest()
    assert stored["data"]["data"] == {"amount": 42, "token": "[REDACTED]"}

    tampered = body.replace(b"42", b"43")
    assert (await client.post(f"/hooks/{name}", content=tampered, headers=_signed(secret, body))).status_code == 401
    wrong = await client.post(f"/hooks/{name}", content=body, headers=_signed(_secret(), body))
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "https://omninode.dev/problems/invalid-signature"
    stale = _signed(secret, body, when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    stale_response = await client.post(f"/hooks/{name}", content=body, headers=stale)
    assert stale_response.status_code == 401
    assert "too old" in stale_response.json()["detail"]
    unsigned = await client.post(f"/hooks/{name}", content=body, headers={"content-type": "application/json"})
    assert unsigned.status_code == 401

    audit = (await client.get("/admin/audit", params={"action": "hooks.webhook.rejected"}, headers=HEADERS)).json()
    reasons = [i["detail"]["reason"] for i in audit["items"] if i["detail"].get("source") == name]
    assert len(reasons) == 4
    assert any("too old" in r for r in reasons)


async def test_raw_body_is_stored_when_nothing_was_redacted(client: Client, stack: EmbeddedStack) -> None:
    secret = _secret()
    name = await _source(client, scheme="standard_webhooks", secrets=[secret], event_type_header="X-Event-Kind")
    body = b'{"zeta": 1,  "alpha": [1, 2]}'  # odd spacing: what is verified and stored is the raw body
    response = await client.post(
        f"/hooks/{name}", content=body, headers={**_signed(secret, body), "X-Event-Kind": "ping"}
    )
    assert response.status_code == 202
    event_id = uuid.UUID(response.json()["event_id"])
    stored = (await client.get(f"/hooks/events/{event_id}", headers=HEADERS)).json()
    assert stored["event_type"] == "ping"
    assert stored["redacted"] is False
    raw = await _count(
        stack.urls["database_url"], "SELECT count(*) FROM hook_events WHERE event_id = :e AND raw_body = :b",
        e=event_id, b=body,
    )  # fmt: skip
    assert raw == 1


async def test_secret_rotation_with_two_signatures(client: Client) -> None:
    old, new = _secret(), _secret()
    name = await _source(client, scheme="standard_webhooks", secrets=[old])
    body = b'{"type": "rotated"}'
    headers = _signed(old, body)
    # The sender signs with both secrets during the rotation: space-separated signatures.
    new_signature = _signed(new, body, msg_id=headers["webhook-id"])["webhook-signature"]
    headers["webhook-signature"] = f"{new_signature} {headers['webhook-signature']}"
    assert (await client.post(f"/hooks/{name}", content=body, headers=headers)).status_code == 202

    # The receiver moves to the new secret; the same dual-signed style still verifies.
    updated = await client.patch(f"/hooks/sources/{name}", json={"secrets": [new]}, headers=HEADERS)
    assert updated.status_code == 200
    assert updated.json()["secret_count"] == 1
    body2 = b'{"type": "rotated", "n": 2}'
    headers2 = _signed(old, body2)
    headers2["webhook-signature"] += " " + _signed(new, body2, msg_id=headers2["webhook-id"])["webhook-signature"]
    assert (await client.post(f"/hooks/{name}", content=body2, headers=headers2)).status_code == 202
    # Only the old secret's signature: refused now.
    assert (await client.post(f"/hooks/{name}", content=body2, headers=_signed(old, body2))).status_code == 401


async def test_same_webhook_five_times_is_one_row_and_one_event(client: Client, stack: EmbeddedStack) -> None:
    secret = _secret()
    name = await _source(client, scheme="standard_webhooks", secrets=[secret])
    body = json.dumps({"type": "order.created", "id": str(uuid.uuid4())}).encode()
    headers = _signed(secret, body, msg_id=f"msg_{uuid.uuid4().hex}")
    responses = [await client.post(f"/hooks/{name}", content=body, headers=headers) for _ in range(5)]
    assert [r.status_code for r in responses] == [202, 200, 200, 200, 200]
    event_ids = {r.json()["event_id"] for r in responses}
    assert len(event_ids) == 1
    (event_id,) = event_ids
    url = stack.urls["database_url"]
    assert await _count(url, "SELECT count(*) FROM hook_events WHERE source = :s", s=name) == 1
    assert await _count(url, "SELECT count(*) FROM event_outbox WHERE event_id = :e", e=uuid.UUID(event_id)) == 1

    async def processed() -> bool:
        response = await client.get(f"/hooks/events/{event_id}", headers=HEADERS)
        return response.json()["status"] == "processed"

    await wait_until(processed, timeout=60, interval=0.2, message="the webhook was not processed")
    records = await read_topic(
        stack.urls["kafka"], HOOK_TOPIC, expect=1, timeout=30,
        match=lambda r: dict(r.headers).get("event_id") == event_id.encode(),
    )  # fmt: skip
    assert len(records) == 1


async def test_github_signature_and_delivery_id(client: Client) -> None:
    secret = secrets.token_hex(16)
    name = await _source(client, scheme="github", secrets=[secret], event_type_header="X-GitHub-Event")
    body = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "octocat"}}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
               "content-type": "application/json"}  # fmt: skip
    first = await client.post(f"/hooks/{name}", content=body, headers=headers)
    assert first.status_code == 202
    assert (await client.post(f"/hooks/{name}", content=body, headers=headers)).status_code == 200
    stored = (await client.get(f"/hooks/events/{first.json()['event_id']}", headers=HEADERS)).json()
    assert stored["event_type"] == "push"
    bad = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": str(uuid.uuid4())}
    assert (await client.post(f"/hooks/{name}", content=body, headers=bad)).status_code == 401


async def test_unsigned_sources_need_an_api_key(client: Client) -> None:
    name = await _source(client, scheme="none", default_event_type="heartbeat")
    body = b'{"ok": true}'
    assert (await client.post(f"/hooks/{name}", content=body)).status_code == 401
    accepted = await client.post(f"/hooks/{name}", content=body, headers=HEADERS)
    assert accepted.status_code == 202
    stored = (await client.get(f"/hooks/events/{accepted.json()['event_id']}", headers=HEADERS)).json()
    assert stored["event_type"] == "heartbeat"


async def test_sources_crud_is_admin_only_and_validated(client: Client) -> None:
    assert (await client.post("/hooks/no-such-source", content=b"{}")).status_code == 404
    reserved = await client.post("/hooks/sources", json={"name": "batch", "scheme": "none"}, headers=HEADERS)
    assert reserved.status_code == 422
    no_secret = await client.post("/hooks/sources", json={"name": "x-nosecret", "scheme": "github"}, headers=HEADERS)
    assert no_secret.status_code == 422
    name = await _source(client, scheme="none")
    assert (
        await client.post("/hooks/sources", json={"name": name, "scheme": "none"}, headers=HEADERS)
    ).status_code == 409
    listed = (await client.get("/hooks/sources", headers=HEADERS)).json()
    assert name in [s["name"] for s in listed]
    disabled = await client.patch(f"/hooks/sources/{name}", json={"enabled": False}, headers=HEADERS)
    assert disabled.json()["enabled"] is False
    assert (await client.post(f"/hooks/{name}", content=b"{}", headers=HEADERS)).status_code == 404
    hooks_key = await client.post("/admin/api-keys", json={"name": "hooks-only", "scopes": ["hooks"]}, headers=HEADERS)
    assert (await client.get("/hooks/sources", headers={"X-API-Key": hooks_key.json()["key"]})).status_code == 403
    assert (await client.delete(f"/hooks/sources/{name}", headers=HEADERS)).status_code == 204
    assert (await client.get(f"/hooks/sources/{name}", headers=HEADERS)).status_code == 404
    audit = (await client.get("/admin/audit", params={"action": "hooks.source.deleted"}, headers=HEADERS)).json()
    assert any(i["detail"]["source"] == name for i in audit["items"])
