"""The hooks module's per-process state, built by its lifespan and kept in ``runtime.extras``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import State

from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.module import Runtime
from omninode_bridge.modules.hooks.redaction import Redactor
from omninode_bridge.modules.hooks.services import LiveFeed, RetentionPurger, TicketBook, reader_client

__all__ = ["HooksState", "actor_of", "check_body_size", "check_content_length", "hooks_lifespan", "hooks_state"]

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
    return state.runtime.extras[_EXTRA]


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


def check_body_size(body: bytes, limit: int) -> None:
    """413 when a body read without a Content-Length exceeds the per-hook limit."""
    if len(body) > limit:
        raise ProblemError(413, f"A hook body may have at most {limit} bytes; this one has {len(body)}.")
