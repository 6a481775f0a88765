"""Workflow engine throughput and latency vs plain commits, on the embedded stack (not run in CI).

In one run, on the same PostgreSQL:

* **baseline**: single-row ``INSERT`` + commit per statement from ``--clients`` asyncpg connections;
* **single-task runs**: ``--runs`` workflows of one ``noop`` task submitted through the API (in-process
  client, ``--clients`` at once), timed from the first submit to the last run completed;
* **fan-out**: one workflow of ``--fanout`` independent ``noop`` tasks, submit to completion;
* **dispatch latency**: ``started_at - ready_at`` of every task above (p50, p99);
* **chain**: a 10-step ``noop`` chain submitted with ``?wait`` one at a time, end-to-end latency (median).

Durable tasks/s are reported beside the plain commits/s with their ratio (the issue's target: >= 1,000
tasks/s and >= 0.25 of plain commits/s, dispatch p99 < 25 ms). On a shared 2-core machine the figures are
indicative; the ratio is the figure to compare. One app process (the in-process app); two processes are not
measured here.

Run: ``.venv/bin/python -m bench.workflow [--runs 1000] [--fanout 1000] [--clients 16]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from omninode_bridge.app import create_app
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade
from omninode_bridge.settings import load_settings

KEY = "onb_bench_workflow_key_0123456789abcdef"
HEADERS = {"X-API-Key": KEY}


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def baseline(dsn: str, count: int, clients: int) -> float:
    """Plain single-row INSERT + COMMIT per second."""
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_plain (id bigserial PRIMARY KEY, v text)")
    queue = list(range(count))

    async def worker() -> None:
        async with pool.acquire() as conn:
            while queue:
                queue.pop()
                await conn.execute("INSERT INTO bench_plain (v) VALUES ($1)", "x")

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    await pool.close()
    return count / elapsed


async def _completed(conn: Any, name: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM wf_runs WHERE name = $1 AND status = 'completed'", name))


async def _until(conn: Any, name: str, expected: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while await _completed(conn, name) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: not completed within {limit_s} s")
        await asyncio.sleep(0.02)


async def run(urls: dict[str, str], runs: int, fanout: int, clients: int) -> None:
    dsn = _dsn(urls["database_url"])
    plain = await baseline(dsn, max(2000, runs), clients)
    settings = load_settings({"OMNINODE_ENV": "test", "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
                              "OMNINODE_RATE_LIMIT_REQUESTS": "10000000", "OMNINODE_LOG_LEVEL": "WARNING"},
                             env_file=None).with_services(database_url=urls["database_url"],
                                                          redis_url=urls["redis_url"], kafka=urls["kafka"])  # fmt: skip
    conn = await asyncpg.connect(dsn)
    async with AsyncTestClient(create_app(settings), timeout=60) as client:
        single = {"name": "bench_single", "tasks": [{"id": "t", "kind": "noop"}]}
        queue = list(range(runs))

        async def submitter() -> None:
            while queue:
                queue.pop()
                response = await client.post("/workflows", json=single, headers=HEADERS)
                assert response.status_code == 202, response.text

        began = time.perf_counter()
        await asyncio.gather(*(submitter() for _ in range(clients)))
        submitted = time.perf_counter() - began
        await _until(conn, "bench_single", runs, 300)
        single_rate = runs / (time.perf_counter() - began)

        fan = {"name": "bench_fanout", "max_parallel": 10_000,
               "tasks": [{"id": f"t{i}", "kind": "noop"} for i in range(fanout)]}  # fmt: skip
        began = time.perf_counter()
        response = await client.post("/workflows", json=fan, headers=HEADERS)
        assert response.status_code == 202, response.text
        await _until(conn, "bench_fanout", 1, 300)
        fan_rate = fanout / (time.perf_counter() - began)

        chain = {"name": "bench_chain", "tasks": [
            {"id": f"s{i}", "kind": "noop", "depends_on": [f"s{i - 1}"] if i else []} for i in range(10)]}  # fmt: skip
        latencies = []
        for _ in range(10):
            began = time.perf_counter()
            response = await client.post("/workflows?wait=20", json=chain, headers=HEADERS)
            assert response.status_code == 200, response.text
            latencies.append((time.perf_counter() - began) * 1000)
    rows = await conn.fetch(
        "SELECT extract(epoch FROM t.started_at - t.ready_at) * 1000 AS ms FROM wf_tasks t JOIN wf_runs r "
        "ON r.id = t.run_id WHERE r.name IN ('bench_single', 'bench_fanout') ORDER BY ms"
    )
    await conn.close()
    dispatch = [float(r["ms"]) for r in rows]
    p50 = dispatch[len(dispatch) // 2]
    p99 = dispatch[min(len(dispatch) - 1, int(len(dispatch) * 0.99))]
    print(f"plain INSERT+COMMIT/s ({clients} connections): {plain:,.0f}")
    print(f"single-task runs: {runs} in {runs / single_rate:.2f} s -> {single_rate:,.0f} tasks/s "
          f"(ratio {single_rate / plain:.2f} of plain; submits alone {runs / submitted:,.0f}/s)")  # fmt: skip
    print(f"fan-out run of {fanout} tasks: {fan_rate:,.0f} tasks/s (ratio {fan_rate / plain:.2f} of plain)")
    print(f"dispatch latency (ready -> claimed), {len(dispatch)} tasks: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"10-step chain end to end (submit with ?wait, median of 10): {statistics.median(latencies):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000, help="single-task runs (default 1000)")
    parser.add_argument("--fanout", type=int, default=1000, help="tasks of the fan-out run (default 1000)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent submitters / connections (default 16)")
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-workflow-")))
    stack.start()
    try:
        assert stack.postgres is not None
        upgrade(stack.postgres.url)
        asyncio.run(run(stack.urls, args.runs, args.fanout, args.clients))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
