"""The two in-Python figures of ``bench.suite``: the 1 GiB upload and the reducer's items/s."""

from __future__ import annotations

from bench._gib import gib_upload
from bench._reducer import reducer_runs

__all__ = ["gib_upload", "reducer_rates"]


async def reducer_rates(database_url: str, items: int) -> list[tuple[int, float, float]]:
    """:func:`bench._reducer.reducer_runs` as (batch, items/s, in-memory items/s) rows."""
    return [(r.batch, r.items_per_s, r.memory_items_per_s) for r in await reducer_runs(database_url, items)]
