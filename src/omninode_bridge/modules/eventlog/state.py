"""The eventlog module's per-app state: the DLQ monitor it runs and the AsyncAPI document it serves."""

from __future__ import annotations

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import DlqMonitor
from omninode_bridge.core.module import Resources, Started
from omninode_bridge.modules.eventlog.services import AsyncApiDocument, DeadLetterService, asyncapi_document

__all__ = ["EventLogState"]


class EventLogState:
    """What the eventlog endpoints share in one app; the module's lifespan fills it."""

    def __init__(self) -> None:
        self.resources: Started[Resources] = Started("the eventlog module's resources")
        self.monitor: Started[DlqMonitor] = Started("the DLQ monitor")
        self._asyncapi: AsyncApiDocument | None = None

    def dead_letters(self, uow: UnitOfWork) -> DeadLetterService:
        """The dead-letter service of a request."""
        resources = self.resources.get()
        return DeadLetterService(uow, resources.catalog, resources.publisher, self.monitor.get())

    def asyncapi(self) -> AsyncApiDocument:
        """The AsyncAPI document of the app's broker, built on first use (the same object afterwards)."""
        if self._asyncapi is None:
            resources = self.resources.get()
            self._asyncapi = asyncapi_document(resources.broker, resources.catalog)
        return self._asyncapi
