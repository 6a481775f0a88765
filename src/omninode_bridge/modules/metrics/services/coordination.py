"""What processes share through Redis: the fast copy of the statistics, cooldowns, concurrency slots and
per-key spend. Redis is a cache of PostgreSQL here: a missing statistic or spend total is rebuilt from the
durable rows (see :mod:`.store`), so flushing Redis loses no learning and no budget."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
from redis.asyncio import Redis

from omninode_bridge.modules.metrics.services._scripts import ACQUIRE, FINISH, SOURCES, START
from omninode_bridge.modules.metrics.services.resp import ScriptPool
from omninode_bridge.modules.metrics.services.stats import ModelStats

__all__ = ["Coordination", "Observation", "Snapshot"]

_stats_encoder = msgspec.json.Encoder()

_PREFIX = "metrics:"


class _Stats(msgspec.Struct, array_like=True):
    samples: int
    successes: int
    latency_ewma_ms: float
    latency_ewvar: float
    cost_total_usd: float
    quality_n: int
    quality_mean: float
    quality_m2: float


_stats_decoder = msgspec.json.Decoder(_Stats)


def _to_wire(stats: ModelStats) -> bytes:
    return _stats_encoder.encode(
        _Stats(
            stats.samples,
            stats.successes,
            stats.latency_ewma_ms,
            stats.latency_ewvar,
            stats.cost_total_usd,
            stats.quality_n,
            stats.quality_mean,
            stats.quality_m2,
        )
    )


def _from_wire(raw: bytes | str) -> ModelStats:
    s = _stats_decoder.decode(raw)
    return ModelStats(
        s.samples, s.successes, s.latency_ewma_ms, s.latency_ewvar, s.cost_total_usd, s.quality_n, s.quality_mean,
        s.quality_m2,
    )  # fmt: skip


class Observation(NamedTuple):
    """One execution (or feedback score) of a model, as the statistics fold it in (see ``stats.observe``)."""

    model_id: str
    success: bool
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    quality: float | None = None
    counts_as_execution: bool = True


class Snapshot(NamedTuple):
    """What a request's routing reads from Redis, in one round trip."""

    stats: dict[str, ModelStats | None]
    cooling: dict[str, float]
    spent: float | None


