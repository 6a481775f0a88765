"""Retention: hook events, sessions and tool calls older than ``retention_days`` are deleted in bounded
batches; expired idempotency claims too."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, delete, select

from omninode_bridge.core.db import Database
from omninode_bridge.core.safe_errors import loggable_error
from omninode_bridge.modules.hooks.models import HookEvent, HookSession, IdempotencyClaim, ToolCall
from omninode_bridge.modules.hooks.settings import HooksSettings

__all__ = ["RetentionPurger"]

log = structlog.get_logger(__name__)

#: Delay before the first purge after start-up, so a restart loop does not hammer the database.
FIRST_RUN_DELAY_SECONDS = 30.0


class RetentionPurger:
    """Deletes old hooks data; one transaction per batch so no lock is held for long.

    Args:
        database: The app's database.
        settings: Retention days, batch size and interval.
    """

    def __init__(self, database: Database, settings: HooksSettings) -> None:
        self.database = database
        self.settings = settings

    async def run(self) -> None:
        """Purge every ``purge_interval_seconds`` until cancelled; failures are logged and retried later."""
        await asyncio.sleep(FIRST_RUN_DELAY_SECONDS)
        while True:
            try:
                removed = await self.purge_once()
                if any(removed.values()):
                    log.info("hooks retention purge", **removed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("hooks retention purge failed", error=loggable_error(exc))
            await asyncio.sleep(self.settings.purge_interval_seconds)

    async def purge_once(self, now: dt.datetime | None = None) -> dict[str, int]:
        """One full purge; returns the rows removed per table."""
        now = now or dt.datetime.now(dt.UTC)
        cutoff = now - dt.timedelta(days=self.settings.retention_days)
        return {
            "hook_events": await self._purge(HookEvent, HookEvent.id, HookEvent.received_at < cutoff),
            "hooks_tool_calls": await self._purge(ToolCall, ToolCall.id, ToolCall.updated_at < cutoff),
            "hook_sessions": await self._purge(HookSession, HookSession.session_id, HookSession.last_seen < cutoff),
            "hooks_idempotency": await self._purge_claims(now),
        }

    async def _purge(self, model: Any, key: Any, condition: Any) -> int:
        removed = 0
        batch = self.settings.purge_batch_size
        while True:
            async with self.database.unit_of_work() as uow:
                doomed = select(key).where(condition).limit(batch).with_for_update(skip_locked=True).scalar_subquery()
                result = await uow.session.execute(delete(model).where(key.in_(doomed)))
                await uow.commit()
            count = cast("CursorResult[Any]", result).rowcount or 0  # a DELETE's result is a CursorResult
            removed += count
            if count < batch:
                return removed

    async def _purge_claims(self, now: dt.datetime) -> int:
        removed = 0
        batch = self.settings.purge_batch_size
        table = IdempotencyClaim
        while True:
            async with self.database.unit_of_work() as uow:
                doomed = (
                    select(table.scope, table.key)
                    .where(table.expires_at < now)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                    .subquery()
                )
                result = await uow.session.execute(
                    delete(table).where(table.scope == doomed.c.scope, table.key == doomed.c.key)
                )
                await uow.commit()
            count = cast("CursorResult[Any]", result).rowcount or 0  # a DELETE's result is a CursorResult
            removed += count
            if count < batch:
                return removed
