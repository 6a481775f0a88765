"""The hooks processor over a batch: what :func:`process_hook` does to each event, in a few set-based statements.

Per batch, whatever its size: the events' rows marked processed (one ``UPDATE``), the per-source statistics
(one upsert of the batch's counts per namespace, source and event type), the sessions (one upsert of each
session's counts), the tool calls (one upsert of each call's sides), plus one statement per session start or
end, applied in order. The result is what applying the events one by one in order gives: counts and
first/last times add up in any order; a tool call's side is the last one of the batch; only session starts
and ends depend on what came before, so they alone are applied one at a time (after the counts, which
never touch a session's status).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.modules.hooks.messages import HookEventReceived
from omninode_bridge.modules.hooks.services._processing import (
    POST_TOOL_USE,
    PRE_TOOL_USE,
    SESSION_END,
    SESSION_START,
    apply_session_event,
    tool_outcome,
)

__all__ = ["process_hooks"]

_json = msgspec.json.Encoder()

_PROCESSED = "UPDATE hook_events SET status = 'processed', processed_at = now() WHERE event_id = ANY($1::uuid[])"
_STATS = """
INSERT INTO hooks_source_stats AS s (namespace, source, event_type, count, first_seen, last_seen)
SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
ON CONFLICT (namespace, source, event_type) DO UPDATE SET
    count = s.count + EXCLUDED.count, last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen)
"""
_SESSIONS = """
INSERT INTO hook_sessions AS h (namespace, source, session_id, status, first_seen, last_seen, ended_at, event_count,
                                counts_by_type)
SELECT g.namespace, g.source, g.session_id, 'active', g.first_seen, g.last_seen, NULL, g.events, g.counts
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::timestamptz[], $5::timestamptz[], $6::bigint[],
            $7::jsonb[]) AS g(namespace, source, session_id, first_seen, last_seen, events, counts)
ON CONFLICT (namespace, source, session_id) DO UPDATE SET
    first_seen = LEAST(h.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(h.last_seen, EXCLUDED.last_seen),
    event_count = h.event_count + EXCLUDED.event_count,
    counts_by_type = h.counts_by_type || (
        SELECT jsonb_object_agg(c.key, COALESCE((h.counts_by_type ->> c.key)::bigint, 0) + c.value::bigint)
        FROM jsonb_each_text(EXCLUDED.counts_by_type) AS c(key, value))
"""
# A side given in the batch replaces the row's (the last of the batch wins, as one by one); the duration is
# computed from the row's times after the batch's.
_STARTED = "CASE WHEN EXCLUDED.pre_event_id IS NOT NULL THEN EXCLUDED.started_at ELSE t.started_at END"
_FINISHED = "CASE WHEN EXCLUDED.post_event_id IS NOT NULL THEN EXCLUDED.finished_at ELSE t.finished_at END"
_TOOL_CALLS = f"""
INSERT INTO hooks_tool_calls AS t (namespace, source, tool_call_id, session_id, tool_name, pre_event_id,
                                   post_event_id, started_at, finished_at, outcome, error, duration_ms, updated_at)
SELECT c.namespace, c.source, c.tool_call_id, c.session_id, c.tool_name, c.pre_event_id, c.post_event_id,
       c.started_at, c.finished_at, c.outcome, c.error,
       CASE WHEN c.started_at IS NOT NULL AND c.finished_at IS NOT NULL
            THEN GREATEST(0, EXTRACT(EPOCH FROM c.finished_at - c.started_at) * 1000)::double precision END,
       $12::timestamptz
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::uuid[], $7::uuid[],
            $8::timestamptz[], $9::timestamptz[], $10::varchar[], $11::text[])
     AS c(namespace, source, tool_call_id, session_id, tool_name, pre_event_id, post_event_id, started_at,
          finished_at, outcome, error)
ON CONFLICT (namespace, source, tool_call_id) DO UPDATE SET
    session_id = COALESCE(t.session_id, EXCLUDED.session_id),
    tool_name = COALESCE(t.tool_name, EXCLUDED.tool_name),
    pre_event_id = COALESCE(EXCLUDED.pre_event_id, t.pre_event_id),
    post_event_id = COALESCE(EXCLUDED.post_event_id, t.post_event_id),
    started_at = {_STARTED},
    finished_at = {_FINISHED},
    outcome = CASE WHEN EXCLUDED.post_event_id IS NOT NULL THEN EXCLUDED.outcome ELSE t.outcome END,
    error = CASE WHEN EXCLUDED.post_event_id IS NOT NULL THEN EXCLUDED.error ELSE t.error END,
    duration_ms = CASE WHEN {_STARTED} IS NOT NULL AND {_FINISHED} IS NOT NULL
                       THEN GREATEST(0, EXTRACT(EPOCH FROM {_FINISHED} - {_STARTED}) * 1000)::double precision
                       ELSE t.duration_ms END,
    updated_at = EXCLUDED.updated_at
