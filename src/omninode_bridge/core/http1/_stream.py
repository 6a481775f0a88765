"""A keep-alive HTTP/1.1 client that streams both ways: any method, the request body sent as it is read, the
answer's body handed over chunk by chunk as it arrives (with back-pressure on the socket).

Why not httpx for a reverse proxy: per call, httpx's transport (httpcore, anyio streams, h11, the request and
response models) costs several times what the forward itself does; this client is an ``asyncio.Protocol`` per
connection with httptools' C parser (uvicorn's), writing the request head in one piece.

What it does: a pool of idle connections per origin (``http``; ``https`` verified against certifi's bundle like
httpx), ``Content-Length``, chunked and close-delimited answers, interim ``1xx`` answers skipped, ``Connection:
close`` honoured, a request body sent with its ``Content-Length`` or chunked. Errors tell whether anything was
sent: :class:`ConnectFailed` (nothing was; the caller may try another server) or :class:`ConnectionFailed`
(it broke afterwards). Timeouts: ``connect`` bounds the connection's set-up (:class:`ConnectTimedOut`, a
:class:`ConnectFailed`), ``wait`` each wait for the server (its head, each chunk, the socket accepting the
request: :class:`TimeoutError`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from omninode_bridge.core.http1._conn import ConnectionFailed, IdleConnections, Origin, ResponseConnection

__all__ = ["ConnectFailed", "ConnectTimedOut", "Origin", "StreamPool", "StreamedResponse"]

#: Bytes of an answer buffered before the socket stops being read (the consumer is slower than the server).
_HIGH_WATER = 256 * 1024


class ConnectFailed(ConnectionFailed):
    """No connection could be made (refused, unreachable, TLS): nothing of the request was sent."""


class ConnectTimedOut(ConnectFailed):
    """No connection was made within the connect timeout (nothing was sent)."""


class _Stream(ResponseConnection):
    """One connection: a request at a time, its answer's head awaited, its body queued as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self._head: asyncio.Future[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self.complete = False
        self._error: Exception | None = None
        self.head_only = False

    def begin(self, head_only: bool) -> None:
        """Reset for the next request."""
        self._head = asyncio.get_running_loop().create_future()
        self.status, self.headers, self.complete, self._error = 0, [], False, None
        self._framed = self.received = False
        self.head_only = head_only
        self._chunks.clear()
        self._buffered = 0

    # asyncio.Protocol ---------------------------------------------------------------------------------------
    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._head is not None and not self.complete:
            if self._head.done() and not self._framed and exc is None:
                self._end()  # an answer delimited by the close
            else:
                self._fail(ConnectionFailed("the connection closed before the answer was complete"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # httptools callbacks ------------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._note_framing(name, value)
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers, self._framed = [], False
            return
        self.status = status
        if self._head is not None and not self._head.done():
            self._head.set_result(None)
        if self.head_only:  # an answer to HEAD has no body whatever its headers say; the parser would wait for one
            self._end()
            self.close()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wakeup()

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of an interim answer
            return
        self._end()
        if not self._parser.should_keep_alive():
            self.close()

    # The client's side --------------------------------------------------------------------------------------
    def _expecting(self) -> bool:
        return self._head is not None

    def _end(self) -> None:
        self.complete = True
        self._wakeup()

    def _fail(self, exc: Exception) -> None:
        self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._wakeup()

    def _wakeup(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def drain(self, seconds: float) -> None:
        """Wait until the socket takes more (the server reads the request body)."""
        if self._writable is not None:
            async with asyncio.timeout(seconds):
                await asyncio.shield(self._writable)
        if self.lost:
            raise ConnectionFailed("the connection closed while the request was sent")

    async def wait_head(self, seconds: float) -> None:
        """Wait for the answer's status line and headers."""
        assert self._head is not None
        async with asyncio.timeout(seconds):
            await self._head

    async def next_chunk(self, seconds: float) -> bytes | None:
        """The next piece of the answer's body, or None at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self.complete:
                return None
            self._wake = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(seconds):
                    await self._wake
            finally:
                self._wake = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= _HIGH_WATER // 4 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def finished(self) -> None:
        """The request is over: nothing more is expected on this connection until the next one."""
        self._head = None


class StreamedResponse:
    """An answer whose body is read as it arrives; close it (``aclose``) to give the connection back."""

    __slots__ = ("_connection", "_origin", "_pool", "_timeout", "headers", "status")

    def __init__(self, pool: StreamPool, origin: Origin, connection: _Stream, timeout: float) -> None:
        self._pool, self._origin, self._connection, self._timeout = pool, origin, connection, timeout
        self.status = connection.status
        self.headers = connection.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (de-chunked, not decoded)."""
        while True:
            chunk = await self._connection.next_chunk(self._timeout)
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        """Give the connection back when the answer was read to its end, else close it."""
        connection = self._connection
        connection.finished()
        if connection.complete and not connection.head_only:
            self._pool.give_back(self._origin, connection)
        else:
            connection.close()


def _head(method: str, target: bytes, headers: Sequence[tuple[bytes, bytes]], chunked: bool) -> bytes:
    lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    if chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class StreamPool(IdleConnections[_Stream]):
    """Idle keep-alive connections per origin (one pool per process).

    Args:
        max_idle: Idle connections kept per origin; more are closed when given back.
    """

    async def send(
        self, origin: Origin, method: str, target: bytes, headers: Sequence[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None, *, connect: float, wait: float,
    ) -> StreamedResponse:  # fmt: skip
        """Send a request and return once the answer's head has come; its body is read from the result.

        Args:
            origin: (scheme, host, port) to connect to.
            method: The HTTP method.
            target: The request target (path and query, percent-encoded).
            headers: Every header to send, ``Host`` included; a body without ``Content-Length`` is sent chunked.
            body: The body's pieces, or None.
            connect: Seconds a new connection may take.
            wait: Seconds each wait for the server may take.

        Raises:
            ConnectFailed: No connection could be made (nothing was sent); ConnectTimedOut when it timed out.
            ConnectionFailed: The connection broke, or the answer was not HTTP/1.1.
            TimeoutError: The server took longer than ``wait`` to take the request or answer.
        """
        chunked = body is not None and not any(k.lower() == b"content-length" for k, _ in headers)
        head = _head(method, target, headers, chunked)
        connection = await self._connection(origin, connect)
        try:
            try:
                await self._send(connection, head, body, chunked, method, wait)
            except ConnectionFailed:
                if not connection.reused or connection.received or body is not None:
                    raise
                # The server closed the idle connection as we reused it; nothing was answered: once more.
                connection = await self._connect(origin, connect)
                await self._send(connection, head, body, chunked, method, wait)
        except BaseException:
            connection.close()  # cancelled or broken mid-way: its state is unknown
            raise
        return StreamedResponse(self, origin, connection, wait)

    async def _send(
        self, connection: _Stream, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool, method: str,
        wait: float,
    ) -> None:  # fmt: skip
        assert connection.transport is not None
        connection.begin(head_only=method == "HEAD")
        transport = connection.transport
        if body is None:
            transport.write(head)
        else:
            transport.write(head)
            async for chunk in body:
                if connection.lost or connection.complete:  # the server answered (or left) before reading it all
                    break
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                    await connection.drain(wait)
            if chunked and not connection.lost:
                transport.write(b"0\r\n\r\n")
        await connection.wait_head(wait)

    async def _connection(self, origin: Origin, connect: float) -> _Stream:
        return self._reuse(origin) or await self._connect(origin, connect)

    async def _connect(self, origin: Origin, connect: float) -> _Stream:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {}
        if scheme == "https":
            options = {"ssl": self._ssl_context(), "server_hostname": host}
        try:
            async with asyncio.timeout(connect):
                _, connection = await loop.create_connection(_Stream, host, port, **options)
        except TimeoutError:
            raise ConnectTimedOut(f"no connection to {host}:{port} within {connect:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        return connection

    def give_back(self, origin: Origin, connection: _Stream) -> None:
        """Keep an idle connection for the next request to ``origin`` (or close it)."""
        connection.reused = False
        self._keep(origin, connection)
