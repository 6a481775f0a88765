"""The tool-capture proxy: ``/{prefix}/{service}/{path...}`` (scope ``registry``) forwards to a passing instance of
a registered service and streams its answer back; the exchange is captured as a pre/post tool call in hooks.

The handler answers with its own small ASGI app (status, the upstream's raw headers, then each body chunk as it
arrives): no response object to build and no content negotiation on the proxy's path.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, HttpMethod, Request, route
from litestar.openapi.spec import OpenAPIResponse, Operation
from litestar.params import FromPath
from litestar.types import ASGIApp, Receive, Scope, Send

from omninode_bridge import platform
from omninode_bridge.core.errors import correlation_id_of
from omninode_bridge.core.inputs import param, text
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.modules.registry import schemas
from omninode_bridge.modules.registry.services import Exchange, ProxyService

__all__ = ["PROXY_OPT", "PROXY_PREFIX_OPT", "ProxyController"]

#: The route ``opt`` key of the function that returns the running proxy (a :class:`ProxyService`).
PROXY_OPT = "registry_proxy"
#: The route ``opt`` key of the proxy's path prefix (a setting).
PROXY_PREFIX_OPT = "registry_proxy_prefix"
_METHODS = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE, HttpMethod.OPTIONS]
ServicePath = Annotated[str, param(text(max_length=255, pattern=schemas.SERVICE_NAME), path=True,
                                   description="A registered service name.")]  # fmt: skip
_RESPONSES = error_responses(
    {
        403: "Missing scope, or the service's registered addresses are outside what the proxy may reach",
        404: "No such service is registered",
        502: "No instance accepted the connection, or the upstream broke it before answering",
        503: "No instance of the service is passing its health check",
        504: "The upstream did not answer (or accept a connection) in time",
    },
    body=True,
)


@dataclass
class ProxyOperation(Operation):
    """The proxy's operation: besides its own problems, it answers whatever the upstream answered."""

    def __post_init__(self) -> None:
        self.responses = {
            **(self.responses or {}),
            "default": OpenAPIResponse(description="The upstream's answer: status, headers and body as it sent them"),
        }


class _Answer:
    """The upstream's answer as an ASGI app: its status and headers, then its body chunk by chunk."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.exchange.body
        try:
            await send({"type": "http.response.start", "status": self.exchange.status,
                        "headers": self.exchange.headers})  # fmt: skip
            if any(k == b"content-length" for k, _ in self.exchange.headers):
                await self._pump(send, bounded=True)  # a bounded answer ends by itself
            else:  # a stream (SSE, chunked) may never end: stop reading the upstream when the client leaves
                pump = asyncio.ensure_future(self._pump(send, bounded=False))
                left = asyncio.ensure_future(_disconnected(receive))
                await asyncio.wait((pump, left), return_when=asyncio.FIRST_COMPLETED)
                left.cancel()
                if not pump.done():
                    pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        finally:
            await body.aclose()  # type: ignore[attr-defined]  # an async generator: closes the upstream response

    async def _pump(self, send: Send, *, bounded: bool) -> None:
        if not bounded:  # a stream: each chunk goes out as it arrives
            async for chunk in self.exchange.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # One chunk behind: the last one goes out as the final message (a small answer is one message, not two).
        held: bytes | None = None
        async for chunk in self.exchange.body:
            if held is not None:
                await send({"type": "http.response.body", "body": held, "more_body": True})
            held = chunk
        await send({"type": "http.response.body", "body": held or b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone (what is left of the request body is discarded)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _operation_id(handler: Any, method: str, path: Any) -> str:
    """One operation id per method of the one route (``proxyToServiceGet``, ...)."""
    return f"proxyToService{method.title()}"


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() not in (b"0", b"")):
            return True
    return False


class ProxyController(Controller):
    """The tool-capture proxy (mounted at ``OMNINODE_REGISTRY_PROXY_PREFIX``)."""

    path = "/"
    tags = ["registry"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("registry")

    @route("/{service:str}/{path:path}", http_method=_METHODS, operation_id=_operation_id,
           summary="Call a registered service through the tool-capture proxy", responses=_RESPONSES,
           operation_class=ProxyOperation)  # fmt: skip
    async def proxy(self, request: Request[Any, Any, Any], service: ServicePath, path: FromPath[str]) -> ASGIApp:
        """Forward the request (method, headers without hop-by-hop ones and without this API's own credentials,
        body streamed) to a passing instance of `service`, round-robin, trying the next one when an instance
        refuses the connection; stream its answer back as it is. Each exchange is recorded in hooks as a
        `pre_tool_use`/`post_tool_use` pair (tool `<service>:<METHOD> <path>`, duration, status, sizes,
        redacted headers and the first bytes of both bodies). Only registered addresses are reachable."""
        proxy: ProxyService = request.route_handler.opt[PROXY_OPT]()
        scope = request.scope
        # raw_path has no query string per ASGI, but some servers (httpx's ASGI transport) leave it on.
        raw_path: bytes = (scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode()).partition(b"?")[0]
        # The part below /{prefix}/{service}, as the client encoded it (raw_path has no query string).
        prefix = f"{request.route_handler.opt[PROXY_PREFIX_OPT]}/{service}".encode()
        below = raw_path[len(prefix) :] if raw_path.startswith(prefix) else urllib.parse.quote(path).encode()
        headers = list(scope["headers"])
        principal = platform.principal_or_none(request)
        exchange = await proxy.exchange(
            service=service, method=request.method, raw_path=below or b"/", query=scope.get("query_string", b""),
            headers=headers, body=_stream(request) if _has_body(headers) else None,
            correlation_id=correlation_id_of(request) or uuid.uuid4().hex,
            key_id=principal.key_id if principal is not None else None,
        )  # fmt: skip
        return _Answer(exchange)


async def _stream(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk
