"""Change notifications across processes: a committed change publishes its index and the service names it touched
on a Redis channel, and every process's one listener wakes its waiting blocking queries, which re-evaluate their
own query.

Cached reads are kept per service name where they depend on one (``version(name)``): a change to other services
leaves a lookup of ``name=X`` valid, so a catalog where some node changes every few milliseconds does not send
every lookup back to the database (Consul's index moves on any catalog change, its users' complaint #3890).
A change whose names are not known (a purge of tombstones, a lost notification, a message of another format)
counts as a change of every name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence

import structlog
from redis.asyncio import Redis

from omninode_bridge.core.module import raise_if_stopping

__all__ = ["CHANNEL", "ChangeFeed"]

CHANNEL = "registry:changes"
log = structlog.get_logger(__name__)
#: Service names whose last change is remembered; past it, the record starts over as a change of every name.
_MAX_NAMES = 10_000


class ChangeFeed:
    """Counts catalog changes seen by this process; blocking queries wait for the count to move.

    Args:
        redis: The app's Redis client (publishes).
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.generation = 0
        self._changed = asyncio.Condition()
        self._touched: dict[str, int] = {}
        self._floor = 0  # the last generation whose change touched names not known: every name's version

    def version(self, name: str | None) -> int:
        """The generation of the last change that may concern reads of service ``name`` (all reads: None)."""
        if name is None:
            return self.generation
        touched = self._touched.get(name, 0)
        return touched if touched > self._floor else self._floor

    async def announce(self, index: int, names: Iterable[str] | None = None) -> None:
        """Tell every process that the catalog changed at ``index`` (after the commit), for the services ``names``
        (None: any); this process's cached reads of them are stale from now on, the others' when the
        notification arrives."""
        named = sorted(set(names)) if names is not None else None
        await self._bump(named)
        message = str(index) if named is None else " ".join([str(index), *named])
        try:
            await self.redis.publish(CHANNEL, message)
        except Exception:  # a lost wake-up delays waiters until their wait ends; never fails a change
            log.warning("registry: change notification not sent", exc_info=True)

    async def _bump(self, names: Sequence[str] | None) -> None:
        async with self._changed:
            self.generation += 1
            if names is None or len(self._touched) + len(names) > _MAX_NAMES:
                self._floor = self.generation
                self._touched.clear()
            else:
                for name in names:
                    self._touched[name] = self.generation
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
                    raise_if_stopping()
                    await self._bump(None)  # (re)subscribed: a change may have been missed meanwhile
                    async for message in pubsub.listen():
                        raise_if_stopping()
                        if message.get("type") == "message":
                            await self._bump(_names(message.get("data")))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: retry; waiters fall back to their timeouts
                log.warning("registry: change listener lost Redis; retrying", exc_info=True)
                await asyncio.sleep(1.0)


def _names(data: object) -> list[str] | None:
    """The service names of a notification (``index name...``), or None when it names none it can be read for."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    parts = text.split(" ")
    return parts[1:] if len(parts) > 1 and parts[0].isdigit() else None
