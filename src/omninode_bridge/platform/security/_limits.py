"""The Redis sliding-window rate limiter and its decisions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis


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


class SlidingWindowLimiter:
    """An exact sliding-window log in a Redis sorted set, checked and updated atomically by a script.

    The script reads the server clock so several app processes agree on time.
    """

    _SCRIPT = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local window = tonumber(ARGV[1])
    local limit = tonumber(ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    local count = redis.call('ZCARD', KEYS[1])
    local allowed = 0
    if count < limit then
        redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
        redis.call('PEXPIRE', KEYS[1], window)
        count = count + 1
        allowed = 1
    end
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local reset = window
    if oldest[2] then reset = tonumber(oldest[2]) + window - now end
    return {allowed, count, reset}
    """

    def __init__(self, redis: Redis, *, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window_ms = int(window_seconds * 1000)
        self._script = redis.register_script(self._SCRIPT)
        self._counter = 0

    async def hit(self, identity: str, limit: int | None = None) -> RateLimitDecision:
        """Count one request for ``identity`` unless it is over ``limit`` (default: the limiter's)."""
        limit = self.limit if limit is None else limit
        self._counter += 1
        allowed, count, reset_ms = await self._script(
            keys=[f"ratelimit:{identity}"], args=[self.window_ms, limit, f"{id(self)}-{self._counter}"]
        )
        return RateLimitDecision(
            allowed=bool(allowed),
            limit=limit,
            remaining=max(0, limit - int(count)),
            reset_seconds=int(reset_ms) / 1000,
        )
