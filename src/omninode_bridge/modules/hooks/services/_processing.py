"""The hooks processor: applies each ``HookEventReceived`` to sessions, tool calls and statistics.

It runs as the catalog consumer ``hooks.processor`` inside the idempotent-consumer machinery, so each
event is applied once, in one transaction with its ``event_processed`` record. Replays (``replay`` in
the payload) carry their original event id and are therefore skipped as duplicates here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import OnexEnvelopeV1
from omninode_bridge.modules.hooks.messages import HookEventReceived

__all__ = [
    "POST_TOOL_USE",
    "PRE_TOOL_USE",
    "SESSION_END",
    "SESSION_START",
    "apply_session_event",
    "process_hook",
    "tool_outcome",
]

PRE_TOOL_USE = "pre_tool_use"
POST_TOOL_USE = "post_tool_use"
SESSION_START = "session_start"
SESSION_END = "session_end"

# One statement per event for the event row, the statistics and the session (data-modifying CTEs on three
# tables), and one for a tool call's side: sent on the driver (asyncpg's positional parameters, its prepared
# statement cache), without SQLAlchemy's per-statement work or the ORM's select-lock-flush of the tool call.
# Sessions are keyed by (namespace, source, session_id): another source cannot end Claude Code's session.
# A session_start after the session ended (Claude Code's resume) opens it again.
_SESSION_UPSERT = """
INSERT INTO hook_sessions AS h (namespace, source, session_id, status, first_seen, last_seen, ended_at, event_count,
                                counts_by_type)
SELECT $2::varchar, $3::varchar, $6::varchar, CASE WHEN $7::boolean THEN 'ended' ELSE 'active' END,
       $5::timestamptz, $5::timestamptz, CASE WHEN $7::boolean THEN $5::timestamptz END, 1,
       jsonb_build_object($4::varchar, 1)
WHERE $6::varchar IS NOT NULL
ON CONFLICT (namespace, source, session_id) DO UPDATE SET
    first_seen = LEAST(h.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(h.last_seen, EXCLUDED.last_seen),
    event_count = h.event_count + 1,
    counts_by_type = h.counts_by_type || jsonb_build_object(
        $4::varchar, COALESCE((h.counts_by_type ->> $4::varchar)::bigint, 0) + 1),
    status = CASE WHEN $7::boolean THEN 'ended'
                  WHEN $8::boolean AND h.ended_at < EXCLUDED.last_seen THEN 'active'
                  ELSE h.status END,
    ended_at = CASE WHEN $7::boolean THEN EXCLUDED.last_seen
                    WHEN $8::boolean AND h.ended_at < EXCLUDED.last_seen THEN NULL
                    ELSE h.ended_at END
"""
_APPLY = f"""
WITH processed AS (
    UPDATE hook_events SET status = 'processed', processed_at = now() WHERE event_id = $1::uuid
), stat AS (
    INSERT INTO hooks_source_stats AS s (namespace, source, event_type, count, first_seen, last_seen)
    VALUES ($2::varchar, $3::varchar, $4::varchar, 1, $5::timestamptz, $5::timestamptz)
    ON CONFLICT (namespace, source, event_type) DO UPDATE SET
        count = s.count + 1, last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen)
){_SESSION_UPSERT}"""  # noqa: S608  # this module's constant text only
# The session upsert alone (its parameters renumbered from $1), for a batch that did the rest by itself.
_SESSION_ONLY = _SESSION_UPSERT
for _n in range(2, 9):
    _SESSION_ONLY = _SESSION_ONLY.replace(f"${_n}", f"${_n - 1}")
# Either side may come first (different keys, partitions or processes): the row is created by whichever does,
# the other side fills its columns; ON CONFLICT locks the row, as the select-for-update did. The duration is
# computed once both times are known, from the row's values after this side's.
_STARTED = "CASE WHEN $6::boolean THEN EXCLUDED.started_at ELSE t.started_at END"
_FINISHED = "CASE WHEN $6::boolean THEN t.finished_at ELSE EXCLUDED.finished_at END"
_TOOL_CALL = f"""
INSERT INTO hooks_tool_calls AS t (namespace, source, tool_call_id, session_id, tool_name, pre_event_id,
                                   post_event_id, started_at, finished_at, outcome, error, duration_ms, updated_at)
VALUES ($1::varchar, $2::varchar, $3::varchar, $4::varchar, $5::varchar, CASE WHEN $6::boolean THEN $7::uuid END,
        CASE WHEN $6::boolean THEN NULL ELSE $7::uuid END, CASE WHEN $6::boolean THEN $8::timestamptz END,
        CASE WHEN $6::boolean THEN NULL ELSE $8::timestamptz END, $9::varchar, $10::text, NULL, $11::timestamptz)
ON CONFLICT (namespace, source, tool_call_id) DO UPDATE SET
    session_id = COALESCE(t.session_id, EXCLUDED.session_id),
    tool_name = COALESCE(t.tool_name, EXCLUDED.tool_name),
    pre_event_id = CASE WHEN $6::boolean THEN EXCLUDED.pre_event_id ELSE t.pre_event_id END,
    post_event_id = CASE WHEN $6::boolean THEN t.post_event_id ELSE EXCLUDED.post_event_id END,
    started_at = {_STARTED},
    finished_at = {_FINISHED},
    outcome = CASE WHEN $6::boolean THEN t.outcome ELSE EXCLUDED.outcome END,
    error = CASE WHEN $6::boolean THEN t.error ELSE EXCLUDED.error END,
    duration_ms = CASE WHEN {_STARTED} IS NOT NULL AND {_FINISHED} IS NOT NULL
                       THEN GREATEST(0, EXTRACT(EPOCH FROM {_FINISHED} - {_STARTED}) * 1000)::double precision
                       ELSE t.duration_ms END,
    updated_at = EXCLUDED.updated_at
"""  # noqa: S608  # composed of this module's constant fragments only


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


async def apply_session_event(driver: asyncpg.Connection, hook: HookEventReceived) -> None:
    """Apply one hook to its session (counts, times and, for a start or an end, the status), in ``driver``'s
    transaction."""
    await driver.execute(
        _SESSION_ONLY, hook.namespace, hook.source, hook.event_type, hook.occurred_at, hook.session_id,
        hook.event_type == SESSION_END, hook.event_type == SESSION_START,
    )  # fmt: skip


async def process_hook(envelope: OnexEnvelopeV1, uow: UnitOfWork) -> None:
    """Mark the hook processed and update its session, its tool call and the per-source statistics."""
    hook = msgspec.convert(envelope.payload, HookEventReceived)
    at = hook.occurred_at
    driver = await uow.driver_connection()
    await driver.execute(
        _APPLY, envelope.event_id, hook.namespace, hook.source, hook.event_type, at, hook.session_id,
        hook.event_type == SESSION_END, hook.event_type == SESSION_START,
    )  # fmt: skip
    if hook.tool_call_id and hook.event_type in (PRE_TOOL_USE, POST_TOOL_USE):
        pre = hook.event_type == PRE_TOOL_USE
        outcome, error = ("pending", None) if pre else tool_outcome(hook.data)
        await driver.execute(
            _TOOL_CALL, hook.namespace, hook.source, hook.tool_call_id, hook.session_id, hook.tool_name, pre,
            envelope.event_id, at, outcome, error, dt.datetime.now(dt.UTC),
        )  # fmt: skip
