"""A small keep-alive HTTP/1.1 client for plain calls: one POST, the whole answer back (the metrics module's
non-streamed completions).

Why not httpx here: measured against the zero-latency upstream of ``bench.metrics``, httpx's transport
(httpcore, anyio streams, h11) spends about 0.7 ms of CPU per call, this client about 0.03 ms (an
``asyncio.Protocol`` per connection and httptools' C parser, which uvicorn already brings). At a few ms of CPU
per ``/execute`` that was the largest single share. Streams still go through httpx (``UpstreamClient.stream``):
they last as long as the model writes, so the per-call overhead does not matter there.

What it does: a pool of idle connections per origin (``http`` or ``https``, verified against certifi's CA
bundle like httpx), ``Content-Length`` and chunked answers and answers delimited by the connection's close,
``Connection: close`` honoured, one retry on a fresh connection when a reused one turns out closed before any
byte of the answer came back (the server dropped it while idle). No proxies (the upstream client never used
the environment's), no redirects, no cookies. The caller's ``asyncio.timeout`` bounds the whole call; a call
cancelled mid-way closes its connection.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from omninode_bridge.core.http1._conn import ConnectionFailed, IdleConnections, Origin, ResponseConnection

__all__ = ["Endpoint", "Http1Pool"]

#: Largest answer accepted (a chat completion is kilobytes; this only stops a runaway upstream).
_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A URL resolved once: where to connect and the start of every request's head."""

    scheme: str
    host: str
    port: int
    head: bytes  # request line and Host header

    @property
    def origin(self) -> Origin:
        """Where its connections go: (scheme, host, port)."""
        return self.scheme, self.host, self.port

    @classmethod
    def of(cls, url: str) -> Endpoint:
        """Parse ``url`` (http or https)."""
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        head = b"POST " + parsed.raw_path + b" HTTP/1.1\r\nHost: " + parsed.netloc + b"\r\n"
        return cls(parsed.scheme, parsed.host, port, head)


class _Connection(ResponseConnection):
    """One connection: a request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False

    # asyncio.Protocol ---------------------------------------------------------------------------------------
    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._waiter is not None and not self._waiter.done():
            if self._headers_done and not self._framed and exc is None:
                self._finish()  # an answer delimited by the close
            else:
                self._fail(ConnectionFailed("the connection closed before the answer was complete"))

    # httptools callbacks ------------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._note_framing(name, value)

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > _MAX_BODY:
            self._fail(ConnectionFailed("the answer is too large"))
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._finish()
        if not self._parser.should_keep_alive():
            self.close()

    # The client's side --------------------------------------------------------------------------------------
    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request and wait for its whole answer: (status, body)."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._body, self._size, self.received, self._headers_done, self._framed = [], 0, False, False, False
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def _expecting(self) -> bool:
        return self._waiter is not None

    def _finish(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


class Http1Pool(IdleConnections[_Connection]):
    """Idle keep-alive connections per origin, shared by every model (one pool per process).

    Args:
        max_idle: Idle connections kept per origin; more are closed when given back.
    """

    async def post(self, endpoint: Endpoint, headers: bytes, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` with ``headers`` (complete ``Name: value\\r\\n`` lines, no Content-Length).

        Returns:
            The status and the whole body of the answer.

        Raises:
            ConnectionFailed: The connection could not be made (refused, unreachable, TLS), broke, or the
                answer was not HTTP/1.1.
        """
        data = b"".join((endpoint.head, headers, b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))
        connection = await self._connection(endpoint)
        try:
            try:
                answer = await connection.request(data)
            except ConnectionFailed:
                if not connection.reused or connection.received:
                    raise
                # The server closed the idle connection as we reused it; nothing was answered: once more.
                connection = await self._connect(endpoint)
                answer = await connection.request(data)
        except BaseException:
            connection.close()  # cancelled or broken mid-answer: its state is unknown
            raise
        self._give_back(endpoint, connection)
        return answer

    async def _connection(self, endpoint: Endpoint) -> _Connection:
        return self._reuse(endpoint.origin) or await self._connect(endpoint)

    async def _connect(self, endpoint: Endpoint) -> _Connection:
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {}
        if endpoint.scheme == "https":
            options = {"ssl": self._ssl_context(), "server_hostname": endpoint.host}
        try:
            _, connection = await loop.create_connection(_Connection, endpoint.host, endpoint.port, **options)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from None
        return connection

    def _give_back(self, endpoint: Endpoint, connection: _Connection) -> None:
        self._keep(endpoint.origin, connection)
