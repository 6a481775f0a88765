"""The serving protocol (``cli/_http.py``): one socket write per small response, every byte in order.

A real uvicorn server, as ``serve`` configures it, over a small ASGI app; the client reads raw bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from omninode_bridge.cli._http import OneWriteHttpToolsProtocol, _HeldWrites
from omninode_bridge.embedded import free_port

released = asyncio.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":  # two chunks, the second only once the client has read the first
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await released.wait()
        await send({"type": "http.response.body", "body": b"second\n"})
        return
    body = b"x" * 1024
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=OneWriteHttpToolsProtocol, log_config=None)
    served = uvicorn.Server(config)
    task = asyncio.ensure_future(served.serve())
    deadline = asyncio.get_running_loop().time() + 10
    while not served.started:
        assert asyncio.get_running_loop().time() < deadline, "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        served.should_exit = True
        await task


async def test_small_responses_keep_alive_and_head(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for _ in range(3):  # the same keep-alive connection, response after response
            response = await client.get("/")
            assert response.status_code == 200
            assert response.content == b"x" * 1024
        head = await client.head("/")
        assert head.status_code == 200
        assert head.content == b""
        closing = await client.get("/", headers={"connection": "close"})
        assert closing.content == b"x" * 1024
        assert closing.headers["connection"] == "close"


async def test_a_small_response_is_one_write(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writes: list[int] = []
    original = _HeldWrites.flush

    def counting_flush(self: _HeldWrites) -> None:
        writes.append(len(self._held))
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_HeldWrites, "flush", counting_flush)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(1024)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"x" * 1024
    assert [n for n in writes if n] == [2]  # headers and body handed to the socket together
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_a_streamed_chunk_is_not_held_back(server: str) -> None:
    global released  # the app reads it; an Event belongs to the loop of the test that uses it
    released = asyncio.Event()
    async with httpx.AsyncClient(base_url=server) as client, client.stream("GET", "/stream") as response:
        lines = response.aiter_lines()
        assert await asyncio.wait_for(lines.__anext__(), 5) == "first"  # before the app sends the rest
        released.set()
        assert await asyncio.wait_for(lines.__anext__(), 5) == "second"
