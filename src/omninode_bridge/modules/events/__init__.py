"""The events module: the event log, dead-letter queues and their re-drive, and the AsyncAPI document.

Endpoints: ``GET /events`` (follow a request end to end with ``?correlation_id=``), ``GET /events/dlq``,
``POST /events/dlq/{id}/redrive`` and ``POST /events/dlq/redrive`` (scope ``admin``), and the public
``GET /asyncapi`` (HTML) and ``GET /asyncapi.json``.
"""

from __future__ import annotations

from omninode_bridge.core.module import Module
from omninode_bridge.modules.events.controllers import ASYNCAPI_PATH, AsyncApiController, EventsController

__all__ = ["ASYNCAPI_PATH", "MODULE"]

MODULE = Module(name="events", route_handlers=[EventsController, AsyncApiController])
