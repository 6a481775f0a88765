"""The eventlog module, an operator console over the event backbone: the event log, the dead-letter queues
and their re-drive, and the AsyncAPI document.

Endpoints: ``GET /events`` (follow a request end to end with ``?correlation_id=``), ``GET /events/dlq``,
``POST /events/dlq/{id}/redrive`` and ``POST /events/dlq/redrive`` (scope ``admin``), and the public
``GET /asyncapi`` (HTML) and ``GET /asyncapi.json``. The other endpoints need the scope :data:`SCOPE`
(``events``, the name keys were issued with).
"""

from __future__ import annotations

from omninode_bridge.core.module import Module
from omninode_bridge.modules.eventlog.controllers import ASYNCAPI_PATH, SCOPE, AsyncApiController, EventsController

__all__ = ["ASYNCAPI_PATH", "MODULE", "SCOPE"]

MODULE = Module(name="eventlog", route_handlers=[EventsController, AsyncApiController])
