"""``make bench``: every figure of issue 13 in one table, each beside its baseline from the same run.

HTTP load comes from wrk (C, keep-alive, 2 threads), the database yardstick from pgbench (PostgreSQL's
own client: a plain ``INSERT`` of a 1 KiB row + ``COMMIT`` per transaction), both against the embedded
stack this run starts. The app runs as production does (``omninode-bridge serve``, default settings
except a rate limit raised out of the way and WARNING logs); the bare baseline is ``bench._bare`` under
the same uvicorn. Numbers from a shared 2-core machine are indicative; the ratios, from one run, are
what to compare.

Run: ``.venv/bin/python -m bench.suite [--seconds 5]`` (needs ``wrk``: ``apt-get install wrk``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

from bench._bodies import BARE_BODY, BATCH_BODY, HASH_BODY, HOOK_BODY, STAMP_BODY
from bench._reducer import postgres_cpu, reducer_runs
from bench._tools import (
    Load,
    drain_backlog,
    pgbench,
    serve_app,
    serve_bare,
    table_bench,
    worker_processes,
    wrk,
)
from bench._upload import gib_upload
from omninode_bridge.embedded import EmbeddedStack

KEY = "onb_bench_key_0123456789abcdef0123456789"
MIB = 1024**2
AUTH = {"x-api-key": KEY, "content-type": "application/json"}
RAW = {"x-api-key": KEY, "content-type": "application/octet-stream"}

rows: list[tuple[str, str, str, str, str]] = []


def row(figure: str, ours: str, baseline: str, ratio: float | None, target: str) -> None:
    """Record (and print at once, so a long run shows progress) one line of the table."""
    rows.append((figure, ours, baseline, "" if ratio is None else f"{ratio:.3f}", target))
    print(f"  {figure}: {ours} | {baseline} | {rows[-1][3]}", flush=True)


def fmt(load: Load, unit: str = "req/s", per_request: int = 1) -> str:
    return f"{load.rate * per_request:,.0f} {unit}, p50 {load.p50_ms:.1f} p99 {load.p99_ms:.1f} ms"


@contextmanager
def peak_rss(processes: list[psutil.Process]) -> Iterator[dict[int, int]]:
    """Sample the processes' RSS every 50 ms; yields {pid: peak bytes}, filled when the block ends."""
    peaks = {p.pid: p.memory_info().rss for p in processes}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for p in processes:
                peaks[p.pid] = max(peaks[p.pid], p.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join()


def run(stack: EmbeddedStack, seconds: float) -> None:
    urls = stack.urls
    env = {
        "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"], "OMNINODE_REDIS_URL": urls["redis_url"],
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
        "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000", "OMNINODE_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    run_id = uuid.uuid4().hex[:8]

    def load(base: str, path: str, body: str, headers: dict[str, str], connections: int) -> Load:
        # Each figure measures its own endpoint: the events and hooks an earlier run left are worked off first
        # (after a 32-connection /stamp run the relay, reducer and consumers kept a core busy for seconds,
        # which the next figure measured: /hash at one connection read 579 req/s against 2,000 after a drain).
        waited, left = drain_backlog(urls["database_url"], limit_s=60)
        if waited > 1 or left:
            print(f"  backlog drained in {waited:.0f} s ({left} left) before {path} c={connections}", flush=True)
        result = wrk(base + path, body, headers, connections=connections, seconds=seconds)
        if result.errors:
            print(f"  warning: {path} c={connections}: {result.errors} errors", flush=True)
        return result

    print("baselines: bare Litestar endpoint and pgbench", flush=True)
    with serve_bare() as (bare, bare_process):
        bare32 = load(bare, "/bare", BARE_BODY, {"content-type": "application/octet-stream"}, 32)
        bare1 = load(bare, "/bare", BARE_BODY, {"content-type": "application/octet-stream"}, 1)
        bare_rss = psutil.Process(bare_process.pid).memory_info().rss
    pg_tps = pgbench(urls["database_url"], clients=32, seconds=seconds)
    pg_one = pgbench(urls["database_url"], clients=1, seconds=seconds)
    print(f"  bare {bare32.rate:,.0f} req/s; pgbench {pg_tps:,.0f} tps (32 clients), {pg_one:,.0f} tps (1)", flush=True)

    figures: dict[tuple[str, int], Load] = {}
    for workers in (1, 2):
        print(f"the app, {workers} worker(s)", flush=True)
        with serve_app(env, workers) as (app, server):
            processes = worker_processes(server)
            # Warm-up, not measured: right after start-up the consumers are joining their groups and every
            # worker opens its first connections (a cold first run showed a p99 of 1.6 s that is not the
            # steady state this table reports).
            # 8 s, as bench.registry: the consumer groups join ~5 s after start-up and then catch up, and a 2 s
            # warm-up left that in the first figure (one-worker /hash read 1,991-2,331 req/s against 3,138).
            wrk(app + "/hash", HASH_BODY, RAW, connections=32, seconds=8)
            figures["hash", workers] = load(app, "/hash", HASH_BODY, RAW, 32)
            stamp_body = STAMP_BODY.format(run=f"{run_id}w{workers}")
            with peak_rss(processes) as peaks:
                figures["stamp", workers] = load(app, "/stamp", stamp_body, AUTH, 32)
            if workers == 2:
                row("RSS per worker, steady /stamp load", ", ".join(f"{v / MIB:.0f}" for v in peaks.values()) + " MiB",
                    f"bare server {bare_rss / MIB:.0f} MiB", max(peaks.values()) / bare_rss, "< 150 MiB")  # fmt: skip
                continue
            h32, s32 = figures["hash", 1], figures["stamp", 1]
            row("POST /hash 1 KiB, 32 conns", fmt(h32), "bare " + fmt(bare32), h32.rate / bare32.rate, ">= 0.6")
            h1 = load(app, "/hash", HASH_BODY, RAW, 1)
            row("POST /hash 1 KiB, 1 conn", fmt(h1), "bare " + fmt(bare1), h1.rate / bare1.rate, "")
            row("POST /stamp 1 KiB distinct, 32 conns", fmt(s32, "stamps/s"), f"pgbench {pg_tps:,.0f} tps",
                s32.rate / pg_tps, ">= 1,000/s and >= 0.1, p99 < 100 ms")  # fmt: skip
            s1 = load(app, "/stamp", STAMP_BODY.format(run=f"{run_id}one"), AUTH, 1)
            row("POST /stamp, 1 conn", fmt(s1, "stamps/s"), f"pgbench 1 client {pg_one:,.0f} tps",
                s1.rate / pg_one, "p50 < 3 ms")  # fmt: skip
            k32 = load(app, "/hooks", HOOK_BODY.format(run=run_id), AUTH, 32)
            row("POST /hooks single, 32 conns", fmt(k32, "events/s"), f"pgbench {pg_tps:,.0f} tps",
                k32.rate / pg_tps, ">= 2,000/s and >= 0.15")  # fmt: skip
            k1 = load(app, "/hooks", HOOK_BODY.format(run=run_id + "one"), AUTH, 1)
            row("POST /hooks, 1 conn", fmt(k1, "events/s"), f"pgbench 1 client {pg_one:,.0f} tps",
                k1.rate / pg_one, "p50 < 2 ms")  # fmt: skip
            kb = load(app, "/hooks/batch", BATCH_BODY.format(run=run_id), AUTH, 4)
            row("POST /hooks/batch (1,000), 4 conns", fmt(kb, "events/s", 1000), f"pgbench {pg_tps:,.0f} tps",
                kb.rate * 1000 / pg_tps, ">= 50,000 events/s")  # fmt: skip
            waited, left = drain_backlog(urls["database_url"])
            print(f"  backlog of the write runs drained in {waited:.0f} s ({left} left)", flush=True)
            up = asyncio.run(gib_upload(app, KEY, processes[0].pid))
            upload = f"{up.rate:.2f} GiB/s, RSS +{up.rss_growth / MIB:.0f} MiB, server CPU {up.server_cpu_s:.2f} s"
            row("POST /hash 1 GiB raw upload", upload, f"blake3 1 thread {up.raw_rate:.2f} GiB/s",
                up.rate / up.raw_rate, ">= 1 GiB/s, RSS < +64 MiB")  # fmt: skip
    for name in ("hash", "stamp"):
        one, two = figures[name, 1], figures[name, 2]
        row(f"2 workers vs 1: /{name}, 32 conns", f"{two.rate:,.0f} req/s", f"1 worker {one.rate:,.0f} req/s",
            two.rate / one.rate, ">= 1.6")  # fmt: skip
    server = postgres_cpu(stack.postgres.data_dir) if stack.postgres is not None else None
    for r in asyncio.run(reducer_runs(urls["database_url"], 50_000, postgres=server)):
        cpu = "" if r.postgres_cpu_ms is None else f" (PostgreSQL {r.postgres_cpu_ms:.1f} ms CPU per 1,000)"
        row(f"reducer, batches of {r.batch}", f"{r.items_per_s:,.0f} items/s{cpu}",
            f"in memory {r.memory_items_per_s:,.0f} items/s", r.items_per_s / r.memory_items_per_s,
            ">= 50,000 items/s at 1,000")  # fmt: skip


def main() -> None:
    table_bench(__doc__, "bench-suite-", run, rows)


if __name__ == "__main__":
    main()
