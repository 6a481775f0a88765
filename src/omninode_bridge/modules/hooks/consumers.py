"""The hooks processor: the catalog consumer ``hooks.processor`` of the hook topic."""

from __future__ import annotations

from faststream.kafka import KafkaRouter

from omninode_bridge.core.events import TopicCatalog, subscribe
from omninode_bridge.modules.hooks.services import process_hook

__all__ = ["PROCESSOR", "build_router"]

PROCESSOR = "hooks.processor"


def build_router(catalog: TopicCatalog) -> KafkaRouter:
    """The hooks module's FastStream router, bound to the catalog."""
    router = KafkaRouter()
    subscribe(router, catalog, PROCESSOR, process_hook)
    return router
