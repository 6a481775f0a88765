"""Encoded answers of catalog reads, kept for one generation of the catalog.

A discovery lookup repeats: the same path and query string, answered from the same catalog state until a change
moves the change feed's generation. The first request of a generation runs the whole handler (parsing,
validation, the cached read, encoding) and leaves its answer here, exactly as it was sent (status line headers
and body bytes); the next ones at that generation replay it. Invalidation is the :class:`LookupCache`'s: a
change committed in this process moves the generation at once, one committed in another process when its
notification arrives; the same age limit is the safety net for a lost notification.

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

__all__ = ["Answer", "AnswerCache", "answers_total"]

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
    """A 200 answer as the handler sent it."""

    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    kept_at: float = 0.0


class AnswerCache:
    """Answers by (path, query string), all of the current generation.

    Args:
        changes: The change feed whose generation the answers belong to.
    """

    def __init__(self, changes: ChangeFeed) -> None:
        self.changes = changes
        self._generation = changes.generation
        self._answers: dict[tuple[str, bytes], Answer] = {}
        self._bytes = 0
        self._flights: dict[tuple[str, bytes], tuple[int, asyncio.Future[Answer | None]]] = {}

    @property
    def generation(self) -> int:
        """The catalog's generation now (read it before answering a miss, and store the answer under it)."""
        return self.changes.generation

    def get(self, key: tuple[str, bytes]) -> Answer | None:
        """The answer to ``key`` at the current generation, if one was kept (counted either way)."""
        answer = self._answers.get(key) if self._generation == self.changes.generation else None
        if answer is None or time.monotonic() - answer.kept_at > MAX_AGE_SECONDS:
            _handled.inc()
            return None
        _replayed.inc()
        return answer

    def put(self, key: tuple[str, bytes], generation: int, answer: Answer) -> None:
        """Keep ``answer``, read at ``generation``; dropped if the catalog has changed since."""
        if generation != self.changes.generation or len(answer.body) > MAX_ANSWER_BYTES:
            return
        if generation != self._generation:  # the first answer of a new generation: the old ones are all stale
            self._generation = generation
            self._answers.clear()
            self._bytes = 0
        if len(self._answers) >= _MAX_ENTRIES or self._bytes + len(answer.body) > MAX_TOTAL_BYTES:
            self._answers.clear()
            self._bytes = 0
        previous = self._answers.get(key)
        if previous is not None:
            self._bytes -= len(previous.body)
        self._answers[key] = answer
        self._bytes += len(answer.body)

    def waiting(self, key: tuple[str, bytes]) -> asyncio.Future[Answer | None] | None:
        """The answer another request is computing for ``key`` at the current generation, if one is."""
        flight = self._flights.get(key)
        if flight is None or flight[0] != self.changes.generation or flight[1].done():
            return None
        return flight[1]

    def lead(self, key: tuple[str, bytes], generation: int) -> asyncio.Future[Answer | None]:
        """Register this request as the one computing ``key`` at ``generation``; settle it with :meth:`settle`."""
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = (generation, future)
        return future

    def settle(
        self, key: tuple[str, bytes], generation: int, future: asyncio.Future[Answer | None], answer: Answer | None
    ) -> None:
        """End the flight ``lead`` returned: its waiters get ``answer`` if the catalog is still at ``generation``
        (else None: they run the handler themselves)."""
        flight = self._flights.get(key)
        if flight is not None and flight[1] is future:
            del self._flights[key]
        if not future.done():
            future.set_result(answer if generation == self.changes.generation else None)
