"""Issue 11, defects 8 and 11: secrets found by value shape, replayed GitHub deliveries and form-encoded bodies."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, sql_rows

HEADERS = {"X-API-Key": ADMIN_KEY}
Client = AsyncTestClient[Litestar]


def _token() -> str:
    return "ghp_" + secrets.token_hex(18)  # 36 characters, as GitHub's classic tokens


async def _source(client: Client, **fields: Any) -> str:
    name = f"src-{uuid.uuid4().hex[:10]}"
    response = await client.post("/hooks/sources", json={"name": name, **fields}, headers=HEADERS)
    assert response.status_code == 201, response.text
    return name


def _github(secret: str, body: bytes, content_type: str) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
            "content-type": content_type}  # fmt: skip


async def test_d08_token_in_a_command_is_redacted_when_stored_published_and_queried(
    client: Client, stack: EmbeddedStack
) -> None:
    token = _token()
    hook = {
        "source": "claude-code",
        "event_type": "PostToolUse",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        "tool_name": "Bash",
        "data": {
            "tool_input": {"command": f"export GITHUB_TOKEN={token} && gh pr list"},
            "tool_response": {"stdout": "#12 Fix flaky test", "stderr": ""},
        },
    }
    accepted = await client.post("/hooks", json=hook, headers=HEADERS)
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]

    shown = (await client.get(f"/hooks/events/{event_id}", headers=HEADERS)).json()
    assert shown["data"]["tool_input"]["command"] == "export GITHUB_TOKEN=[REDACTED] && gh pr list"
    assert shown["data"]["tool_response"]["stdout"] == "#12 Fix flaky test"
    assert shown["redacted"] is True

    url = stack.urls["database_url"]
    (stored,) = await sql_rows(
        url, "SELECT data::text, raw_body FROM hook_events WHERE event_id = :e", e=uuid.UUID(event_id)
    )
    assert token not in stored[0]
    assert stored[1] is None
    (staged,) = await sql_rows(url, "SELECT envelope FROM event_outbox WHERE event_id = :e", e=uuid.UUID(event_id))
    envelope = bytes(staged[0])
    assert token.encode() not in envelope
    assert b"export GITHUB_TOKEN=[REDACTED] && gh pr list" in envelope


async def test_d08_webhook_body_with_a_secret_by_value_is_not_stored_raw(client: Client, stack: EmbeddedStack) -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    name = await _source(client, scheme="standard_webhooks", secrets=[secret])
    token = _token()
    body = json.dumps({"type": "build", "log": f"cloning https://x:{token}@github.com/o/r"}).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = dt.datetime.now(dt.UTC)
    headers = {
        "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()), "content-type": "application/json",
    }  # fmt: skip
    accepted = await client.post(f"/hooks/{name}", content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    shown = (await client.get(f"/hooks/events/{accepted.json()['event_id']}", headers=HEADERS)).json()
    assert shown["data"]["log"] == "cloning https://x:[REDACTED]@github.com/o/r"
    rows = await sql_rows(stack.urls["database_url"], "SELECT raw_body FROM hook_events WHERE source = :s", s=name)
    assert rows == [(None,)]


async def test_d11_github_delivery_replayed_with_a_new_delivery_id_is_a_duplicate(
    client: Client, stack: EmbeddedStack
) -> None:
    secret = secrets.token_hex(16)
    name = await _source(client, scheme="github", secrets=[secret], event_type_header="X-GitHub-Event")
    body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex}).encode()
    first = await client.post(f"/hooks/{name}", content=body, headers=_github(secret, body, "application/json"))
    assert first.status_code == 202, first.text
    # A captured delivery, resent with a fresh (unsigned) X-GitHub-Delivery and Idempotency-Key.
    replay_headers = {**_github(secret, body, "application/json"), "Idempotency-Key": str(uuid.uuid4())}
    replayed = await client.post(f"/hooks/{name}", content=body, headers=replay_headers)
    assert replayed.status_code == 200
    assert replayed.json()["status"] == "duplicate"
    assert replayed.json()["event_id"] == first.json()["event_id"]
    rows = await sql_rows(stack.urls["database_url"], "SELECT count(*) FROM hook_events WHERE source = :s", s=name)
    assert rows == [(1,)]
    # Another body is another delivery.
    other = body.replace(b"main", b"dev")
    assert (await client.post(f"/hooks/{name}", content=other, headers=_github(secret, other, "application/json"))
            ).status_code == 202  # fmt: skip


async def test_d11_form_encoded_github_delivery_is_parsed_and_redacted(client: Client, stack: EmbeddedStack) -> None:
    secret = secrets.token_hex(16)
    name = await _source(client, scheme="github", secrets=[secret], event_type_header="X-GitHub-Event")
    token = _token()
    payload = {"ref": "refs/heads/main", "head_commit": {"message": f"oops, committed {token}"}, "hook": {"id": 7}}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    accepted = await client.post(
        f"/hooks/{name}", content=body, headers=_github(secret, body, "application/x-www-form-urlencoded")
    )
    assert accepted.status_code == 202, accepted.text
    shown = (await client.get(f"/hooks/events/{accepted.json()['event_id']}", headers=HEADERS)).json()
    assert shown["event_type"] == "push"
    assert shown["data"] == {**payload, "head_commit": {"message": "oops, committed [REDACTED]"}}
    assert shown["redacted"] is True
    rows = await sql_rows(
        stack.urls["database_url"], "SELECT raw_body, data::text FROM hook_events WHERE source = :s", s=name
    )
    assert len(rows) == 1
    assert rows[0][0] is None
    assert token not in rows[0][1]

    # Without a secret in it, a form delivery is stored raw (as a JSON one) and still parsed.
    clean = urlencode({"payload": json.dumps({"zen": "Keep it logically awesome."})}).encode()
    kept = await client.post(
        f"/hooks/{name}", content=clean, headers=_github(secret, clean, "application/x-www-form-urlencoded")
    )
    assert kept.status_code == 202
    shown = (await client.get(f"/hooks/events/{kept.json()['event_id']}", headers=HEADERS)).json()
    assert shown["data"] == {"zen": "Keep it logically awesome."}
    raw = await sql_rows(
        stack.urls["database_url"], "SELECT raw_body FROM hook_events WHERE event_id = :e",
        e=uuid.UUID(kept.json()["event_id"]),
    )  # fmt: skip
    assert bytes(raw[0][0]) == clean


async def test_d11_unparsed_text_body_with_a_secret_is_redacted(client: Client, stack: EmbeddedStack) -> None:
    name = await _source(client, scheme="none", default_event_type="log")
    token = _token()
    body = f"deploy ok; GITHUB_TOKEN={token}".encode()
    accepted = await client.post(f"/hooks/{name}", content=body, headers={**HEADERS, "content-type": "text/plain"})
    assert accepted.status_code == 202, accepted.text
    shown = (await client.get(f"/hooks/events/{accepted.json()['event_id']}", headers=HEADERS)).json()
    assert shown["data"] == {"body": "deploy ok; GITHUB_TOKEN=[REDACTED]"}
    rows = await sql_rows(stack.urls["database_url"], "SELECT raw_body FROM hook_events WHERE source = :s", s=name)
    assert rows == [(None,)]
