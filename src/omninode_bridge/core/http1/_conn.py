"""What the small pooled clients (the two HTTP/1.1 pools here, the metrics module's RESP client) share: one
client connection's state."""

from __future__ import annotations

import asyncio
from typing import cast

__all__ = ["ClientConnection"]


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
