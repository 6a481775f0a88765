"""The event log, dead letters and their re-drive, and the AsyncAPI document of the broker.

Services stage their changes in the caller's unit of work and commit themselves; nothing here opens a
transaction of its own. Dead letters are re-driven through the transactional outbox, so a re-drive
that rolls back publishes nothing and one that commits is never lost.
"""

from __future__ import annotations

from omninode_bridge.modules.eventlog.services._asyncapi import AsyncApiDocument, asyncapi_document
from omninode_bridge.modules.eventlog.services._dead_letters import (
    KAFKA_CHECK_TIMEOUT_SECONDS,
    DeadLetterService,
)
from omninode_bridge.modules.eventlog.services._event_log import EventLogService

__all__ = [
    "KAFKA_CHECK_TIMEOUT_SECONDS",
    "AsyncApiDocument",
    "DeadLetterService",
    "EventLogService",
    "asyncapi_document",
]
