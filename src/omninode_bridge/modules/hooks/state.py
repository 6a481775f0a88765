"""The hooks module's per-app state, built by :func:`build_module` and filled by its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.events import EventPublisher
from omninode_bridge.core.module import Resources, Started
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.redaction import Redactor
from omninode_bridge.modules.hooks.services import (
    HookIngestService,
    LiveFeed,
    RetentionPurger,
    TicketBook,
    reader_client,
)
from omninode_bridge.modules.hooks.settings import HooksSettings

__all__ = ["HooksState"]


class HooksState:
    """What the hooks endpoints share in one app.

    Args:
        settings: The hooks settings group.
        redis_url: The Redis the live feed's blocking reader connects to.

    Attributes:
        settings: The hooks settings group.
        redactor: The configured secret redactor.
        live: The live feed (Redis stream), once started.
        tickets: Stream tickets for browsers, once started.
        resources: The app's resources (database, publisher), once started.
    """

    def __init__(self, settings: HooksSettings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.redactor = Redactor.from_settings(settings)
        self.live: Started[LiveFeed] = Started("the hooks live feed")
        self.tickets: Started[TicketBook] = Started("the hooks stream tickets")
        self.resources: Started[Resources] = Started("the hooks module's resources")

    @property
    def database(self) -> Database:
        """The app's database."""
        return self.resources.get().database

    @property
    def publisher(self) -> EventPublisher:
        """The app's outbox publisher."""
        return self.resources.get().publisher

    def ingest(self, uow: UnitOfWork) -> HookIngestService:
        """The ingest service of a request."""
        return HookIngestService(uow, self.publisher, self.settings, self.redactor, self.live.get())

    async def record_tool_calls(self, pairs: Sequence[schemas.ToolCallPair]) -> None:
        """Store and publish tool calls observed elsewhere (the registry's proxy) as pre/post hook pairs, in one
        transaction through the outbox, exactly as ``POST /hooks/batch`` stores hooks."""
        async with self.database.unit_of_work() as uow:
            await self.ingest(uow).accept_tool_calls(pairs)

    @contextlib.asynccontextmanager
    async def lifespan(self, resources: Resources) -> AsyncIterator[None]:
        """Fill the state and run the live feed writer and the retention purge in the background."""
        async with reader_client(self.redis_url) as reader:
            live = LiveFeed(resources.redis, reader, maxlen=self.settings.live_buffer_events)
            purger = RetentionPurger(resources.database, self.settings)
            self.resources.set(resources)
            self.live.set(live)
            self.tickets.set(TicketBook(resources.redis, self.settings.stream_ticket_seconds))
            tasks = [
                asyncio.create_task(live.run(), name="hooks-live-feed"),
                asyncio.create_task(purger.run(), name="hooks-retention"),
            ]
            try:
                yield
            finally:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await live.flush()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
