"""What the small pooled clients (the two HTTP/1.1 pools here, the metrics module's RESP client) share: one
client connection's state, and for the two HTTP/1.1 pools the reading of answers with httptools' parser."""

from __future__ import annotations

import abc
import asyncio
import ssl
from collections import deque
from typing import Generic, TypeVar, cast

import httptools

__all__ = ["ClientConnection", "ConnectionFailed", "IdleConnections", "Origin", "ResponseConnection"]

Origin = tuple[str, str, int]  # scheme, host, port


class ConnectionFailed(Exception):
    """The connection failed, closed early, or the answer was not valid HTTP/1.1."""


class ClientConnection(asyncio.Protocol):
    """A pooled client connection: its transport, whether it was lost, and the checks its pool makes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast("asyncio.Transport", transport)

    @property
    def idle(self) -> bool:
        """Usable for the next request."""
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        """Close the connection (at once)."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class ResponseConnection(ClientConnection, abc.ABC):
    """A connection that reads HTTP/1.1 answers with httptools' parser (itself the parser's callback object):
    the bytes fed to the parser, a request failed on bytes that are not HTTP, and the framing of the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.reused = False
        self.received = False  # any byte of the current answer came back
        self._framed = False  # Content-Length or chunked: the end is in the stream, not at the close
        self._parser = httptools.HttpResponseParser(self)

    @abc.abstractmethod
    def _expecting(self) -> bool:
        """Whether a request waits for an answer."""

    @abc.abstractmethod
    def _fail(self, exc: Exception) -> None:
        """End the current request with ``exc``."""

    def data_received(self, data: bytes) -> None:
        if not self._expecting():  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionFailed(f"invalid HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def _note_framing(self, name: bytes, value: bytes) -> None:
        """Record from a header whether the answer's end is in the stream (else the close ends it)."""
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True


_Connection = TypeVar("_Connection", bound=ResponseConnection)


class IdleConnections(Generic[_Connection]):
    """Idle keep-alive connections per origin: what the two HTTP/1.1 pools share (reuse, give back, TLS, close).

    Args:
        max_idle: Idle connections kept per origin; more are closed when given back.
    """

    def __init__(self, max_idle: int = 128) -> None:
        self.max_idle = max_idle
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    def _reuse(self, origin: Origin) -> _Connection | None:
        """An idle connection to ``origin`` still open, marked reused; None when there is none."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed by the server
            if connection.idle:
                connection.reused = True
                return connection
        return None

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        """Keep ``connection`` for the next request to ``origin``, or close it (pool closed, connection unusable
        or enough kept)."""
        if self._closed or not connection.idle:
            connection.close()
            return
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= self.max_idle:
            connection.close()
            return
        idle.append(connection)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import certifi  # httpx's CA bundle, so https upstreams verify exactly as they did through httpx

            self._ssl = ssl.create_default_context(cafile=certifi.where())
        return self._ssl

    def close(self) -> None:
        """Close every idle connection; connections in use close when their call ends."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
