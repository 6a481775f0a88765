"""The rate limiter's leases: a busy key costs a Redis call per block, never more than the limit in total."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.platform import SlidingWindowLimiter


async def test_two_processes_leasing_blocks_never_admit_more_than_the_limit(stack: EmbeddedStack) -> None:
    redis = Redis.from_url(stack.urls["redis_url"])
    try:
        # Two limiters stand for two worker processes sharing one key's window.
        first, second = (SlidingWindowLimiter(redis, limit=200, window_seconds=60, lease_max=8) for _ in range(2))
        calls = 0
        for limiter in (first, second):
            script = limiter._script

            async def counted(*args: object, _script: object = script, **kwargs: object) -> object:
                nonlocal calls
                calls += 1
                return await _script(*args, **kwargs)  # type: ignore[operator]

            limiter._script = counted  # type: ignore[assignment]
        identity = f"lease-{uuid.uuid4().hex[:8]}"
        decisions = [await (first if i % 2 else second).hit(identity) for i in range(300)]
        admitted = sum(decision.allowed for decision in decisions)
        assert admitted <= 200  # leased requests are counted in Redis when leased
        assert admitted >= 200 - 2 * 7  # at most lease_max - 1 held back per process
        assert not decisions[-1].allowed
        assert calls < 150  # far fewer Redis calls than requests while the key is busy

        slow = SlidingWindowLimiter(redis, limit=5, window_seconds=60, lease_max=8)
        quiet = f"quiet-{uuid.uuid4().hex[:8]}"
        assert [(await slow.hit(quiet)).allowed for _ in range(6)] == [True] * 5 + [False]  # small limits exact
    finally:
        await redis.aclose()


async def test_concurrent_requests_are_served_in_arrival_order(stack: EmbeddedStack) -> None:
    redis = Redis.from_url(stack.urls["redis_url"])
    try:
        limiter = SlidingWindowLimiter(redis, limit=100, window_seconds=60, lease_max=4)
        identity = f"burst-{uuid.uuid4().hex[:8]}"
        finished: list[int] = []

        async def request(number: int) -> bool:
            decision = await limiter.hit(identity)
            finished.append(number)
            return decision.allowed

        # A burst far larger than a block: each block goes to the oldest waiters, none loses its turn.
        allowed = await asyncio.gather(*(request(n) for n in range(300)))
        assert finished == sorted(finished)
        admitted = sum(allowed)
        assert 100 - 4 <= admitted <= 100
        assert allowed == [True] * admitted + [False] * (300 - admitted)  # the first arrivals, then refusals
    finally:
        await redis.aclose()
