"""The event backbone: envelope, topic catalog, transactional outbox, idempotent consumers, DLQ."""

from __future__ import annotations

from omninode_bridge.core.events.catalog import CatalogError, TopicCatalog, load_catalog
from omninode_bridge.core.events.consumers import (
    ConsumerResources,
    EventHandler,
    bind_consumers,
    consume,
    dead_letter,
    subscribe,
)
from omninode_bridge.core.events.dlq import DlqMonitor
from omninode_bridge.core.events.envelope import (
    InvalidEnvelopeError,
    OnexEnvelopeV1,
    decode_envelope,
    encode_envelope,
    new_envelope,
    payload_hash,
)
from omninode_bridge.core.events.outbox import EventPublisher
from omninode_bridge.core.events.relay import OutboxRelay
from omninode_bridge.core.events.topics import ensure_topics

__all__ = [
    "CatalogError",
    "ConsumerResources",
    "DlqMonitor",
    "EventHandler",
    "EventPublisher",
    "InvalidEnvelopeError",
    "OnexEnvelopeV1",
    "OutboxRelay",
    "TopicCatalog",
    "bind_consumers",
    "consume",
    "dead_letter",
    "decode_envelope",
    "encode_envelope",
    "ensure_topics",
    "load_catalog",
    "new_envelope",
    "payload_hash",
    "subscribe",
]
