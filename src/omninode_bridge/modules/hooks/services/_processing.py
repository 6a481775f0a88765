"""The hooks processor: applies each ``HookEventReceived`` to sessions, tool calls and statistics.

It runs as the catalog consumer ``hooks.processor`` inside the idempotent-consumer machinery, so each
event is applied once, in one transaction with its ``event_processed`` record. Replays (``replay`` in
the payload) carry their original event id and are therefore skipped as duplicates here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import OnexEnvelopeV1
from omninode_bridge.modules.hooks.messages import HookEventReceived
from omninode_bridge.modules.hooks.models import HookEvent, SourceStat, ToolCall

__all__ = ["POST_TOOL_USE", "PRE_TOOL_USE", "SESSION_END", "SESSION_START", "process_hook", "tool_outcome"]

PRE_TOOL_USE = "pre_tool_use"
POST_TOOL_USE = "post_tool_use"
SESSION_START = "session_start"
SESSION_END = "session_end"

# Sessions are keyed by (namespace, source, session_id): another source cannot end Claude Code's session.
# A session_start after the session ended (Claude Code's resume) opens it again.
_SESSION_UPSERT = text(
    """
    INSERT INTO hook_sessions (namespace, source, session_id, status, first_seen, last_seen, ended_at, event_count,
                               counts_by_type)
    VALUES (:namespace, :source, :session_id, CASE WHEN :ended THEN 'ended' ELSE 'active' END, :at, :at,
            CASE WHEN :ended THEN CAST(:at AS timestamptz) END, 1, jsonb_build_object(CAST(:event_type AS text), 1))
    ON CONFLICT (namespace, source, session_id) DO UPDATE SET
        first_seen = LEAST(hook_sessions.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(hook_sessions.last_seen, EXCLUDED.last_seen),
        event_count = hook_sessions.event_count + 1,
        counts_by_type = hook_sessions.counts_by_type || jsonb_build_object(
            CAST(:event_type AS text),
            COALESCE((hook_sessions.counts_by_type ->> CAST(:event_type AS text))::bigint, 0) + 1),
        status = CASE WHEN :ended THEN 'ended'
                      WHEN :started AND hook_sessions.ended_at < EXCLUDED.last_seen THEN 'active'
                      ELSE hook_sessions.status END,
        ended_at = CASE WHEN :ended THEN EXCLUDED.last_seen
                        WHEN :started AND hook_sessions.ended_at < EXCLUDED.last_seen THEN NULL
                        ELSE hook_sessions.ended_at END
    """
)


def tool_outcome(data: dict[str, Any] | None) -> tuple[str, str | None]:
    """(``success`` or ``error``, error text) of a ``post_tool_use``'s data.

    Claude Code's ``PostToolUseFailure``, an ``error`` value, ``success: false``, ``is_error: true`` or a
    ``status`` of error/failed/failure means the call failed.
    """
    if not data:
        return "success", None
    if data.get("hook_event_name") == "PostToolUseFailure":
        error = data.get("error")
        text_ = error if isinstance(error, str) else (msgspec.json.encode(error).decode() if error else None)
        return "error", (text_ or ("interrupted" if data.get("is_interrupt") else "tool call failed"))[:2000]
    error = data.get("error")
    status = str(data.get("status", "")).lower()
    if (
        error
        or data.get("success") is False
        or data.get("is_error") is True
        or status in {"error", "failed", "failure"}
    ):
        text_ = error if isinstance(error, str) else (msgspec.json.encode(error).decode() if error else status or None)
        return "error", text_[:2000] if text_ else None
    return "success", None


async def process_hook(envelope: OnexEnvelopeV1, uow: UnitOfWork) -> None:
    """Mark the hook processed and update its session, its tool call and the per-source statistics."""
    hook = msgspec.convert(envelope.payload, HookEventReceived)
    session = uow.session
    at = hook.occurred_at
    await session.execute(
        update(HookEvent)
        .where(HookEvent.event_id == envelope.event_id)
        .values(status="processed", processed_at=func.now())
    )
    stat = pg_insert(SourceStat).values(namespace=hook.namespace, source=hook.source, event_type=hook.event_type,
                                        count=1, first_seen=at, last_seen=at)  # fmt: skip
    await session.execute(
        stat.on_conflict_do_update(
            index_elements=[SourceStat.namespace, SourceStat.source, SourceStat.event_type],
            set_={
                "count": SourceStat.count + 1,
                "last_seen": func.greatest(SourceStat.last_seen, stat.excluded.last_seen),
            },
        )
    )
    if hook.session_id:
        await session.execute(
            _SESSION_UPSERT,
            {"session_id": hook.session_id, "source": hook.source, "namespace": hook.namespace, "at": at,
             "event_type": hook.event_type, "ended": hook.event_type == SESSION_END,
             "started": hook.event_type == SESSION_START},
        )  # fmt: skip
    if hook.tool_call_id and hook.event_type in (PRE_TOOL_USE, POST_TOOL_USE):
        await _pair_tool_call(uow, envelope, hook)


async def _pair_tool_call(uow: UnitOfWork, envelope: OnexEnvelopeV1, hook: HookEventReceived) -> None:
    """Record one side of a tool call; when both sides are in, its duration and outcome."""
    session = uow.session
    assert hook.tool_call_id is not None
    # Pre and post may be processed in either order (different keys, partitions or processes): create the
    # row if needed, then lock it.
    await session.execute(
        pg_insert(ToolCall)
        .values(namespace=hook.namespace, source=hook.source, tool_call_id=hook.tool_call_id)
        .on_conflict_do_nothing(index_elements=[ToolCall.namespace, ToolCall.source, ToolCall.tool_call_id])
    )
    call = await session.scalar(
        select(ToolCall)
        .where(
            ToolCall.namespace == hook.namespace,
            ToolCall.source == hook.source,
            ToolCall.tool_call_id == hook.tool_call_id,
        )
        .with_for_update()
    )
    assert call is not None
    call.session_id = call.session_id or hook.session_id
    call.tool_name = call.tool_name or hook.tool_name
    if hook.event_type == PRE_TOOL_USE:
        call.pre_event_id = envelope.event_id
        call.started_at = hook.occurred_at
    else:
        call.post_event_id = envelope.event_id
        call.finished_at = hook.occurred_at
        call.outcome, call.error = tool_outcome(hook.data)
    if call.started_at is not None and call.finished_at is not None:
        call.duration_ms = max(0.0, (call.finished_at - call.started_at) / dt.timedelta(milliseconds=1))
    call.updated_at = dt.datetime.now(dt.UTC)
    await session.flush()
