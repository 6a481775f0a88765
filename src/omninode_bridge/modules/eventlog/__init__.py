"""The eventlog module, an operator console over the event backbone: the event log, the dead-letter queues
and their re-drive, and the AsyncAPI document.

Endpoints: ``GET /events`` (follow a request end to end with ``?correlation_id=``), ``GET /events/dlq``,
``POST /events/dlq/{id}/redrive`` and ``POST /events/dlq/redrive`` (scope ``admin``), and the public
``GET /asyncapi`` (HTML) and ``GET /asyncapi.json``. The other endpoints need the scope :data:`SCOPE`
(``events``, the name keys were issued with). Its lifespan runs the DLQ monitor (DLQ sizes, consumer lag
and the threshold alert).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar.di import Provide

from omninode_bridge.core.events import DlqMonitor
from omninode_bridge.core.module import Module, Resources
from omninode_bridge.modules.eventlog.controllers import ASYNCAPI_PATH, SCOPE, AsyncApiController, EventsController
from omninode_bridge.modules.eventlog.state import EventLogState

__all__ = ["ASYNCAPI_PATH", "SCOPE", "build_module"]


def build_module(bootstrap_servers: str) -> Module:
    """The eventlog module.

    Args:
        bootstrap_servers: The Kafka broker the DLQ monitor reads offsets from.
    """
    state = EventLogState()

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        monitor = DlqMonitor(
            resources.catalog, bootstrap_servers, resources.database, resources.publisher, resources.redis
        )
        state.resources.set(resources)
        state.monitor.set(monitor)
        task = asyncio.create_task(monitor.run(), name="dlq-monitor")
        try:
            yield
        finally:
            task.cancel()
            # Bounded: a Kafka client cancelled in the middle of its start-up may never answer.
            await asyncio.wait([task], timeout=15.0)

    return Module(
        name="eventlog",
        route_handlers=[EventsController, AsyncApiController],
        dependencies={"eventlog": Provide(lambda: state, sync_to_thread=False)},
        lifespans=[lifespan],
    )
