"""The in-process cache of discovery reads: a query's index and pages, kept until a change that concerns them.

An entry is valid while the change feed's version for it has not moved (``ChangeFeed.version``: a read of one
service, until that service changes; any other read, until anything changes): a change committed in this process
moves it at once, one committed in another process when its notification arrives (within milliseconds). Every change an
answer shows is announced (registrations, status changes, a check's new output, deregistrations, the purge of
tombstones), so the age limit, :data:`MAX_AGE_SECONDS`, is only a safety net for a notification lost on the way
(a publish that failed): it is long because each expiry stalls the lookups that wait for the re-read. Concurrent
misses of one key share one read, so a change under load costs one query, not one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

__all__ = ["MAX_AGE_SECONDS", "LookupCache"]

MAX_AGE_SECONDS = 30.0
_MAX_ENTRIES = 10_000


class LookupCache:
    """Results of reads by key, for one generation of the catalog."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[int, float, Any]] = {}
        self._loading: dict[tuple[Hashable, int], asyncio.Task[Any]] = {}

    async def get(self, key: Hashable, generation: int, load: Callable[[], Awaitable[Any]]) -> Any:
        """The result of ``key`` at ``generation``: cached, being read by another request, or read now by ``load``.

        Args:
            key: The read.
            generation: The change feed's generation before the read began.
            load: Reads the result from the database.
        """
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation and time.monotonic() - entry[1] <= MAX_AGE_SECONDS:
            return entry[2]
        flight = (key, generation)
        task = self._loading.get(flight)
        if task is None:
            # A task of its own: a request that goes away (cancelled) does not cancel the read others wait for.
            task = asyncio.ensure_future(self._read(key, generation, load))
            self._loading[flight] = task
            task.add_done_callback(lambda _: self._loading.pop(flight, None))
        return await asyncio.shield(task)

    async def _read(self, key: Hashable, generation: int, load: Callable[[], Awaitable[Any]]) -> Any:
        value = await load()
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (generation, time.monotonic(), value)
        return value
