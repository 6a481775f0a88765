"""The Redis sliding-window rate limiter and its decisions."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis

#: How long a leased block of requests stays usable in the process that leased it.
LEASE_SECONDS = 1.0
#: Identities with a lease kept before expired ones are dropped.
_MAX_LEASES = 10_000


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
    """Requests of one identity this process may still admit without asking Redis."""

    __slots__ = ("block", "count", "expires", "reset_at", "tokens")

    def __init__(self, tokens: int, block: int, count: int, expires: float, reset_at: float) -> None:
        self.tokens, self.block, self.count, self.expires, self.reset_at = tokens, block, count, expires, reset_at


class SlidingWindowLimiter:
    """A sliding-window log in a Redis sorted set, with small blocks of it leased to each process.

    The script reads the server clock so several app processes agree on time, and counts every leased
    request in the window at once, so no identity is ever admitted more than ``limit`` times a window
    across all processes. A process leases one request at first and doubles the block (up to
    ``lease_max``) while an identity uses its blocks up within :data:`LEASE_SECONDS`, so a busy key costs
    one Redis call per block while a slow one is counted exactly. Leased requests a process does not use
    within :data:`LEASE_SECONDS` expire unused but stay counted: a busy key can be refused early by up to
    ``lease_max - 1`` requests per process. Concurrent requests that find a process's lease empty share
    one refill (its block, its refusal or its error), so a burst costs one Redis call, not one each.
    Near the limit a lease is at most a quarter of what is left
    (down to one request), so the last requests of a window are exact. ``lease_max=1`` is a Redis call
    per request.
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
        self._refills: dict[tuple[str, int], asyncio.Future[RateLimitDecision | None]] = {}

    async def hit(self, identity: str, limit: int | None = None) -> RateLimitDecision:
        """Count one request for ``identity`` unless it is over ``limit`` (default: the limiter's)."""
        limit = self.limit if limit is None else limit
        key = (identity, limit)
        decision = self._from_lease(key, limit)
        if decision is not None:
            return decision
        # One refill per identity at a time: concurrent requests that found the lease empty wait for it
        # and take from the new block (or share its refusal or its error), rather than each asking Redis.
        while True:
            pending = self._refills.get(key)
            if pending is None:
                break
            refused = await asyncio.shield(pending)
            if refused is not None:
                return refused
            decision = self._from_lease(key, limit)
            if decision is not None:
                return decision
        future: asyncio.Future[RateLimitDecision | None] = asyncio.get_running_loop().create_future()
        self._refills[key] = future
        try:
            decision = await self._refill(key, limit)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters may be none
            raise
        except BaseException:
            future.set_result(None)  # cancelled: a waiter refills for itself
            raise
        else:
            future.set_result(None if decision.allowed else decision)
            return decision
        finally:
            del self._refills[key]

    def _from_lease(self, key: tuple[str, int], limit: int) -> RateLimitDecision | None:
        lease = self._leases.get(key)
        now = time.monotonic()
        if lease is not None and lease.tokens > 0 and now < lease.expires:
            lease.tokens -= 1
            return RateLimitDecision(True, limit, max(0, limit - lease.count + lease.tokens), lease.reset_at - now)
        return None

    async def _refill(self, key: tuple[str, int], limit: int) -> RateLimitDecision:
        identity = key[0]
        now = time.monotonic()
        lease = self._leases.get(key)
        # Used up in time: the identity is busy, ask for twice as many next time; otherwise one.
        busy = lease is not None and lease.tokens == 0 and now < lease.expires
        want = min(self.lease_max, lease.block * 2) if busy and lease is not None else 1
        self._counter += 1
        granted, count, reset_ms = await self._script(
            keys=[f"ratelimit:{identity}"], args=[self.window_ms, limit, f"{id(self)}-{self._counter}", want]
        )
        granted, count, reset = int(granted), int(count), int(reset_ms) / 1000
        if len(self._leases) > _MAX_LEASES:
            self._leases = {k: kept for k, kept in self._leases.items() if kept.expires > now}
        self._leases[key] = _Lease(max(0, granted - 1), max(1, granted), count, now + self._lease_seconds, now + reset)
        return RateLimitDecision(
            allowed=granted > 0,
            limit=limit,
            remaining=max(0, limit - count + max(0, granted - 1)),
            reset_seconds=reset,
        )
