"""Bodies of the hooks queries: stored events, sessions, tool calls, statistics and stream tickets."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec


class HookEvent(msgspec.Struct):
    """A stored hook event."""

    id: int
    event_id: uuid.UUID
    kind: str
    source: str
    namespace: str
    event_type: str
    session_id: str | None
    correlation_id: str
    tool_name: str | None
    tool_call_id: str | None
    occurred_at: dt.datetime
    received_at: dt.datetime
    status: str
    processed_at: dt.datetime | None
    data: dict[str, Any]
    redacted: bool
    body_hash: str | None = None
    content_type: str | None = None
    batch_id: uuid.UUID | None = None


class HookEventPage(msgspec.Struct):
    """Events newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[HookEvent]
    next_cursor: str | None


class ToolCall(msgspec.Struct):
    """A tool call: its pre and post events paired by ``tool_call_id``."""

    tool_call_id: str
    tool_name: str | None
    pre_event_id: uuid.UUID | None
    post_event_id: uuid.UUID | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_ms: float | None
    outcome: str
    error: str | None


class HookSessionSummary(msgspec.Struct):
    """A session as the processor maintains it."""

    session_id: str
    source: str
    namespace: str
    status: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    ended_at: dt.datetime | None
    event_count: int
    counts_by_type: dict[str, int]


class HookSessionPage(msgspec.Struct):
    """Sessions, most recently active first."""

    items: list[HookSessionSummary]
    next_cursor: str | None


class HookSessionDetail(msgspec.Struct):
    """A session's timeline: its events oldest first and its paired tool calls."""

    session: HookSessionSummary
    events: list[HookEvent]
    tool_calls: list[ToolCall]
    events_truncated: bool = False


class SourceStat(msgspec.Struct):
    """Processed events of one source and type."""

    source: str
    event_type: str
    count: int
    last_seen: dt.datetime


class ToolStat(msgspec.Struct):
    """Calls of one tool and their durations (completed calls only)."""

    tool_name: str
    calls: int
    completed: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


class HookStats(msgspec.Struct):
    """Per source/type counts and per tool durations."""

    sources: list[SourceStat]
    tools: list[ToolStat]
    events_total: int
    sessions_total: int


class StreamTicket(msgspec.Struct):
    """A short-lived credential for ``GET /hooks/stream?ticket=`` (browsers' EventSource sends no headers)."""

    ticket: str
    expires_in: int
