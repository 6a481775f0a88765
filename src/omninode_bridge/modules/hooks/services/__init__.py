"""The hooks module's services: ingest, processing, queries, statistics, webhook sources, live feed and retention."""

from __future__ import annotations

from omninode_bridge.modules.hooks.services._claude_code import (
    CLAUDE_CODE_EVENT_TYPES,
    CLAUDE_CODE_SOURCE,
    claude_code_event_type,
    claude_code_hook,
    decode_batch,
    decode_hook,
    parse_batch,
    parse_claude_code,
    parse_hook,
)
from omninode_bridge.modules.hooks.services._ingest import (
    HookIngestService,
    body_hash,
    event_type_of,
    json_path,
)
from omninode_bridge.modules.hooks.services._live import (
    LIVE_STREAM,
    LiveFeed,
    StreamFilter,
    StreamGrant,
    TicketBook,
    reader_client,
    sse_events,
    valid_stream_id,
)
from omninode_bridge.modules.hooks.services._processing import process_hook, tool_outcome
from omninode_bridge.modules.hooks.services._processing_batch import process_hooks
from omninode_bridge.modules.hooks.services._queries import HookQueryService, to_event
from omninode_bridge.modules.hooks.services._retention import RetentionPurger
from omninode_bridge.modules.hooks.services._sources import WebhookSourceService, to_source
from omninode_bridge.modules.hooks.services._stats import HookStatsService

__all__ = [
    "CLAUDE_CODE_EVENT_TYPES",
    "CLAUDE_CODE_SOURCE",
    "LIVE_STREAM",
    "HookIngestService",
    "HookQueryService",
    "HookStatsService",
    "LiveFeed",
    "RetentionPurger",
    "StreamFilter",
    "StreamGrant",
    "TicketBook",
    "WebhookSourceService",
    "body_hash",
    "claude_code_event_type",
    "claude_code_hook",
    "decode_batch",
    "decode_hook",
    "event_type_of",
    "json_path",
    "parse_batch",
    "parse_claude_code",
    "parse_hook",
    "process_hook",
    "process_hooks",
    "reader_client",
    "sse_events",
    "to_event",
    "to_source",
    "tool_outcome",
    "valid_stream_id",
]
