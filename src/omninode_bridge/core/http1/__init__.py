"""Small keep-alive HTTP/1.1 clients on httptools' parser, for hot paths where httpx's per-call cost shows.

:class:`Http1Pool` posts a body and returns the whole answer (the metrics module's plain completions);
:class:`StreamPool` streams both ways (the registry's tool-capture proxy). Both keep idle connections per origin
and verify https against certifi's bundle, as httpx does. :class:`ClientConnection` is the connection state the
small clients share (also the metrics module's RESP client); the two HTTP/1.1 pools read answers through one
subclass of it, ``ResponseConnection``.
"""

from __future__ import annotations

from omninode_bridge.core.http1._conn import ClientConnection, ConnectionFailed, Origin
from omninode_bridge.core.http1._pool import Endpoint, Http1Pool
from omninode_bridge.core.http1._stream import ConnectFailed, ConnectTimedOut, StreamedResponse, StreamPool

__all__ = [
    "ClientConnection",
    "ConnectFailed",
    "ConnectTimedOut",
    "ConnectionFailed",
    "Endpoint",
    "Http1Pool",
    "Origin",
    "StreamPool",
    "StreamedResponse",
]
