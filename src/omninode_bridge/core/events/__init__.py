"""The event backbone: envelope, topic catalog, transactional outbox, inbox, event log, idempotent consumers, DLQ.

Its tables (``event_outbox``, ``event_outbox_pending``, ``event_processed``, ``event_logs``,
``event_dead_letters``) are written and read only through the names below: other packages import this
package, never its submodules (an import-linter contract holds them to it).
"""

from __future__ import annotations

from omninode_bridge.core.events.catalog import CatalogError, GroupTiming, TopicCatalog, TopicName, load_catalog
from omninode_bridge.core.events.consumers import (
    ConsumerResources,
    EventHandler,
    bind_consumers,
    consume,
    dead_letter,
    subscribe,
)
from omninode_bridge.core.events.dead_letters import (
    DeadLetterRecord,
    latest_dead_letters,
    lock_dead_letter,
    lock_dead_letters,
    redrive,
    stored_dead_letter_counts,
)
from omninode_bridge.core.events.dlq import DlqMonitor
from omninode_bridge.core.events.envelope import (
    EnvelopeHead,
    InvalidEnvelopeError,
    OnexEnvelopeV1,
    PayloadDecoder,
    decode_envelope,
    decode_head,
    encode_envelope,
    encoded_envelopes,
    event_ids,
    kafka_headers,
    new_envelope,
    payload_hash,
)
from omninode_bridge.core.events.eventlog import LoggedEvent, event_log_page, log_consumed
from omninode_bridge.core.events.inbox import (
    already_claimed,
    claim,
    claim_and_log,
    claim_and_log_args,
    claim_and_log_sql,
    release,
)
from omninode_bridge.core.events.outbox import EventPublisher, outbox_rows_sql, staged_after
from omninode_bridge.core.events.relay import OutboxRelay
from omninode_bridge.core.events.topics import ensure_topics

__all__ = [
    "CatalogError",
    "ConsumerResources",
    "DeadLetterRecord",
    "DlqMonitor",
    "EnvelopeHead",
    "EventHandler",
    "EventPublisher",
    "GroupTiming",
    "InvalidEnvelopeError",
    "LoggedEvent",
    "OnexEnvelopeV1",
    "OutboxRelay",
    "PayloadDecoder",
    "TopicCatalog",
    "TopicName",
    "already_claimed",
    "bind_consumers",
    "claim",
    "claim_and_log",
    "claim_and_log_args",
    "claim_and_log_sql",
    "consume",
    "dead_letter",
    "decode_envelope",
    "decode_head",
    "encode_envelope",
    "encoded_envelopes",
    "ensure_topics",
    "event_ids",
    "event_log_page",
    "kafka_headers",
    "latest_dead_letters",
    "load_catalog",
    "lock_dead_letter",
    "lock_dead_letters",
    "log_consumed",
    "new_envelope",
    "outbox_rows_sql",
    "payload_hash",
    "redrive",
    "release",
    "staged_after",
    "stored_dead_letter_counts",
    "subscribe",
]
