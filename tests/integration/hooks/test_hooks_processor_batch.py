"""The batch processor leaves sessions, tool calls and statistics exactly as applying the events one by one."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import new_envelope
from omninode_bridge.modules.hooks.messages import EVENT_TYPE, HookEventReceived
from omninode_bridge.modules.hooks.services import process_hook, process_hooks
from omninode_bridge.settings import Settings
from tests.integration.conftest import sql_rows

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _events(namespace: str) -> list[tuple[uuid.UUID, HookEventReceived]]:
    """Starts, ends and a resume; tool calls paired in order, reversed, split across batches, repeated."""
    steps: list[tuple[str, int, dict[str, Any]]] = [
        ("session_start", 0, {}),
        ("pre_tool_use", 1, {"tool_call_id": "c1"}),
        ("post_tool_use", 2, {"tool_call_id": "c1", "data": {"error": "exit 1"}}),
        ("post_tool_use", 5, {"tool_call_id": "c2"}),
        ("pre_tool_use", 3, {"tool_call_id": "c2"}),
        ("notification", 4, {}),
        ("pre_tool_use", 6, {"tool_call_id": "c3"}),
        ("pre_tool_use", 7, {"tool_call_id": "c3"}),  # a repeated side: the last one counts
        ("session_end", 10, {}),
        ("notification", 11, {"session_id": "other"}),
        ("session_start", 12, {}),  # a resume opens the session again
        ("post_tool_use", 13, {"tool_call_id": "c3", "data": {"ok": True}}),
        ("post_tool_use", 14, {"tool_call_id": "c4", "session_id": None}),
        ("stop", 15, {}),
        ("session_end", 9, {"session_id": "late"}),
    ]
    events = []
    for event_type, second, extra in steps:
        fields: dict[str, Any] = {"session_id": "s1", "tool_name": "Bash", "data": {}, **extra}
        hook = HookEventReceived(
            kind="hook", source="agent", namespace=namespace, event_type=event_type, correlation_id="c",
            occurred_at=T0 + dt.timedelta(seconds=second), **fields,
        )  # fmt: skip
        events.append((uuid.uuid4(), hook))
    return events


async def _state(database_url: str, namespace: str) -> list[Any]:
    return [
        await sql_rows(database_url, "SELECT session_id, status, first_seen, last_seen, ended_at, event_count, "
                       "counts_by_type FROM hook_sessions WHERE namespace = :n ORDER BY session_id", n=namespace),
        await sql_rows(database_url, "SELECT tool_call_id, session_id, tool_name, started_at, finished_at, "
                       "duration_ms, outcome, error FROM hooks_tool_calls WHERE namespace = :n ORDER BY tool_call_id",
                       n=namespace),
        await sql_rows(database_url, "SELECT event_type, count, first_seen, last_seen FROM hooks_source_stats "
                       "WHERE namespace = :n ORDER BY event_type", n=namespace),
    ]  # fmt: skip


async def test_batches_apply_as_one_by_one(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    one_by_one, batched = f"one-{run}", f"batch-{run}"
    database = Database(settings.database)
    try:
        for event_id, hook in _events(one_by_one):
            envelope = new_envelope(event_type=EVENT_TYPE, payload=msgspec.to_builtins(hook), event_id=event_id)
            async with database.unit_of_work() as uow:
                await process_hook(envelope, uow)
                await uow.commit()
        events = _events(batched)
        for chunk in (events[:4], events[4:]):  # the second batch meets the rows the first one wrote
            async with database.unit_of_work() as uow:
                await process_hooks(uow, chunk)
                await uow.commit()
    finally:
        await database.dispose()
    url = settings.database.url or ""
    expected, got = await _state(url, one_by_one), await _state(url, batched)
    assert all(expected), "every table has rows to compare"
    assert got == expected
