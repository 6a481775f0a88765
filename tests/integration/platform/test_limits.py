"""Rate limits (429 + Retry-After + RateLimit-*) and the request body limit (413)."""

from __future__ import annotations

import asyncio
import json

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, app_client, clear_rate_limits, live_server, make_settings, wait_until


async def test_rate_limit_429_then_recovers(stack: EmbeddedStack) -> None:
    # The five requests and the refused sixth must all fall in one window: with 1.5 s, five requests that took
    # longer under load let the first slide out, and the sixth was admitted. Recovery is polled for.
    window = 5
    settings = make_settings(stack, security={"rate_limit_requests": 5, "rate_limit_window_seconds": window})
    headers = {"X-API-Key": ADMIN_KEY}
    async with app_client(settings) as client:
        await clear_rate_limits(stack)
        statuses = []
        for _ in range(5):
            response = await client.get("/admin/api-keys", headers=headers)
            statuses.append(response.status_code)
            assert int(response.headers["ratelimit-limit"]) == 5
        assert statuses == [200] * 5
        assert response.headers["ratelimit-remaining"] == "0"
        limited = await client.get("/admin/api-keys", headers=headers)
        assert limited.status_code == 429
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(limited.headers["retry-after"]) <= window
        assert limited.json()["type"] == "https://omninode.dev/problems/rate-limited"

        async def recovered() -> bool:
            return (await client.get("/admin/api-keys", headers=headers)).status_code == 200

        await wait_until(recovered, timeout=window + 10, interval=0.25, message="rate limit did not recover")
        # The window slides: recovery frees one request at a time, so the audit read gets a fresh budget.
        await clear_rate_limits(stack)
        audit = await client.get("/admin/audit", params={"action": "rate_limit.hit"}, headers=headers)
        assert audit.status_code == 200, audit.text
        assert audit.json()["items"], "the 429 was not audited"


async def test_unauthenticated_attempts_are_limited_per_ip(stack: EmbeddedStack) -> None:
    settings = make_settings(stack, security={"rate_limit_requests": 3, "rate_limit_window_seconds": 30})
    async with app_client(settings) as client:
        await clear_rate_limits(stack)
        codes = [
            (await client.get("/admin/api-keys", headers={"X-API-Key": f"onb_guess_{i:020d}"})).status_code
            for i in range(4)
        ]
        assert codes == [401, 401, 401, 429]
    await clear_rate_limits(stack)


async def test_body_over_limit_is_413_before_it_is_read(stack: EmbeddedStack) -> None:
    settings = make_settings(stack, server={"max_body_bytes": 64 * 1024})
    async with live_server(settings) as base:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        announced = 50 * 1024 * 1024
        writer.write(
            (
                f"POST /admin/api-keys HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {ADMIN_KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {announced}\r\n\r\n"
            ).encode()
            + b"{" * 1024
        )
        await writer.drain()
        # The answer arrives although only 1 KiB of the announced 50 MiB was sent.
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert head.startswith(b"HTTP/1.1 413"), head
        length_line = next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
        length = int(length_line.split(b":")[1])
        body = json.loads(await reader.readexactly(length))
        assert body["type"] == "https://omninode.dev/problems/payload-too-large"
        writer.close()