class Coordination:
    """Redis state of the metrics module.

    Args:
        redis: The app's client.
        cooldown_failures: Consecutive failures that start a cooldown.
        cooldown_seconds: Its length.
        lease_seconds: Life of a concurrency slot whose holder never released it.
    """

    def __init__(self, redis: Redis, *, cooldown_failures: int, cooldown_seconds: float, lease_seconds: float):
        self.redis = redis
        self.cooldown_failures = cooldown_failures
        self.cooldown_ms = max(1, int(cooldown_seconds * 1000))
        self.lease_ms = int(lease_seconds * 1000)
        self._acquire = redis.register_script(ACQUIRE)
        self._finish = redis.register_script(FINISH)
        self._start = redis.register_script(START)
        # The scripts of every execution go through the small RESP client when it can connect as ``redis``
        # does (see .resp: a tenth of redis-py's CPU per call); None keeps redis-py for them too.
        self._scripts = ScriptPool.of(redis)

    def close(self) -> None:
        """Close the script connections (the app closes its redis-py client itself)."""
        if self._scripts is not None:
            self._scripts.close()

    async def _run(self, script: Any, keys: list[str], args: Sequence[str | int | float]) -> Any:
        if self._scripts is None:
            return await script(keys=keys, args=args)
        return await self._scripts.evalsha(SOURCES[script.script], script.sha, keys, args)

    # One round trip each side of the call -------------------------------------------------------------------
    async def snapshot(
        self, task_type: str, model_ids: Sequence[str], spend: tuple[uuid.UUID, dt.date] | None = None
    ) -> Snapshot:
        """The models' cached statistics, their cooldowns and (with ``spend``) the key's spend of the day, in
        one pipelined round trip."""
        if not model_ids:
            return Snapshot({}, {}, None)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(f"{_PREFIX}stats:{task_type}", list(model_ids))
            for model_id in model_ids:
                pipe.pttl(f"{_PREFIX}cooldown:{model_id}")
            if spend is not None:
                pipe.get(self._spend_key(*spend))
            replies = await pipe.execute()
        raw, ttls = replies[0], replies[1 : 1 + len(model_ids)]
        stats = {m: (_from_wire(r) if r is not None else None) for m, r in zip(model_ids, raw, strict=True)}
        cooling = {m: ttl / 1000 for m, ttl in zip(model_ids, ttls, strict=True) if ttl and ttl > 0}
        spent = float(replies[-1]) if spend is not None and replies[-1] is not None else None
        return Snapshot(stats, cooling, spent)

    async def start(
        self,
        task_type: str,
        model_id: str,
        limit: int,
        *,
        spend: tuple[uuid.UUID, dt.date] | None = None,
        even_if_cooling: bool = False,
    ) -> tuple[Snapshot, str | None, bool]:
        """:meth:`snapshot` and :meth:`acquire` of a plan with one candidate model, in one script call.

        The slot is not taken while the model cools down, unless ``even_if_cooling`` (an explicit model is
        called anyway).

        Returns:
            The snapshot, the lease (None when none was taken) and whether a slot was asked for at all (False:
            the model cools down; True with no lease: it is at its limit).
        """
        lease = uuid.uuid4().hex
        now = int(time.time() * 1000)
        keys = [f"{_PREFIX}stats:{task_type}", f"{_PREFIX}cooldown:{model_id}",
                self._spend_key(*spend) if spend is not None else "", f"{_PREFIX}inflight:{model_id}"]  # fmt: skip
        args: list[str | int] = [model_id, now, limit, now + self.lease_ms, lease, self.lease_ms,
                                 int(even_if_cooling)]  # fmt: skip
        raw, ttl, spent, taken = await self._run(self._start, keys, args)
        # A missing value is Lua's false: a null (RESP2) or a false (RESP3) reply.
        stats = {model_id: _from_wire(raw) if raw else None}
        cooling = {model_id: int(ttl) / 1000} if int(ttl) > 0 else {}
        snapshot = Snapshot(stats, cooling, float(spent) if spent else None)
        return snapshot, lease if int(taken) == 1 else None, int(taken) >= 0

    async def finish(
        self,
        task_type: str,
        *,
        leases: Sequence[tuple[str, str]] = (),
        observations: Sequence[Observation] = (),
        alpha: float,
        answered: str | None = None,
        spend: tuple[uuid.UUID, dt.date, float] | None = None,
    ) -> None:
        """Everything an execution changes in Redis, in one script call: its slots (``(model, lease)``) given
        back, its observations folded into the cached statistics, the answering model's failure run ended,
        and its cost added to the key's day."""
        keys = [f"{_PREFIX}inflight:{model_id}" for model_id, _ in leases]
        args: list[str | int | float] = [len(leases), *(lease for _, lease in leases)]
        args += [f"{_PREFIX}stats:{task_type}", len(observations)]
        for o in observations:
            args += [o.model_id, int(o.counts_as_execution), int(o.success), repr(float(o.latency_ms)),
                     repr(float(o.cost_usd)), int(o.quality is not None), repr(float(o.quality or 0.0)),
                     repr(float(alpha))]  # fmt: skip
        args += [answered or "", f"{_PREFIX}failures:"]
        args += [self._spend_key(spend[0], spend[1]), repr(float(spend[2]))] if spend else ["", "0"]
        await self._run(self._finish, keys, args)

    # Statistics -------------------------------------------------------------------------------------------
    async def stats(self, task_type: str, model_ids: Sequence[str]) -> dict[str, ModelStats | None]:
        """The cached statistics of these models (None where Redis has none: load them from PostgreSQL)."""
        if not model_ids:
            return {}
        raw = await self.redis.hmget(f"{_PREFIX}stats:{task_type}", list(model_ids))
        return {m: (_from_wire(r) if r is not None else None) for m, r in zip(model_ids, raw, strict=True)}

    async def put_stats(self, task_type: str, values: dict[str, ModelStats]) -> None:
        """Cache statistics read from (or just written to) PostgreSQL."""
        if values:
            await self.redis.hset(f"{_PREFIX}stats:{task_type}", mapping={m: _to_wire(s) for m, s in values.items()})

    # Cooldowns --------------------------------------------------------------------------------------------
    async def cooling(self, model_ids: Sequence[str]) -> dict[str, float]:
        """Models cooling down, with the seconds left."""
        if not model_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for model_id in model_ids:
                pipe.pttl(f"{_PREFIX}cooldown:{model_id}")
            ttls = await pipe.execute()
        return {m: ttl / 1000 for m, ttl in zip(model_ids, ttls, strict=True) if ttl and ttl > 0}

    async def failed(self, model_id: str) -> bool:
        """Count a failure; True when it starts the model's cooldown."""
        key = f"{_PREFIX}failures:{model_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, self.cooldown_ms * 20)
            count, _ = await pipe.execute()
        if int(count) < self.cooldown_failures:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{_PREFIX}cooldown:{model_id}", b"1", px=self.cooldown_ms)
            pipe.delete(key)
            await pipe.execute()
        return True

    async def succeeded(self, model_id: str) -> None:
        """A success ends the run of consecutive failures."""
        await self.redis.delete(f"{_PREFIX}failures:{model_id}")

    # Concurrency ------------------------------------------------------------------------------------------
    async def acquire(self, model_id: str, limit: int) -> str | None:
        """A concurrency slot of the model (across processes), or None when all ``limit`` are taken."""
        lease = uuid.uuid4().hex
        now = int(time.time() * 1000)
        args: list[str | int] = [now, limit, now + self.lease_ms, lease, self.lease_ms]
        taken = await self._run(self._acquire, [f"{_PREFIX}inflight:{model_id}"], args)
        return lease if int(taken) == 1 else None

    async def release(self, model_id: str, lease: str) -> None:
        """Give a slot back."""
        await self.redis.zrem(f"{_PREFIX}inflight:{model_id}", lease)

    async def in_flight(self, model_ids: Sequence[str]) -> dict[str, int]:
        """Calls in flight per model (unexpired leases)."""
        now = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for model_id in model_ids:
                pipe.zcount(f"{_PREFIX}inflight:{model_id}", now, "+inf")
            counts = await pipe.execute()
        return {m: int(c) for m, c in zip(model_ids, counts, strict=True)}

    # Budgets ----------------------------------------------------------------------------------------------
    @staticmethod
    def _spend_key(key_id: uuid.UUID, day: dt.date) -> str:
        return f"{_PREFIX}spent:{key_id}:{day.isoformat()}"

    async def spent(self, key_id: uuid.UUID, day: dt.date) -> float | None:
        """What the key spent on ``day`` (None when Redis does not know: sum it from PostgreSQL)."""
        raw = await self.redis.get(self._spend_key(key_id, day))
        return float(raw) if raw is not None else None

    async def seed_spent(self, key_id: uuid.UUID, day: dt.date, total: float) -> None:
        """Set the day's total from PostgreSQL unless another process did first."""
        await self.redis.set(self._spend_key(key_id, day), repr(total), nx=True, ex=2 * 86_400)

    async def spend(self, key_id: uuid.UUID, day: dt.date, cost: float) -> None:
        """Add an execution's cost to the key's day (only once the day's total is known to Redis)."""
        key = self._spend_key(key_id, day)
        if cost > 0 and await self.redis.exists(key):
            await self.redis.incrbyfloat(key, cost)
