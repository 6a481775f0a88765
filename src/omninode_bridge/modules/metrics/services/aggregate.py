"""The durable statistics, written behind the request: a per-process aggregator of observations flushed to
``metrics_model_stats`` every few milliseconds in one transaction.

Why deferred: the upsert serialises every execution of a (task type, model) on one row lock, and it was one of
the five round trips an execution waited for. The router learns from the Redis copy, which each execution
updates at once (:meth:`.Coordination.finish`); PostgreSQL's copy is what Redis is rebuilt from after a loss,
so it may trail by one flush interval. A flush applies the observations in order with the same upsert (one
``executemany``: one round trip for the batch), so the durable arithmetic is exactly the per-execution one.
Readers of the durable copy in this process (:meth:`StatsAggregator.flush` first) see every observation it
made; an observation of a flush that failed is kept and retried (bounded), not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from omninode_bridge.core.db import Database
from omninode_bridge.modules.metrics.services.coordination import Observation
from omninode_bridge.modules.metrics.services.store import UPSERT_STATS

__all__ = ["StatsAggregator"]

log = structlog.get_logger(__name__)

#: Observations kept while PostgreSQL is unreachable; past this the oldest are dropped (and logged): the
#: execution rows hold every measurement, so the statistics can be recomputed from them.
_MAX_PENDING = 50_000


class StatsAggregator:
    """Collects observations and writes them to PostgreSQL in batches.

    Args:
        database: Where the durable statistics live.
        alpha: The latency EWMA weight (the module's setting).
        interval_seconds: Longest time an observation waits to be flushed.
        batch: Pending observations that trigger a flush at once.
    """

    def __init__(self, database: Database, *, alpha: float, interval_seconds: float, batch: int = 500) -> None:
        self.database = database
        self.alpha = alpha
        self.interval = interval_seconds
        self.batch = batch
        self._pending: list[tuple[str, Observation]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def add(self, task_type: str, observations: list[Observation]) -> None:
        """Queue an execution's (or a feedback's) observations for the next flush."""
        self._pending.extend((task_type, o) for o in observations)
        if len(self._pending) >= self.batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Observations not yet written."""
        return len(self._pending)

    async def flush(self) -> None:
        """Write every pending observation now (in order, one transaction)."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            params = [_params(task_type, o, self.alpha) for task_type, o in batch]
            try:
                async with self.database.unit_of_work() as uow:
                    await uow.session.execute(UPSERT_STATS, params)
                    await uow.commit()
            except Exception:
                self._pending[:0] = batch  # retried by the next flush, still in order
                dropped = len(self._pending) - _MAX_PENDING
                if dropped > 0:
                    del self._pending[:dropped]
                    log.error("metrics statistics: observations dropped while PostgreSQL fails", dropped=dropped)
                raise

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the loop outlives an outage; the batch is kept
                log.warning("metrics statistics flush failed; retrying", error=type(exc).__name__)
                await asyncio.sleep(min(5.0, self.interval * 10))

    def start(self) -> None:
        """Start flushing in the background."""
        self._task = asyncio.create_task(self._loop(), name="metrics-stats-flush")

    async def stop(self) -> None:
        """Stop the loop and write what is pending (a failure is logged: the rows hold the measurements)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as exc:  # shutdown goes on
            log.error("metrics statistics: final flush failed", error=type(exc).__name__, pending=self.pending)


def _params(task_type: str, o: Observation, alpha: float) -> dict[str, Any]:
    return {
        "task_type": task_type, "model_id": o.model_id, "inc": int(o.counts_as_execution), "succ": int(o.success),
        "lat": float(o.latency_ms), "cost": float(o.cost_usd), "qn": int(o.quality is not None),
        "q": float(o.quality or 0.0), "alpha": alpha,
    }  # fmt: skip
