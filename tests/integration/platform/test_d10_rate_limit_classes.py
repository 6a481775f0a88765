"""Issue 11 defect 10: rate limits by class (probes exempt, webhooks per source, XFF from trusted proxies)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import secrets
import uuid
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from omninode_bridge.app import create_app
from omninode_bridge.embedded import EmbeddedStack, free_port
from tests.integration.conftest import ADMIN_KEY, app_client, clear_rate_limits, make_settings, wait_until

HEADERS = {"X-API-Key": ADMIN_KEY}
Client = AsyncTestClient[Litestar]


async def _signed_source(client: Client) -> tuple[str, str]:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    name = f"rl-{uuid.uuid4().hex[:10]}"
    created = await client.post(
        "/hooks/sources", json={"name": name, "scheme": "standard_webhooks", "secrets": [secret]}, headers=HEADERS
    )
    assert created.status_code == 201, created.text
    return name, secret


async def _deliver(client: Client, name: str, secret: str) -> httpx.Response:
    body = json.dumps({"type": "ping", "n": uuid.uuid4().hex}).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = dt.datetime.now(dt.UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
        "content-type": "application/json",
    }
    return await client.post(f"/hooks/{name}", content=body, headers=headers)


def _limited(stack: EmbeddedStack, **security: Any) -> Any:
    return make_settings(stack, security={"rate_limit_window_seconds": 60, **security})


async def test_d10_health_probes_do_not_use_up_the_ip_bucket(stack: EmbeddedStack) -> None:
    settings = _limited(stack, rate_limit_requests=5, rate_limit_webhook_requests=5)
    async with app_client(settings) as client:
        await clear_rate_limits(stack)  # the admin key's bucket too: other tests used it
        name, secret = await _signed_source(client)
        await clear_rate_limits(stack)
        for path in ("/health/live", "/health/ready", "/metrics"):
            assert (await client.get(path)).status_code == 200
        probes = [(await client.get("/health/live")).status_code for _ in range(1200)]
        assert set(probes) == {200}
        live = await client.get("/health/live")
        assert live.status_code == 200
        assert "ratelimit-limit" not in live.headers  # exempt: not counted, so no budget to report
        delivered = await _deliver(client, name, secret)
        assert delivered.status_code == 202, delivered.text
        # The per-IP bucket of unauthenticated requests is untouched by the probes and the webhook.
        denied = await client.get("/admin/api-keys")
        assert denied.status_code == 401
        assert denied.headers["ratelimit-remaining"] == "4"
    await clear_rate_limits(stack)


async def test_d10_webhook_source_has_its_own_bucket(stack: EmbeddedStack) -> None:
    settings = _limited(stack, rate_limit_requests=3, rate_limit_webhook_requests=4)
    async with app_client(settings) as client:
        await clear_rate_limits(stack)  # the admin key's bucket too: other tests used it
        first, first_secret = await _signed_source(client)
        second, second_secret = await _signed_source(client)
        await clear_rate_limits(stack)
        codes = [(await _deliver(client, first, first_secret)).status_code for _ in range(5)]
        assert codes == [202, 202, 202, 202, 429]
        other = await _deliver(client, second, second_secret)
        assert other.status_code == 202, "another source must not share the first one's bucket"
        assert other.headers["ratelimit-limit"] == "4"
        # Unauthenticated failures from the same IP have their own (per-IP) bucket and limit.
        failures = [(await client.get("/admin/api-keys")).status_code for _ in range(4)]
        assert failures == [401, 401, 401, 429]
        assert (await _deliver(client, second, second_secret)).status_code == 202
    await clear_rate_limits(stack)


@contextlib.asynccontextmanager
async def _served(settings: Any) -> Any:
    """The app under uvicorn as `serve` and `dev` run it: uvicorn's own X-Forwarded-For handling off."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False,
                            proxy_headers=False)  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def up() -> bool:
        return server.started

    try:
        await wait_until(up, timeout=20, message="server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _failures(base: str, forwarded_for: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base) as http:
        return [
            (await http.get("/admin/api-keys", headers={"X-Forwarded-For": forwarded_for})).status_code
            for _ in range(count)
        ]


@pytest.mark.parametrize(("trusted", "shared"), [("127.0.0.0/8", False), ("", True), ("10.1.2.3", True)])
async def test_d10_forwarded_for_honoured_only_from_trusted_proxies(
    stack: EmbeddedStack, trusted: str, shared: bool
) -> None:
    settings = _limited(stack, rate_limit_requests=3, trusted_proxies=trusted)
    async with _served(settings) as base:
        await clear_rate_limits(stack)
        assert await _failures(base, "198.51.100.7", 4) == [401, 401, 401, 429]
        # Another client behind the proxy: its own bucket only if the proxy (our loopback peer) is trusted.
        other = await _failures(base, "203.0.113.9", 1)
        assert other == ([429] if shared else [401])
    await clear_rate_limits(stack)
