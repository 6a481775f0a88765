"""Change notifications across processes: a committed change publishes its index on a Redis channel, and every
process's one listener wakes its waiting blocking queries, which re-evaluate their own query."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis

__all__ = ["CHANNEL", "ChangeFeed"]

CHANNEL = "registry:changes"
log = structlog.get_logger(__name__)


class ChangeFeed:
    """Counts catalog changes seen by this process; blocking queries wait for the count to move.

    Args:
        redis: The app's Redis client (publishes).
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.generation = 0
        self._changed = asyncio.Condition()

    async def announce(self, index: int) -> None:
        """Tell every process that the catalog changed at ``index`` (after the commit); this process's cached
        reads are stale from now on, the others' when the notification arrives."""
        await self._bump()
        try:
            await self.redis.publish(CHANNEL, str(index))
        except Exception:  # a lost wake-up delays waiters until their wait ends; never fails a change
            log.warning("registry: change notification not sent", exc_info=True)

    async def _bump(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def wait_after(self, generation: int, seconds: float) -> None:
        """Return once the generation moved past ``generation``, or after ``seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async with self._changed:
                    await self._changed.wait_for(lambda: self.generation != generation)

    async def listen(self, reader: Redis) -> None:
        """Run the process's listener on ``reader`` (a connection of its own) until cancelled."""
        while True:
            try:
                async with reader.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._bump()  # (re)subscribed: a change may have been missed meanwhile
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._bump()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: retry; waiters fall back to their timeouts
                log.warning("registry: change listener lost Redis; retrying", exc_info=True)
                await asyncio.sleep(1.0)
