"""The proxy's streaming HTTP/1.1 client (``core.http1.StreamPool``) against a real keep-alive server on loopback:
connection reuse, chunked and sized answers read piece by piece, request bodies sent chunked or sized, interim
answers skipped, HEAD, refusals and timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from omninode_bridge.core.http1 import ConnectFailed, StreamPool
from omninode_bridge.embedded import free_port


class Server:
    """A small HTTP/1.1 server: keep-alive, answers by path; records each request's head and decoded body."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _body(self, reader: asyncio.StreamReader, head: bytes) -> bytes:
        lowered = head.lower()
        if b"transfer-encoding: chunked" in lowered:
            body = b""
            while True:
                size = int((await reader.readline()).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    return body
                body += chunk[:-2]
        for line in lowered.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                return await reader.readexactly(int(line.split(b":")[1]))
        return b""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await self._body(reader, head)
                self.requests.append((head, body))
                path = head.split(b" ")[1]
                if path == b"/chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for part in (b"one ", b"two ", b"three"):
                        writer.write(b"%x\r\n%b\r\n" % (len(part), part))
                        await writer.drain()
                        await asyncio.sleep(0.01)
                    writer.write(b"0\r\n\r\n")
                elif path == b"/continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
                elif path == b"/slow":
                    await asyncio.sleep(1.0)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                else:
                    answer = body or b"hello"
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer))
                    if not head.startswith(b"HEAD "):  # an answer to HEAD has the headers only
                        writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _read(response: object) -> list[bytes]:
    return [chunk async for chunk in response.chunks()]  # type: ignore[attr-defined]


async def _body(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_stream_pool_reuses_connections_and_streams_both_ways() -> None:
    server = Server()
    port = await server.start()
    pool = StreamPool()
    origin = ("http", "127.0.0.1", port)
    host = [(b"Host", b"127.0.0.1")]
    try:
        response = await pool.send(origin, "GET", b"/chunked", host, None, connect=2, wait=5)
        assert response.status == 200
        assert await _read(response) == [b"one ", b"two ", b"three"]  # piece by piece, as the server sent them
        await response.aclose()
        # A streamed body without a length goes chunked; one with a length goes as it is.
        response = await pool.send(origin, "POST", b"/echo?x=1", host, _body([b"ab", b"cd"]), connect=2, wait=5)
        assert (response.status, b"".join(await _read(response))) == (200, b"abcd")
        await response.aclose()
        sized = [*host, (b"Content-Length", b"3")]
        response = await pool.send(origin, "PUT", b"/echo", sized, _body([b"x", b"yz"]), connect=2, wait=5)
        assert b"".join(await _read(response)) == b"xyz"
        await response.aclose()
        response = await pool.send(origin, "POST", b"/continue", host, None, connect=2, wait=5)
        assert (response.status, b"".join(await _read(response))) == (201, b"ok")  # the 100 is skipped
        await response.aclose()
        assert server.connections == 1  # every answer read to its end: one connection for all
        assert b"transfer-encoding: chunked" in server.requests[1][0]
        assert server.requests[1][1] == b"abcd"
        assert server.requests[1][0].startswith(b"POST /echo?x=1 HTTP/1.1\r\n")
        # HEAD: the headers only, whatever Content-Length says; the connection is not reused after it.
        response = await pool.send(origin, "HEAD", b"/echo", host, None, connect=2, wait=5)
        assert (response.status, await _read(response)) == (200, [])
        await response.aclose()
        # An answer left unread closes its connection: the next request opens another.
        response = await pool.send(origin, "GET", b"/chunked", host, None, connect=2, wait=5)
        await response.aclose()
        response = await pool.send(origin, "GET", b"/", host, None, connect=2, wait=5)
        assert b"".join(await _read(response)) == b"hello"
        await response.aclose()
        assert server.connections == 3
    finally:
        pool.close()
        assert server.server is not None
        server.server.close()


async def test_stream_pool_refusals_and_timeouts() -> None:
    pool = StreamPool()
    with pytest.raises(ConnectFailed):  # nothing listens there: nothing was sent
        await pool.send(("http", "127.0.0.1", free_port()), "GET", b"/", [], None, connect=2, wait=2)
    server = Server()
    port = await server.start()
    try:
        with pytest.raises(TimeoutError):
            await pool.send(("http", "127.0.0.1", port), "GET", b"/slow", [], None, connect=2, wait=0.2)
    finally:
        pool.close()
        assert server.server is not None
        server.server.close()