"""  # noqa: S608  # composed of this module's constant fragments only


@dataclass(slots=True)
class _Counts:
    """What a batch adds to one statistics row or session."""

    first: dt.datetime
    last: dt.datetime
    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, hook: HookEventReceived) -> None:
        self.first = min(self.first, hook.occurred_at)
        self.last = max(self.last, hook.occurred_at)
        self.events += 1
        self.by_type[hook.event_type] = self.by_type.get(hook.event_type, 0) + 1


@dataclass(slots=True)
class _Call:
    """A tool call's sides as the batch leaves them (None: the batch has no such side)."""

    session_id: str | None = None
    tool_name: str | None = None
    pre: tuple[uuid.UUID, dt.datetime] | None = None
    post: tuple[uuid.UUID, dt.datetime, str, str | None] | None = None


async def process_hooks(uow: UnitOfWork, events: Sequence[tuple[uuid.UUID, HookEventReceived]]) -> None:
    """Apply a batch of ``(event id, payload)`` in ``uow`` (claimed already, in the order they were consumed)."""
    if not events:
        return
    stats: dict[tuple[str, str, str], _Counts] = {}
    sessions: dict[tuple[str, str, str], _Counts] = {}
    status_events: list[HookEventReceived] = []
    calls: dict[tuple[str, str, str], _Call] = {}
    for event_id, hook in events:
        at = hook.occurred_at
        stat = stats.get((hook.namespace, hook.source, hook.event_type))
        if stat is None:
            # The row a first event creates keeps that event's time as first_seen (later ones only move last_seen).
            stat = stats[(hook.namespace, hook.source, hook.event_type)] = _Counts(at, at)
        stat.events += 1
        stat.last = max(stat.last, at)
        if hook.session_id:
            if hook.event_type in (SESSION_START, SESSION_END):
                status_events.append(hook)
            else:
                key = (hook.namespace, hook.source, hook.session_id)
                session = sessions.get(key)
                if session is None:
                    session = sessions[key] = _Counts(at, at)
                session.add(hook)
        if hook.tool_call_id and hook.event_type in (PRE_TOOL_USE, POST_TOOL_USE):
            call = calls.setdefault((hook.namespace, hook.source, hook.tool_call_id), _Call())
            call.session_id = call.session_id or hook.session_id
            call.tool_name = call.tool_name or hook.tool_name
            if hook.event_type == PRE_TOOL_USE:
                call.pre = (event_id, at)
            else:
                call.post = (event_id, at, *tool_outcome(hook.data))
    driver = await uow.driver_connection()
    await driver.execute(_PROCESSED, [event_id for event_id, _ in events])
    await driver.execute(
        _STATS, [k[0] for k in stats], [k[1] for k in stats], [k[2] for k in stats],
        [s.events for s in stats.values()], [s.first for s in stats.values()], [s.last for s in stats.values()],
    )  # fmt: skip
    if sessions:
        await driver.execute(
            _SESSIONS, [k[0] for k in sessions], [k[1] for k in sessions], [k[2] for k in sessions],
            [s.first for s in sessions.values()], [s.last for s in sessions.values()],
            [s.events for s in sessions.values()], [_json.encode(s.by_type).decode() for s in sessions.values()],
        )  # fmt: skip
    for hook in status_events:
        await apply_session_event(driver, hook)
    if calls:
        rows = list(calls.items())
        await driver.execute(
            _TOOL_CALLS, [k[0] for k, _ in rows], [k[1] for k, _ in rows], [k[2] for k, _ in rows],
            [c.session_id for _, c in rows], [c.tool_name for _, c in rows],
            [c.pre[0] if c.pre else None for _, c in rows], [c.post[0] if c.post else None for _, c in rows],
            [c.pre[1] if c.pre else None for _, c in rows], [c.post[1] if c.post else None for _, c in rows],
            [c.post[2] if c.post else "pending" for _, c in rows], [c.post[3] if c.post else None for _, c in rows],
            dt.datetime.now(dt.UTC),
        )  # fmt: skip
