"""The small Redis client of the execution scripts (``services.resp``) against the real embedded Redis (password
required): the scripts' replies as redis-py reads them, a script Redis lost, a connection Redis dropped."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.modules.metrics.services.coordination import Coordination, Observation
from omninode_bridge.modules.metrics.services.resp import ScriptPool
from omninode_bridge.modules.metrics.services.stats import ModelStats

_ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]), false, redis.call('EXISTS', KEYS[1])}"


async def test_scripts_answer_as_through_redis_py(stack: EmbeddedStack) -> None:
    redis = Redis.from_url(stack.urls["redis_url"])
    pool = ScriptPool.of(redis)
    assert pool is not None
    try:
        script = redis.register_script(_ECHO)
        key = f"test:resp:{uuid.uuid4().hex}"
        assert await pool.evalsha(_ECHO.encode(), script.sha, [key], ["a b", 7]) == [key.encode(), b"a b", 7, None, 0]
        with pytest.raises(ResponseError):
            await pool.evalsha(b"return redis.call('NOPE')", "0" * 40, [], [])

        # The execution's start and end scripts through the pool and through redis-py agree.
        task_type, model = f"t{uuid.uuid4().hex[:8]}", "m1"
        fast = Coordination(redis, cooldown_failures=3, cooldown_seconds=5, lease_seconds=30)
        slow = Coordination(redis, cooldown_failures=3, cooldown_seconds=5, lease_seconds=30)
        slow._scripts = None  # redis-py's path
        await fast.put_stats(task_type, {model: ModelStats()})
        for coordination in (fast, slow):
            snapshot, lease, asked = await coordination.start(task_type, model, 1)
            assert asked
            assert lease is not None
            assert snapshot.cooling == {}
            assert (await coordination.start(task_type, model, 1))[1] is None  # the one slot is taken
            seen = Observation(model, success=True, latency_ms=10.0, cost_usd=0.5, quality=1.0)
            await coordination.finish(task_type, leases=[(model, lease)], observations=[seen], alpha=0.5)
            assert await coordination.in_flight([model]) == {model: 0}
        stats = (await fast.stats(task_type, [model]))[model]
        assert stats is not None
        assert (stats.samples, stats.successes, stats.cost_total_usd) == (2, 2, 1.0)
        fast.close()
    finally:
        pool.close()
        await redis.aclose()


async def test_lost_scripts_and_dropped_connections(stack: EmbeddedStack) -> None:
    redis = Redis.from_url(stack.urls["redis_url"])
    pool = ScriptPool.of(redis)
    assert pool is not None
    try:
        script = redis.register_script("return ARGV[1]")
        assert await pool.evalsha(b"return ARGV[1]", script.sha, [], ["one"]) == b"one"
        await redis.script_flush()  # Redis no longer holds it: sent whole once
        assert await pool.evalsha(b"return ARGV[1]", script.sha, [], ["two"]) == b"two"
        (idle,) = pool._idle  # Redis drops the pool's idle connection (only that one: the stack is shared)
        host, port = idle.transport.get_extra_info("sockname")[:2] if idle.transport else ("", 0)
        await redis.client_kill(f"{host}:{port}")
        assert await pool.evalsha(b"return ARGV[1]", script.sha, [], ["three"]) == b"three"
        assert idle.lost
        assert len(pool._idle) == 1
        assert pool._idle[0] is not idle

        url = stack.urls["redis_url"]
        wrong = ScriptPool.of(Redis.from_url(url.replace(url.split("//:")[1].split("@")[0], "wrong")))
        assert wrong is not None
        with pytest.raises(RedisConnectionError, match="set-up"):
            await wrong.evalsha(b"return 1", script.sha, [], [])
    finally:
        pool.close()
        await redis.aclose()
