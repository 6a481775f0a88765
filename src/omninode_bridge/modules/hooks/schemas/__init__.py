"""Request and response bodies of the hooks endpoints (event payloads are in :mod:`..messages`)."""

from __future__ import annotations

from omninode_bridge.modules.hooks.schemas._ingest import (
    ClaudeCodeHookIn,
    HookAccepted,
    HookBatch,
    HookBatchAccepted,
    HookEventIn,
    ToolCallPair,
)
from omninode_bridge.modules.hooks.schemas._queries import (
    HookEvent,
    HookEventPage,
    HookSessionDetail,
    HookSessionPage,
    HookSessionSummary,
    HookStats,
    SourceStat,
    StreamTicket,
    ToolCall,
    ToolStat,
)
from omninode_bridge.modules.hooks.schemas._sources import (
    WebhookSource,
    WebhookSourceCreate,
    WebhookSourceUpdate,
)
from omninode_bridge.modules.hooks.schemas._types import (
    DEFAULT_NAMESPACE,
    EVENT_TYPE_PATTERN,
    RESERVED_SOURCE_NAMES,
    CorrelationId,
    EventType,
    FreeText,
    HookEventName,
    Label,
    SigningScheme,
    SourceName,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "EVENT_TYPE_PATTERN",
    "RESERVED_SOURCE_NAMES",
    "ClaudeCodeHookIn",
    "CorrelationId",
    "EventType",
    "FreeText",
    "HookAccepted",
    "HookBatch",
    "HookBatchAccepted",
    "HookEvent",
    "HookEventIn",
    "HookEventName",
    "HookEventPage",
    "HookSessionDetail",
    "HookSessionPage",
    "HookSessionSummary",
    "HookStats",
    "Label",
    "SigningScheme",
    "SourceName",
    "SourceStat",
    "StreamTicket",
    "ToolCall",
    "ToolCallPair",
    "ToolStat",
    "WebhookSource",
    "WebhookSourceCreate",
    "WebhookSourceUpdate",
]
