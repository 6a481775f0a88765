"""The Redis sliding-window rate limiter and its decisions."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass

from redis.asyncio import Redis

#: How long a leased block of requests stays usable in the process that leased it.
LEASE_SECONDS = 1.0
#: Identities with a lease kept before expired ones are dropped.
_MAX_LEASES = 10_000
#: A high limit's blocks may grow to this share of it (and no further than ``_LEASE_CAP``).
_LIMIT_SHARE = 64
_LEASE_CAP = 1024


def lease_ceiling(lease_max: int, limit: int) -> int:
    """The largest block of an identity's requests one process leases at once.

    ``lease_max``, or 1/64 of a higher ``limit`` (up to 1,024): a key allowed 100,000 requests a window
    would otherwise cost a Redis call per 16 requests (~18% of a discovery lookup's CPU at the bench's
    raised limit), and 1/64 of its window refused early is as precise as 16 of 1,200. ``lease_max`` 1
    stays exact: a Redis call per request.
    """
    if lease_max <= 1:
        return 1
    return max(lease_max, min(limit // _LIMIT_SHARE, _LEASE_CAP))


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one rate-limit check."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-*`` headers (IETF draft), plus ``Retry-After`` when refused."""
        reset = str(max(0, math.ceil(self.reset_seconds))).encode()
        out = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", reset),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(max(1, math.ceil(self.reset_seconds))).encode()))
        return out


class _Lease:
    """Requests of one identity this process may still admit without asking Redis, and who waits for more."""

    __slots__ = ("block", "count", "expires", "refill", "reset_at", "tokens", "waiters")

    def __init__(self) -> None:
        self.tokens = 0
        self.block = 1
        self.count = 0
        self.expires = 0.0
        self.reset_at = 0.0
        self.waiters: deque[asyncio.Future[RateLimitDecision]] = deque()
        self.refill: asyncio.Task[None] | None = None


class SlidingWindowLimiter:
    """A sliding-window log in a Redis sorted set, with small blocks of it leased to each process.

    The script reads the server clock so several app processes agree on time, and counts every leased
    request in the window at once, so no identity is ever admitted more than ``limit`` times a window
    across all processes. A process leases one request at first and doubles the block (up to
    ``lease_max``) while an identity uses its blocks up within :data:`LEASE_SECONDS`, so a busy key costs
    one Redis call per block while a slow one is counted exactly (:func:`lease_ceiling` raises the ceiling
    for high limits). Leased requests a process does not use within :data:`LEASE_SECONDS` expire unused
    but stay counted: a busy key can be refused early by up to that ceiling per process (a block, plus the
    quarter of the last one it still held when it asked for the next). Near the limit a lease is at most a quarter
    of what is left (down to one request), so the last requests of a window are exact. ``lease_max=1`` is a Redis
    call per request.

    Per identity, one refill at a time runs in the background: a busy key asks for its next block when a
    quarter of the current one is left, so its requests rarely wait; requests that find the lease empty
    queue, and each block (or refusal, or error) is handed out in arrival order. An earlier version let
    every waiter race for each new block: under saturation some requests lost the race again and again
    (a p99 of 1-2 s on ``/hash`` at 32 connections, against 17-130 ms with the limiter off).
    """

    _SCRIPT = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local window = tonumber(ARGV[1])
    local limit = tonumber(ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    local count = redis.call('ZCARD', KEYS[1])
    local granted = 0
    if count < limit then
        granted = math.min(tonumber(ARGV[4]), math.max(1, math.floor((limit - count) / 4)))
        local members = {}
        for i = 1, granted do
            members[#members + 1] = now
            members[#members + 1] = ARGV[3] .. '-' .. i
        end
        redis.call('ZADD', KEYS[1], unpack(members))
        redis.call('PEXPIRE', KEYS[1], window)
        count = count + granted
    end
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local reset = window
    if oldest[2] then reset = tonumber(oldest[2]) + window - now end
    return {granted, count, reset}
    """

    def __init__(self, redis: Redis, *, limit: int, window_seconds: float, lease_max: int = 16) -> None:
        self.limit = limit
        self.window_ms = int(window_seconds * 1000)
        self.lease_max = lease_max
        self._lease_seconds = min(LEASE_SECONDS, window_seconds)
        self._script = redis.register_script(self._SCRIPT)
        self._counter = 0
        self._leases: dict[tuple[str, int], _Lease] = {}

    async def hit(self, identity: str, limit: int | None = None) -> RateLimitDecision:
        """Count one request for ``identity`` unless it is over ``limit`` (default: the limiter's).

        Raises:
            RedisError | OSError: Redis could not be asked (the caller decides to fail open).
        """
        limit = self.limit if limit is None else limit
        key = (identity, limit)
        lease = self._leases.get(key)
        now = time.monotonic()
        if lease is None:
            if len(self._leases) > _MAX_LEASES:
                self._leases = {k: kept for k, kept in self._leases.items() if kept.expires > now or kept.refill}
            lease = self._leases[key] = _Lease()
        elif lease.tokens > 0 and now < lease.expires and not lease.waiters:
            lease.tokens -= 1
            if lease.tokens * 4 <= lease.block and lease.refill is None:
                self._start_refill(key, lease)  # ask for the next block before this one runs out
            return RateLimitDecision(True, limit, max(0, limit - lease.count + lease.tokens), lease.reset_at - now)
        waiter: asyncio.Future[RateLimitDecision] = asyncio.get_running_loop().create_future()
        lease.waiters.append(waiter)
        if lease.refill is None:
            self._start_refill(key, lease)
        return await waiter

    def _start_refill(self, key: tuple[str, int], lease: _Lease) -> None:
        lease.refill = asyncio.create_task(self._refill(key, lease))

    async def _refill(self, key: tuple[str, int], lease: _Lease) -> None:
        """Lease blocks for ``key`` until every waiter is served (or refused, or failed), in arrival order."""
        identity, limit = key
        waiters = lease.waiters
        try:
            while True:
                while waiters and waiters[0].done():
                    waiters.popleft()  # its request was cancelled
                now = time.monotonic()
                # Used up in time, or wanted by several: the identity is busy, so ask for twice as many.
                busy = now < lease.expires or len(waiters) > 1
                want = min(lease_ceiling(self.lease_max, limit), max(len(waiters), lease.block * 2 if busy else 1))
                self._counter += 1
                granted, count, reset_ms = await self._script(
                    keys=[f"ratelimit:{identity}"], args=[self.window_ms, limit, f"{id(self)}-{self._counter}", want]
                )
                granted, count, reset = int(granted), int(count), int(reset_ms) / 1000
                now = time.monotonic()
                kept = lease.tokens if now < lease.expires else 0
                lease.tokens, lease.block, lease.count = kept + granted, max(1, granted), count
                lease.expires, lease.reset_at = now + self._lease_seconds, now + reset
                if granted == 0:
                    refusal = RateLimitDecision(False, limit, 0, reset)
                    while waiters:
                        _settle(waiters.popleft(), refusal)
                    return
                while waiters and lease.tokens > 0:
                    waiter = waiters.popleft()
                    if not waiter.done():
                        lease.tokens -= 1
                        remaining = max(0, limit - count + lease.tokens)
                        waiter.set_result(RateLimitDecision(True, limit, remaining, reset))
                if not any(not waiter.done() for waiter in waiters):
                    waiters.clear()
                    return
        except Exception as exc:
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
        finally:
            lease.refill = None


def _settle(waiter: asyncio.Future[RateLimitDecision], decision: RateLimitDecision) -> None:
    if not waiter.done():
        waiter.set_result(decision)
