"""The upstream client's HTTP/1.1 pool (``services.http1``) against real loopback servers that answer the way
model servers and proxies do: with a length, chunked, delimited by the close, or dropping the connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from omninode_bridge.core.http1 import ConnectionFailed, Endpoint, Http1Pool

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
JSON = b"Content-Type: application/json\r\n"


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's body (None when the client closed the connection)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


@contextlib.asynccontextmanager
async def _server(answer: Answer) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server calling ``answer`` per request until it returns False; yields its URL and a list
    counting the requests of each connection it accepted."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        index = len(connections) - 1
        try:
            while await _read_request(reader) is not None:
                connections[index] += 1
                if not await answer(reader, writer):
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions", connections
    finally:
        server.close()
        await server.wait_closed()


def _sized(body: bytes, extra: bytes = b"") -> Answer:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))
        await writer.drain()
        return b"close" not in extra

    return answer


async def test_keep_alive_reuses_one_connection_and_honours_close() -> None:
    pool = Http1Pool()
    async with _server(_sized(b'{"ok":1}')) as (url, connections):
        endpoint = Endpoint.of(url)
        for _ in range(3):
            assert await pool.post(endpoint, JSON, b"{}") == (200, b'{"ok":1}')
        assert connections == [3]
    async with _server(_sized(b"bye", b"Connection: close\r\n")) as (url, connections):
        endpoint = Endpoint.of(url)
        for _ in range(2):
            assert await pool.post(endpoint, JSON, b"{}") == (200, b"bye")
        assert connections == [1, 1]  # the server said close: a fresh connection per request
    pool.close()


async def test_chunked_and_close_delimited_answers() -> None:
    async def chunked(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"err\r\n5\r\nor\":1\r\n1\r\n}\r\n0\r\n\r\n")  # fmt: skip
        await writer.drain()
        return True

    async def until_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    pool = Http1Pool()
    async with _server(chunked) as (url, _):
        assert await pool.post(Endpoint.of(url), JSON, b"{}") == (429, b'{"error":1}')
    async with _server(until_close) as (url, _):
        assert await pool.post(Endpoint.of(url), JSON, b"{}") == (200, b"all of it")
    pool.close()


async def test_a_connection_closed_while_idle_is_retried_once_a_broken_answer_is_not() -> None:
    async def once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return False  # closes without saying so: the client's idle connection is dead

    pool = Http1Pool()
    async with _server(once) as (url, connections):
        endpoint = Endpoint.of(url)
        assert await pool.post(endpoint, JSON, b"{}") == (200, b"ok")
        await asyncio.sleep(0)  # (the close may or may not have reached the client yet: both paths must work)
        assert await pool.post(endpoint, JSON, b"{}") == (200, b"ok")
        assert connections == [1, 1]

    async def half(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nnot all")
        await writer.drain()
        return False

    async with _server(half) as (url, _):
        with pytest.raises(ConnectionFailed, match="before the answer was complete"):
            await pool.post(Endpoint.of(url), JSON, b"{}")
    pool.close()


async def test_refused_timed_out_and_invalid() -> None:
    pool = Http1Pool()
    async with _server(_sized(b"")) as (url, _):
        pass  # closed: nothing listens on its port any more
    with pytest.raises(ConnectionFailed, match="ConnectionRefusedError"):
        await pool.post(Endpoint.of(url), JSON, b"{}")

    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> bool:
        await reader.read()  # never answers
        return False

    async with _server(silent) as (url, connections):
        endpoint = Endpoint.of(url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.post(endpoint, JSON, b"{}")
        # The timed-out connection was closed, not pooled: the next call opens another.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.post(endpoint, JSON, b"{}")
        assert len(connections) == 2

    async def garbage(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        return True

    async with _server(garbage) as (url, _):
        with pytest.raises(ConnectionFailed, match="invalid HTTP answer"):
            await pool.post(Endpoint.of(url), JSON, b"{}")
    pool.close()
    with pytest.raises(ValueError, match="not an http"):
        Endpoint.of("ftp://example.com/v1")
