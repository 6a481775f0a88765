"""What the small pooled clients (the two HTTP/1.1 pools here, the metrics module's RESP client) share: one
client connection's state, and for the two HTTP/1.1 pools the reading of answers with httptools' parser."""

from __future__ import annotations

import abc
import asyncio
from typing import cast

import httptools

__all__ = ["ClientConnection", "ConnectionFailed", "ResponseConnection"]


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
