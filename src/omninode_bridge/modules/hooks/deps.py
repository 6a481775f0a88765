"""The hooks module's per-process state, built by its lifespan and kept in ``runtime.extras``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import State

from omninode_bridge import platform
from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.module import Runtime
from omninode_bridge.modules.hooks.redaction import Redactor
from omninode_bridge.modules.hooks.schemas import DEFAULT_NAMESPACE
from omninode_bridge.modules.hooks.services import LiveFeed, RetentionPurger, TicketBook, reader_client

__all__ = [
    "HooksState",
    "actor_of",
    "check_body_size",
    "check_content_length",
    "hooks_lifespan",
    "hooks_state",
    "namespace_for",
    "read_json_hook",
    "visible_namespaces",
]

_EXTRA = "hooks"


@dataclass(slots=True)
class HooksState:
    """What the hooks endpoints share in one process.

    Attributes:
        redactor: The configured secret redactor.
        live: The live feed (Redis stream).
        tickets: Stream tickets for browsers.
        purger: The retention purge.
    """

    redactor: Redactor
    live: LiveFeed
    tickets: TicketBook
    purger: RetentionPurger


def hooks_state(state: State) -> HooksState:
    """The hooks state of the running app."""
    hooks: HooksState = state.runtime.extras[_EXTRA]
    return hooks


@contextlib.asynccontextmanager
async def hooks_lifespan(runtime: Runtime) -> AsyncIterator[None]:
    """Build the hooks state and run the live feed writer and the retention purge in the background."""
    settings = runtime.settings.hooks
    async with reader_client(runtime.settings.redis.url or "") as reader:
        hooks = HooksState(
            redactor=Redactor.from_settings(settings),
            live=LiveFeed(runtime.redis, reader, maxlen=settings.live_buffer_events),
            tickets=TicketBook(runtime.redis, settings.stream_ticket_seconds),
            purger=RetentionPurger(runtime.database, settings),
        )
        runtime.extras[_EXTRA] = hooks
        tasks = [
            asyncio.create_task(hooks.live.run(), name="hooks-live-feed"),
            asyncio.create_task(hooks.purger.run(), name="hooks-retention"),
        ]
        try:
            yield
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await hooks.live.flush()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def actor_of(request: Request[Any, Any, Any], key_id: Any) -> dict[str, Any]:
    """Audit fields of a request."""
    return {
        "key_id": key_id,
        "client_ip": request.client.host if request.client else None,
        "method": request.method,
        "path": request.url.path[:2048],
        "correlation_id": correlation_id_of(request),
    }


async def check_content_length(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: 413 at once when the announced body exceeds the per-hook limit."""
    limit = request.app.state.runtime.settings.hooks.max_body_bytes
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise ProblemError(413, f"A hook body may have at most {limit} bytes; this one announces {announced}.")


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def read_json_hook(request: Request[Any, Any, Any]) -> Any:
    """The checked JSON body of a hook endpoint: size, content type, then UTF-8, NUL and depth.

    Called from the endpoints' ``before_request`` hooks, so the strict validation that follows runs before
    Litestar's own (lenient) parsing of ``data``. A body over the limit is a 413, a body that does not say
    it is JSON a 415 (``text/plain`` is not parsed as JSON).

    Returns:
        The decoded body (cached on the request).
    """
    await check_content_length(request)
    if not _is_json(request.headers.get("content-type", "")):
        raise ProblemError(
            415,
            "Send the hook as JSON with Content-Type: application/json.",
            headers={"Accept-Post": "application/json"},
        )
    check_body_size(await request.body(), request.app.state.runtime.settings.hooks.max_body_bytes)
    return await request.json()


async def namespace_for(request: Request[Any, Any, Any], requested: str | None) -> str:
    """The namespace a posted hook goes to, once the key is allowed to write there (else an audited 403).

    Without one named, a key restricted to exactly one namespace writes there; any other key to ``default``.
    """
    if requested is None:
        principal = platform.principal_or_none(request)
        only = principal.namespaces if principal is not None else None
        requested = next(iter(only)) if only is not None and len(only) == 1 else DEFAULT_NAMESPACE
    await platform.require_namespace(request, requested)
    return requested


async def visible_namespaces(request: Request[Any, Any, Any], requested: str | None) -> frozenset[str] | None:
    """The namespaces a read may show: the one asked for (if the key may use it, else a 403), else the
    key's namespaces (None: every namespace)."""
    if requested is not None:
        await platform.require_namespace(request, requested)
        return frozenset({requested})
    principal = platform.principal_or_none(request)
    return principal.namespaces if principal is not None else None


def check_body_size(body: bytes, limit: int) -> None:
    """413 when a body read without a Content-Length exceeds the per-hook limit."""
    if len(body) > limit:
        raise ProblemError(413, f"A hook body may have at most {limit} bytes; this one has {len(body)}.")
