"""The in-process cache of verified API keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from omninode_bridge.core.safe_errors import loggable_error
from omninode_bridge.platform import schemas

log = structlog.get_logger(__name__)

Verify = Callable[[], Awaitable[schemas.Principal | None]]


class AuthCache:
    """Verified keys by hash, each for ``ttl`` seconds, with one verification per key at a time.

    Without care a cache like this stampedes: when a busy key's entry expires, every request in flight
    misses at once and each verifies the key in its own database transaction (measured at 32 connections:
    ~32 verifications, and new pooled connections to carry them, every ``ttl``, with a latency spike for
    each). So concurrent misses of one key share one verification, and a lookup past three quarters of the
    ``ttl`` still answers from the cache while one background verification renews the entry. A revoked
    key is still refused everywhere within ``ttl``: the entry's expiry never moves without a verification
    that read the key after it was written.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[schemas.Principal, float, float]] = {}  # principal, renew at, expires
        self._verifying: dict[str, asyncio.Future[schemas.Principal | None]] = {}
        self._generation = 0  # bumped by drop_key: a verification that began before a revocation stores nothing

    async def principal(self, digest: str, verify: Verify) -> schemas.Principal | None:
        """The principal of a key hash: cached, or verified once however many requests ask at the same time.

        Args:
            digest: The key's hash.
            verify: Reads the key from the database (a principal, or None for an unknown, revoked or
                expired key); called at most once at a time per digest.
        """
        entry = self._entries.get(digest)
        if entry is not None:
            principal, renew_at, expires = entry
            now = self._clock()
            if now < renew_at:
                return principal
            if now < expires:
                if digest not in self._verifying:
                    self._start(digest, verify)
                return principal
            del self._entries[digest]
        pending = self._verifying.get(digest) or self._start(digest, verify)
        return await asyncio.shield(pending)

    def put(self, digest: str, principal: schemas.Principal) -> None:
        """Cache a verified principal for ``ttl`` seconds (nothing is cached when ``ttl`` is 0)."""
        if self.ttl > 0:
            now = self._clock()
            self._entries[digest] = (principal, now + self.ttl * 0.75, now + self.ttl)

    def drop_key(self, key_id: Any) -> None:
        """Forget a revoked key, and whatever verification of it is still running."""
        self._generation += 1
        for digest, (principal, _, _) in list(self._entries.items()):
            if principal.key_id == key_id:
                del self._entries[digest]

    def _start(self, digest: str, verify: Verify) -> asyncio.Future[schemas.Principal | None]:
        task = asyncio.ensure_future(self._verify(digest, verify, self._generation))
        self._verifying[digest] = task
        task.add_done_callback(_log_failure)  # a renewal has no awaiter: its failure is read here
        return task

    async def _verify(self, digest: str, verify: Verify, generation: int) -> schemas.Principal | None:
        try:
            principal = await verify()
        finally:
            del self._verifying[digest]
        if generation == self._generation:
            if principal is None:
                self._entries.pop(digest, None)
            else:
                self.put(digest, principal)
        return principal


def _log_failure(task: asyncio.Future[schemas.Principal | None]) -> None:
    # The entry (if any) serves until it expires; the next lookup after that verifies again.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("API key verification failed", error=loggable_error(exc))
