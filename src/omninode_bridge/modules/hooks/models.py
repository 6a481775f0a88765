"""Hooks tables: events, webhook sources, idempotency claims, sessions, tool calls and statistics.

``hook_events`` and ``hook_sessions`` keep the names of the mission; the module's other tables are
prefixed ``hooks_``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    Identity,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = [
    "HOOK_EVENTS_TABLE",
    "HookEvent",
    "HookSession",
    "IdempotencyClaim",
    "SourceStat",
    "ToolCall",
    "WebhookSource",
]


class HookEvent(DefaultBase):
    """One accepted hook or webhook; ``data`` is already redacted."""

    __tablename__ = "hook_events"
    __table_args__ = (
        Index("ix_hook_events_source_id", "source", "id"),
        Index("ix_hook_events_namespace_id", "namespace", "id"),
        Index("ix_hook_events_session_id", "session_id", "id", postgresql_where=text("session_id IS NOT NULL")),
        Index("ix_hook_events_correlation_id", "correlation_id"),
        Index("ix_hook_events_batch_id", "batch_id", postgresql_where=text("batch_id IS NOT NULL")),
        # BRIN: rows arrive in time order, so the retention purge finds old rows for almost no insert cost.
        Index("ix_hook_events_received_at", "received_at", postgresql_using="brin"),
        # Room on each page for the one update every row gets (processed): a HOT update, no index touched
        # (migration 0013).
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    kind: Mapped[str] = mapped_column(String(16), comment="hook (POST /hooks) or webhook (POST /hooks/{source})")
    source: Mapped[str] = mapped_column(String(100))
    namespace: Mapped[str] = mapped_column(String(255), default="default", server_default="default")
    event_type: Mapped[str] = mapped_column(String(128))
    session_id: Mapped[str | None] = mapped_column(String(255), default=None)
    correlation_id: Mapped[str] = mapped_column(String(255))
    tool_name: Mapped[str | None] = mapped_column(String(255), default=None)
    tool_call_id: Mapped[str | None] = mapped_column(String(255), default=None)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    received_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="The hook's data with secrets redacted")
    body_hash: Mapped[str | None] = mapped_column(String(64), default=None, comment="BLAKE3 of the raw body")
    raw_body: Mapped[bytes | None] = mapped_column(
        LargeBinary, default=None, comment="Verified webhook body, kept only when nothing in it was redacted"
    )
    content_type: Mapped[str | None] = mapped_column(String(255), default=None)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status: Mapped[str] = mapped_column(String(16), default="accepted", server_default="accepted")
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    key_id: Mapped[uuid.UUID | None] = mapped_column(default=None, comment="API key that posted it")


#: The class's table, for Core statements (SQLAlchemy annotates ``__table__`` as the wider FromClause).
HOOK_EVENTS_TABLE = cast("Table", HookEvent.__table__)


class WebhookSource(DefaultBase):
    """A third party allowed to post to ``POST /hooks/{name}``, with its signing scheme and secrets."""

    __tablename__ = "hooks_sources"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    namespace: Mapped[str] = mapped_column(
        String(255), default="default", server_default="default", comment="Namespace of the hooks it posts"
    )
    scheme: Mapped[str] = mapped_column(String(32), comment="standard_webhooks, github or none")
    secrets: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    event_type_header: Mapped[str | None] = mapped_column(String(128), default=None)
    event_type_path: Mapped[str | None] = mapped_column(String(255), default=None)
    default_event_type: Mapped[str] = mapped_column(String(128), default="webhook")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


class IdempotencyClaim(DefaultBase):
    """Which event a webhook-id, Idempotency-Key or body hash produced, until ``expires_at``."""

    __tablename__ = "hooks_idempotency"
    __table_args__ = (Index("ix_hooks_idempotency_expires_at", "expires_at"),)

    scope: Mapped[str] = mapped_column(String(120), primary_key=True, comment="hook:<source>, webhook:<source>...")
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(comment="The event, or the batch id of a batch")
    expires_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))


class HookSession(DefaultBase):
    """An agent or service session, maintained by the hooks processor.

    Keyed by (namespace, source, session_id): another source, or another namespace, cannot touch it.
    """

    __tablename__ = "hook_sessions"
    __table_args__ = (
        Index("ix_hook_sessions_last_seen", "last_seen"),
        Index("ix_hook_sessions_session_id", "session_id"),
    )

    namespace: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), comment="active or ended")
    first_seen: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    last_seen: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    event_count: Mapped[int] = mapped_column(BigInteger, default=0)
    counts_by_type: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)


class ToolCall(DefaultBase):
    """A ``pre_tool_use`` paired with its ``post_tool_use`` by ``tool_call_id`` (either may arrive first)."""

    __tablename__ = "hooks_tool_calls"
    __table_args__ = (
        UniqueConstraint("namespace", "source", "tool_call_id"),
        Index("ix_hooks_tool_calls_session_id", "session_id", postgresql_where=text("session_id IS NOT NULL")),
        Index("ix_hooks_tool_calls_tool_name", "tool_name"),
        Index("ix_hooks_tool_calls_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(255), default="default", server_default="default")
    source: Mapped[str] = mapped_column(String(100))
    tool_call_id: Mapped[str] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(255), default=None)
    tool_name: Mapped[str | None] = mapped_column(String(255), default=None)
    pre_event_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    post_event_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    duration_ms: Mapped[float | None] = mapped_column(default=None)
    outcome: Mapped[str] = mapped_column(String(16), default="pending", comment="pending, success or error")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


class SourceStat(DefaultBase):
    """Events processed per namespace, source and event type."""

    __tablename__ = "hooks_source_stats"

    namespace: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    last_seen: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
