"""uvicorn's httptools protocol, with one socket write per small response instead of two.

uvicorn writes a response's status line and headers as soon as the app sends ``http.response.start``,
and the body as a second write. Each write is a ``send`` system call and, on a keep-alive connection, a
second wake-up of the client; in a profile of ``POST /hash`` at 32 connections these writes were the
largest single share of the server's CPU (~13% self time). The transport below holds each write until
the next one, a close, or the end of the current event-loop iteration, then hands them to the socket
together (uvloop writes a list of buffers with one ``writev``). A response whose body follows its
headers in the same iteration (every non-streamed response) goes out in one call; a streamed one is
delayed by at most one loop iteration. No byte is reordered or dropped: ``close`` and ``write_eof`` send
what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["OneWriteHttpToolsProtocol"]


class _HeldWrites:
    """A transport that forwards everything to ``transport`` but holds writes until the loop iteration ends."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes | bytearray | memoryview] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        if len(held) == 1:
            self._transport.write(held[0])
        else:
            self._transport.writelines(held)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._held)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` over a transport that sends a response's headers and body in one write."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own
        super().connection_made(cast("asyncio.Transport", _HeldWrites(transport, self.loop)))
