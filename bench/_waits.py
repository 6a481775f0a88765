"""What PostgreSQL's busy backends wait on, sampled from ``pg_stat_activity`` while a benchmark phase runs.

pg_stat_statements' time of a statement includes its waits (locks, WAL flushes, I/O); sampling the active
backends tells CPU from waiting, and what is waited on (``--waits`` of ``bench.workflow``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

__all__ = ["report_waits", "sample_waits"]

_ACTIVE = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait, left(regexp_replace(query, '\\s+', ' ', 'g'), 60)
    AS q
FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


@contextlib.asynccontextmanager
async def sample_waits(dsn: str, into: Counter[tuple[str, str]], every_s: float = 0.002) -> AsyncIterator[None]:
    """Count (wait event or ``CPU``, query head) of every active client backend, every ``every_s``, into ``into``."""
    conn: Any = await asyncpg.connect(dsn)
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set():
            for row in await conn.fetch(_ACTIVE):
                into[(row["wait"], row["q"])] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    task = asyncio.create_task(sampler())
    try:
        yield
    finally:
        stop.set()
        await task
        await conn.close()


def report_waits(waits: Counter[tuple[str, str]], top: int = 12) -> None:
    """Print the most sampled (wait, query) pairs with their share of samples."""
    total = waits.total() or 1
    for (wait, query), count in waits.most_common(top):
        print(f"    {count / total:6.1%}  {wait:28s} {query}")
