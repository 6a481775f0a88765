"""Stamping benchmarks, each beside its baseline from the same run (issue 4).

* ``/hash`` with 1 KiB and 1 MiB bodies vs a bare Litestar endpoint that returns the body length, both
  served by uvicorn (uvloop, httptools, one process) with the same settings, loaded by the same client.
* A 1 GiB stream: raw one-thread ``blake3`` over the same bytes vs the service's streaming hasher
  (in-process, no HTTP) vs ``POST /hash`` over HTTP, with the server's peak RSS growth.
* ``/stamp`` with distinct 1 KiB contents (durable: each 201 means committed) at 32 concurrent clients, vs
  plain single-row INSERTs (autocommit) through an asyncpg pool of the app's size on the same PostgreSQL.
* The reducer: decode + claim + aggregate + upsert of STAMP_CREATED events in contract-sized batches, vs
  aggregating the same decoded items in memory only.

Run: ``.venv/bin/python -m bench.stamping [--seconds 5] [--concurrency 32]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import msgspec
import psutil
from blake3 import blake3

from bench._http import load, serve
from bench._tools import discard
from bench._upload import reducer_rates
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade
from omninode_bridge.modules.stamping.services import hash_stream
from omninode_bridge.settings import load_settings

KEY = "onb_bench_key_0123456789abcdef0123456789"
GIB = 1024**3
MIB = 1024**2


def _row(name: str, figure: str, baseline: str, ratio: float, target: str) -> None:
    print(f"{name:<34} {figure:>22} {baseline:>22} {ratio:>7.2f}  {target}")


async def bench_hash(app: str, bare: str, seconds: float, concurrency: int) -> None:
    headers = {"x-api-key": KEY, "content-type": "application/octet-stream"}
    for label, size, clients in (("/hash 1 KiB", 1024, concurrency), ("/hash 1 MiB", MIB, 8)):
        body = os.urandom(size)
        base = await load(bare, "/bare", body=body, headers={"content-type": "application/octet-stream"},
                          concurrency=clients, seconds=seconds)  # fmt: skip
        ours = await load(app, "/hash", body=body, headers=headers, concurrency=clients, seconds=seconds)
        assert ours.errors == 0, ours
        assert base.errors == 0, base
        _row(f"{label} req/s (c={clients})", f"{ours.rate:,.0f} p99 {ours.p99_ms:.1f}ms",
             f"{base.rate:,.0f} p99 {base.p99_ms:.1f}ms", ours.rate / base.rate,
             ">= 0.80" if size == 1024 else "(no target)")  # fmt: skip


async def bench_inline_vs_thread() -> None:
    """Why small inputs are hashed inline and why there is no hasher pool (seed 001 had both)."""
    rounds = 2000
    for size in (1024, 64 * 1024, 128 * 1024, MIB):
        data = os.urandom(size)
        began = time.perf_counter()
        for _ in range(rounds):
            blake3(data).hexdigest()
        inline_us = (time.perf_counter() - began) / rounds * 1e6
        began = time.perf_counter()
        for _ in range(rounds // 4):
            await asyncio.to_thread(lambda data=data: blake3(data).hexdigest())
        thread_us = (time.perf_counter() - began) / (rounds // 4) * 1e6
        _row(f"hash {size // 1024} KiB: inline vs thread", f"{inline_us:,.1f} us inline", f"{thread_us:,.1f} us thread",
             thread_us / inline_us, "(thread/inline)")  # fmt: skip
    began = time.perf_counter()
    for _ in range(100_000):
        blake3()
    print(f"{'':<34} a new blake3 hasher costs {(time.perf_counter() - began) * 10:.2f} us (so no pool)")


async def bench_gib(app: str, app_pid: int) -> None:
    block = os.urandom(MIB)
    began = time.perf_counter()
    raw = blake3(max_threads=1)
    for _ in range(GIB // MIB):
        raw.update(block)
    raw_seconds = time.perf_counter() - began

    view = memoryview(block)

    async def chunks(size: int) -> object:
        # The same 1 GiB in ``size`` pieces, as a server receives them (no copies on this side).
        for _ in range(GIB // MIB):
            for offset in range(0, MIB, size):
                yield view[offset : offset + size]

    began = time.perf_counter()
    digest = await hash_stream(chunks(64 * 1024), max_bytes=2 * GIB)  # type: ignore[arg-type]
    layer_seconds = time.perf_counter() - began
    assert digest.file_hash == raw.hexdigest()

    server = psutil.Process(app_pid)
    before = peak = server.memory_info().rss
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as http:
        response = await http.post(app + "/hash", content=chunks(MIB),
                                   headers={"x-api-key": KEY, "content-type": "application/octet-stream"})  # fmt: skip
    http_seconds = time.perf_counter() - began
    stop.set()
    sampler.join()
    assert response.json()["file_hash"] == raw.hexdigest(), response.text
    raw_rate = 1 / raw_seconds
    _row("1 GiB: service hasher (in-process)", f"{1 / layer_seconds:.2f} GiB/s", f"{raw_rate:.2f} GiB/s raw 1T",
         raw_seconds / layer_seconds, ">= 0.70")  # fmt: skip
    _row("1 GiB: POST /hash over HTTP", f"{1 / http_seconds:.2f} GiB/s", f"{raw_rate:.2f} GiB/s raw 1T",
         raw_seconds / http_seconds, ">= 0.70")  # fmt: skip
    print(f"{'':<34} server RSS growth during the 1 GiB upload: {(peak - before) / MIB:.1f} MiB (target < 64)")


async def bench_stamp(app: str, database_url: str, seconds: float, concurrency: int, pool_size: int) -> None:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    pad = "x" * 960

    def body_for(worker: int, sequence: int) -> bytes:
        return msgspec.json.encode({"content": f"{worker} {sequence} {pad}", "namespace": namespace})

    ours = await load(app, "/stamp", body=b"", headers={"x-api-key": KEY, "content-type": "application/json"},
                      concurrency=concurrency, seconds=seconds, body_for=body_for)  # fmt: skip
    assert ours.errors == 0, ours

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_plain (id uuid PRIMARY KEY, namespace text, body text)")
    stop_at = time.perf_counter() + seconds
    latencies: list[float] = []

    async def worker() -> None:
        while (now := time.perf_counter()) < stop_at:
            await pool.execute("INSERT INTO bench_plain VALUES ($1, $2, $3)", uuid.uuid4(), namespace, pad)
            latencies.append((time.perf_counter() - now) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await pool.close()
    from bench._http import percentile

    plain_rate = len(latencies) / seconds
    _row(f"/stamp 1 KiB durable (c={concurrency})", f"{ours.rate:,.0f}/s p50 {ours.p50_ms:.1f} p99 {ours.p99_ms:.1f}",
         f"{plain_rate:,.0f}/s p99 {percentile(latencies, 0.99):.1f}ms", ours.rate / plain_rate,
         ">= 0.50, p99 < 25 ms")  # fmt: skip


async def bench_reducer(database_url: str, items: int) -> None:
    for batch_size, items_per_s, memory_rate in await reducer_rates(database_url, items):
        _row(f"reducer, batches of {batch_size}", f"{items_per_s:,.0f} items/s", f"{memory_rate:,.0f} in-memory",
             items_per_s / memory_rate, ">= 50,000 items/s at 1,000")  # fmt: skip


async def run(stack: EmbeddedStack, seconds: float, concurrency: int, reducer_items: int) -> None:
    urls = stack.urls
    env = {
        "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"], "OMNINODE_REDIS_URL": urls["redis_url"],
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
        "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000", "OMNINODE_LOG_LEVEL": "WARNING",
        # A pool that holds every concurrent request: with the default 10 (+10 overflow), 32 clients make
        # SQLAlchemy open and close overflow connections per request, which measured as the main cost.
        "OMNINODE_DATABASE_POOL_SIZE": str(concurrency), "OMNINODE_DATABASE_MAX_OVERFLOW": "4",
    }  # fmt: skip
    settings = load_settings(env, env_file=None)
    print(f"{'benchmark':<34} {'figure':>22} {'baseline':>22} {'ratio':>7}  target")
    await bench_inline_vs_thread()
    with (
        serve("bench._bare:app", {}) as (bare, _),
        serve("omninode_bridge.app:create_app", env, factory=True) as (
            app,
            app_pid,
        ),
    ):
        await bench_hash(app, bare, seconds, concurrency)
        await bench_gib(app, app_pid)
        await bench_stamp(app, urls["database_url"], seconds, concurrency,
                          settings.database.pool_size + settings.database.max_overflow)  # fmt: skip
    await bench_reducer(urls["database_url"], reducer_items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="Measured seconds per HTTP benchmark.")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reducer-items", type=int, default=50_000)
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-stamping-")))
    stack.start()
    try:
        upgrade(stack.urls["database_url"])
        asyncio.run(run(stack, args.seconds, args.concurrency, args.reducer_items))
    finally:
        discard(stack)


if __name__ == "__main__":
    main()
