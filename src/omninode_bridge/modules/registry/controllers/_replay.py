"""Replays the catalog's encoded answers to repeated reads (around the registry's and the Consul reads).

It runs inside the app's middleware (input guard, authentication and the ``registry`` scope, rate limits,
metrics, correlation id): those see every request and add their headers to a replayed answer as to any other.
What it skips on a hit is the handler's own work, a third of a lookup's CPU: building the request, parsing and
validating the query, resolving dependencies, the cached read, encoding the page and rendering the response.

Only non-blocking ``GET`` reads whose answer is a ``200`` in one body are kept. A query string with an ``index``
parameter (a blocking query: it may have to wait) always runs the handler, as does every error answer, so input
errors are answered as before. Concurrent misses of one read share the first one's handler run (see
``AnswerCache``): a change no longer sets every waiting connection to run the whole handler at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from omninode_bridge.modules.registry.services import Answer, AnswerCache

__all__ = ["ReplayAnswers"]


#: Reads whose answer holds the instances of the one service named in the path (the Consul subset).
_BY_SERVICE_PATH = ("/v1/health/service/", "/v1/catalog/service/", "/v1/health/checks/")


def _service_of(path: str, query: bytes) -> str | None:
    """The one service a read's answer depends on (None: it may depend on any): ``GET /registry/nodes?name=X``
    and the Consul reads of one service. Anything escaped, or a name given twice, counts as any."""
    if path == "/registry/nodes":
        if b"name=" not in query or b"%" in query or b"+" in query:
            return None
        names = [part[5:] for part in query.split(b"&") if part.startswith(b"name=")]
        return names[0].decode("latin-1") if len(names) == 1 and names[0] else None
    for prefix in _BY_SERVICE_PATH:
        if path.startswith(prefix):
            name = path[len(prefix) :]
            return name if name and "/" not in name else None
    return None


def _blocking(query: bytes) -> bool:
    """Whether the query string has an ``index`` parameter, also percent-escaped (as Litestar decodes keys)."""
    if b"index" not in query and b"%" not in query:
        return False
    for part in query.split(b"&"):
        key = part.partition(b"=")[0]
        if (unquote_to_bytes(key) if b"%" in key else key) == b"index":
            return True
    return False


class ReplayAnswers:
    """ASGI middleware: a kept answer to the same path and query string at this generation, or the handler's.

    Args:
        app: The handler's ASGI app.
        answers: The running app's answer cache (None before start-up and after shutdown).
    """

    def __init__(self, app: ASGIApp, answers: Callable[[], AnswerCache | None]) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cache = self.answers() if scope["type"] == ScopeType.HTTP and scope["method"] == "GET" else None
        query: bytes = scope.get("query_string", b"") if cache is not None else b""
        if cache is None or _blocking(query):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        key = (path, query, _service_of(path, query))
        answer = cache.get(key)
        if answer is None:
            waiting = cache.waiting(key)
            if waiting is not None:  # another request runs the handler for this key: its answer is ours too
                answer = await asyncio.shield(waiting)
        if answer is not None:
            # Fresh messages and header lists: the middleware outside appends its headers to what it is sent.
            await send({"type": "http.response.start", "status": 200, "headers": list(answer.headers)})
            await send({"type": "http.response.body", "body": answer.body, "more_body": False})
            return
        version = cache.version(key)
        flight = cache.lead(key, version)
        status = 0
        headers: tuple[tuple[bytes, bytes], ...] = ()
        keep = True

        async def kept(message: Message) -> None:
            nonlocal status, headers, keep
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = tuple(message.get("headers", ()))  # before the outer middleware adds its own
            elif message["type"] == "http.response.body" and keep:
                keep = False  # one body message only: a streamed answer is not kept
                if status == 200 and not message.get("more_body", False):
                    fresh = Answer(headers, bytes(message.get("body", b"")), time.monotonic(), version)
                    cache.put(key, fresh)
                    cache.settle(key, version, flight, fresh)
            await send(message)

        try:
            await self.app(scope, receive, kept)
        finally:
            cache.settle(key, version, flight, None)  # no answer to share (an error, a stream, a cancelled request)
