"""The live view: SSE stream (filters, tickets, Last-Event-ID resumption) and the /hooks/live page in a real
headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from playwright.async_api import async_playwright
from redis.asyncio import Redis

from omninode_bridge.core.db import Database
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.modules.hooks.services import LIVE_STREAM, LiveFeed, StreamFilter, sse_events
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, live_server, wait_until
from tests.support.live_views import CHROMIUM, CHROMIUM_ARGS, require_chromium, sse_messages

HEADERS = {"X-API-Key": ADMIN_KEY}


async def _take(response: httpx.Response, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for message in sse_messages(response):
            out.append({"id": message["id"], **json.loads(message["data"])})
            if len(out) == count:
                return out
    return out


@contextlib.asynccontextmanager
async def _stream(http: httpx.AsyncClient, **params: str) -> AsyncIterator[httpx.Response]:
    headers = dict(HEADERS)
    if "last_event_id" in params:
        headers["Last-Event-ID"] = params.pop("last_event_id")
    async with http.stream("GET", "/hooks/stream", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield response


async def _post(http: httpx.AsyncClient, source: str, n: int, **fields: Any) -> str:
    response = await http.post("/hooks", json={"source": source, "event_type": "tick", "data": {"n": n}, **fields},
                               headers=HEADERS)  # fmt: skip
    assert response.status_code == 202, response.text
    return response.json()["event_id"]


async def test_stream_filters_and_resumes_after_last_event_id(settings: Settings, stack: EmbeddedStack) -> None:
    source = f"live-{uuid.uuid4().hex[:8]}"
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with _stream(http, source=source) as response:
            await _post(http, "someone-else", 0)
            first = await _post(http, source, 1, data={"n": 1, "api_key": "must-not-show"})
            (seen,) = await _take(response, 1)
        assert seen["event_id"] == first
        assert seen["data"] == {"n": 1, "api_key": "[REDACTED]"}
        # Missed while disconnected: delivered on reconnect with Last-Event-ID.
        missed = [await _post(http, source, n) for n in (2, 3)]
        async with _stream(http, source=source, last_event_id=seen["id"]) as response:
            resumed = await _take(response, 2)
        assert [e["event_id"] for e in resumed] == missed

        # The live buffer is gone (Redis restarted empty): the gap comes from the database.
        redis = Redis.from_url(stack.urls["redis_url"])
        await redis.delete("hooks:live")
        await redis.aclose()
        async with _stream(http, source=source, last_event_id=seen["id"]) as response:
            from_db = await _take(response, 2)
        assert [e["event_id"] for e in from_db] == missed


async def test_a_new_viewer_sees_a_hook_stored_before_its_stream_was_first_read(
    client: AsyncTestClient[Litestar], database: Database, stack: EmbeddedStack
) -> None:
    """The viewer's starting point is fixed when its response is made, not when the stream is first read: a hook
    stored in between (the client already had its 200) is delivered."""
    source = f"start-{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(stack.urls["redis_url"])
    try:
        messages = await sse_events(LiveFeed(redis, redis, maxlen=10_000), database, StreamFilter(source=source), None)
        event_id = (await client.post("/hooks", json={"source": source, "event_type": "tick"}, headers=HEADERS)).json()[
            "event_id"
        ]

        async def in_the_stream() -> bool:
            newest = await redis.xrevrange(LIVE_STREAM, count=50)
            return any(event_id.encode() in fields[b"d"] for _, fields in newest)

        await wait_until(in_the_stream, timeout=10, message="the hook did not reach the live stream")
        async with asyncio.timeout(10):  # the stream's keep-alive is 15 s: a missed hook would wait for it
            async for message in messages:
                if message.event == "hook":
                    assert json.loads(str(message.data))["event_id"] == event_id
                    break
    finally:
        await redis.aclose()


async def test_stream_needs_a_key_or_a_ticket(settings: Settings) -> None:
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/hooks/stream")).status_code == 401
        assert (await http.get("/hooks/stream", params={"ticket": "forged"})).status_code == 401
        ticket = (await http.post("/hooks/stream/tickets", headers=HEADERS)).json()
        assert ticket["expires_in"] == settings.hooks.stream_ticket_seconds
        async with http.stream("GET", "/hooks/stream", params={"ticket": ticket["ticket"]}) as response:
            assert response.status_code == 200
        page = await http.get("/hooks/live")
        assert page.status_code == 200
        assert "EventSource" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_live_page_shows_a_new_hook_within_two_seconds(settings: Settings) -> None:
    require_chromium()
    source = f"browser-{uuid.uuid4().hex[:8]}"
    marker = f"marker-{uuid.uuid4().hex}"
    async with (
        live_server(settings) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/hooks/live?source={source}#key={ADMIN_KEY}")
            await page.wait_for_selector("#status.live", timeout=15_000)  # the EventSource is open
            assert ADMIN_KEY not in page.url, "the key must leave the address bar"
            event_id = await _post(http, source, 1, event_type="pre_tool_use", tool_name="Bash",
                                   data={"marker": marker})  # fmt: skip
            row = page.locator(f'tr[data-event-id="{event_id}"]')
            await row.wait_for(timeout=2_000)
            text = await row.inner_text()
            assert marker in text
            assert "pre_tool_use" in text
            assert await page.locator("#count").inner_text() == "1"
        finally:
            await browser.close()  # closes the SSE connection, so the server can stop
