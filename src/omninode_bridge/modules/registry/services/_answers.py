"""Encoded answers of catalog reads, kept until a change that concerns them.

A discovery lookup repeats: the same path and query string, answered from the same catalog state until a change
that concerns it moves the change feed's version for it (a lookup by service name: a change of that service; any
other read: any change). The first request at a version runs the whole handler (parsing, validation, the cached
read, encoding) and leaves its answer here, exactly as it was sent (status line headers and body bytes); the next
ones at that version replay it. Invalidation is the :class:`LookupCache`'s: a change committed in this process
moves the version at once, one committed in another process when its notification arrives; the same age limit is
the safety net for a lost notification.

Misses of one key share one handler run: when a change invalidates the answers while 16 connections ask for the
same lookup, the first request runs the handler and the others wait for its answer (:meth:`AnswerCache.lead`,
:meth:`AnswerCache.waiting`) instead of each running the whole handler at once, a burst that held the event loop
for milliseconds after every change and made the tail of discovery under load.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from prometheus_client import Counter

from omninode_bridge.modules.registry.services._changes import ChangeFeed
from omninode_bridge.modules.registry.services._lookups import MAX_AGE_SECONDS

__all__ = ["Answer", "AnswerCache", "Key", "answers_total"]

#: Answers larger than this are not kept (a whole-catalog Consul listing): replaying them saves little.
MAX_ANSWER_BYTES = 256 * 1024
#: The bodies kept at once, in bytes; past it the cache starts over.
MAX_TOTAL_BYTES = 32 * 1024 * 1024
_MAX_ENTRIES = 10_000
answers_total = Counter(
    "omninode_registry_read_answers",
    "Catalog reads (non-blocking GETs) by how they were answered: replayed (a kept answer) or handled (the handler"
    " ran).",
    ["outcome"],
)
#: Bound once: a label lookup per request would cost more than the replay's dictionary hit.
_replayed = answers_total.labels(outcome="replayed")
_handled = answers_total.labels(outcome="handled")


@dataclass(frozen=True, slots=True)
class Answer:
    """A 200 answer as the handler sent it, and the version of the catalog it was read at."""

    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    kept_at: float = 0.0
    version: int = 0


#: What a kept answer is looked up by: the path, the query string, and the service name it depends on (None: the
#: whole catalog).
Key = tuple[str, bytes, "str | None"]


class AnswerCache:
    """Answers by (path, query string), each valid while its service's version (``ChangeFeed.version``) holds.

    Args:
        changes: The change feed whose versions the answers belong to.
    """

    def __init__(self, changes: ChangeFeed) -> None:
        self.changes = changes
        self._answers: dict[Key, Answer] = {}
        self._bytes = 0
        self._flights: dict[Key, tuple[int, asyncio.Future[Answer | None]]] = {}

    def version(self, key: Key) -> int:
        """The catalog's version for ``key`` now (read it before answering a miss, and store the answer under it)."""
        return self.changes.version(key[2])

    def get(self, key: Key) -> Answer | None:
        """The answer to ``key`` at the current version, if one was kept (counted either way)."""
        answer = self._answers.get(key)
        if (
            answer is None
            or answer.version != self.changes.version(key[2])
            or time.monotonic() - answer.kept_at > MAX_AGE_SECONDS
        ):
            _handled.inc()
            return None
        _replayed.inc()
        return answer

    def put(self, key: Key, answer: Answer) -> None:
        """Keep ``answer`` (read at ``answer.version``); dropped if the catalog has changed for it since."""
        if answer.version != self.changes.version(key[2]) or len(answer.body) > MAX_ANSWER_BYTES:
            return
        if len(self._answers) >= _MAX_ENTRIES or self._bytes + len(answer.body) > MAX_TOTAL_BYTES:
            self._answers.clear()  # stale answers of old versions go with the rest
            self._bytes = 0
        previous = self._answers.get(key)
        if previous is not None:
            self._bytes -= len(previous.body)
        self._answers[key] = answer
        self._bytes += len(answer.body)

    def waiting(self, key: Key) -> asyncio.Future[Answer | None] | None:
        """The answer another request is computing for ``key`` at the current version, if one is."""
        flight = self._flights.get(key)
        if flight is None or flight[0] != self.changes.version(key[2]) or flight[1].done():
            return None
        return flight[1]

    def lead(self, key: Key, version: int) -> asyncio.Future[Answer | None]:
        """Register this request as the one computing ``key`` at ``version``; end it with :meth:`settle`."""
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = (version, future)
        return future

    def settle(self, key: Key, version: int, future: asyncio.Future[Answer | None], answer: Answer | None) -> None:
        """End the flight ``lead`` returned: its waiters get ``answer`` if the catalog is still at ``version`` for
        it (else None: they run the handler themselves)."""
        flight = self._flights.get(key)
        if flight is not None and flight[1] is future:
            del self._flights[key]
        if not future.done():
            future.set_result(answer if version == self.changes.version(key[2]) else None)
