"""The in-process cache of discovery reads: a query's index and pages, kept until the catalog changes.

An entry is valid while the change feed's generation has not moved (a change committed in this process moves it
at once; one committed in another process when its notification arrives, within milliseconds) and for at most
:data:`MAX_AGE_SECONDS` (changes that move no index, such as a check's new output with the same status).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

__all__ = ["MAX_AGE_SECONDS", "LookupCache"]

MAX_AGE_SECONDS = 1.0
_MAX_ENTRIES = 10_000


class LookupCache:
    """Results of reads by key, for one generation of the catalog."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[int, float, Any]] = {}

    def get(self, key: Hashable, generation: int) -> Any | None:
        """The cached result of ``key`` read at ``generation`` (not older than the maximum age), or None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != generation or time.monotonic() - entry[1] > MAX_AGE_SECONDS:
            return None
        return entry[2]

    def put(self, key: Hashable, generation: int, value: Any) -> None:
        """Keep ``value`` as the result of ``key`` read at ``generation`` (read before the read began)."""
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (generation, time.monotonic(), value)
