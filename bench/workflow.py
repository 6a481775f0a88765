"""Workflow engine throughput and latency vs plain commits, on the embedded stack (not run in CI).

In one run, on the same PostgreSQL (``pg_stat_statements`` loaded, to count statements per task):

* **baseline**: single-row ``INSERT`` + commit per statement from ``--clients`` asyncpg connections, measured
  just before each configuration below (no app running), which compares its figures with it;
* with ``omninode-bridge serve`` in 1 and in 2 worker processes (each runs the engine):

  * **single-task runs, one HTTP submit per run**: ``--runs`` workflows of one ``noop`` task POSTed to
    ``/workflows`` over ``--clients`` keep-alive connections, timed from the first submit to the last run's
    ``finished_at``;
  * **single-task runs, bulk submits**: the same ``--runs`` workflows POSTed to ``/workflows/batch`` in
    requests of ``--bulk`` definitions (over up to ``--clients`` connections), timed the same way: what the
    engine does with 1,000 single-task runs once they are submitted;
  * **fan-out**: one workflow of ``--fanout`` independent ``noop`` tasks, submit to completion;
  * **dispatch latency at moderate load** (``started_at - ready_at``, p50/p99): single-task runs submitted at
    ``--paced`` runs/s for 3 s;
  * **chain**: a 10-step ``noop`` chain submitted with ``?wait``, one at a time, end-to-end latency (median);
  * transactions (``pg_stat_database.xact_commit``) and statements (``pg_stat_statements``) per task of the
    single-task phase, with the statements that cost most;
  * CPU per task (user + system, ``psutil``) of the app's worker processes and of PostgreSQL's, for each of the
    three throughput phases: on a shared machine the figure that holds when req/s does not.

Each phase starts once the outbox has drained (the events of the one before relayed to Kafka), so that no phase
runs beside the previous one's trailing relay; a phase's CPU is counted until its own events are relayed.

Durable tasks/s are reported beside the plain commits/s with their ratio (the issue's target: >= 1,000
tasks/s and >= 0.25 of plain commits/s, dispatch p99 < 25 ms at moderate load). On a shared 2-core machine
the figures are indicative; the ratio is the figure to compare. ``--py-spy DIR`` records each worker with
py-spy (CPU, raw collapsed stacks) during the single-task and fan-out phases.

The app runs with a pool of ``--clients`` + 8 connections (see ``main``).

Run: ``.venv/bin/python -m bench.workflow [--runs 1000] [--fanout 1000] [--bulk 100] [--clients 16]
[--processes 1,2]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench._http import percentile
from bench._tools import serve_app, worker_processes
from bench._waits import report_waits, sample_waits
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade

KEY = "onb_bench_workflow_key_0123456789abcdef"
HEADERS = {"X-API-Key": KEY, "content-type": "application/json"}


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


class Poster:
    """POSTs pre-encoded JSON bodies over raw keep-alive connections (an HTTP client library would spend more
    CPU than the server under test, on the same cores)."""

    def __init__(self, base: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)

    def _request(self, path: str, body: bytes) -> bytes:
        lines = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}", f"content-length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in HEADERS.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str, body: bytes) -> bytes:
        reader, writer = conn
        writer.write(self._request(path, body))
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await reader.readexactly(length) if length else b""
        if status >= 300:
            raise RuntimeError(f"POST {path}: {status} {data[:300]!r}")
        return data

    async def many(self, path: str, body: bytes, count: int, clients: int) -> list[str]:
        """POST ``body`` ``count`` times over ``clients`` connections; the run ids answered."""
        queue = list(range(count))
        run_ids: list[str] = []

        async def worker() -> None:
            conn = await self.connect()
            try:
                while queue:
                    queue.pop()
                    run_ids.append(json.loads(await self.post(conn, path, body))["run_id"])
            finally:
                conn[1].close()

        await asyncio.gather(*(worker() for _ in range(clients)))
        return run_ids


async def _until(conn: Any, run_ids: list[str], limit_s: float) -> float:
    """Wait until every run of ``run_ids`` completed; returns when the last one finished (epoch seconds).

    Polls the runs not seen completed yet, by primary key, every 20 ms, and takes the end from the runs' own
    ``finished_at``: polling every 10 ms with a count by name (a scan of wf_runs) took ~28% of a core from the
    server under test, and the end is then exact whatever the polling interval."""
    pending = [uuid.UUID(run_id) for run_id in run_ids]
    deadline = time.monotonic() + limit_s
    while pending:
        done = {r[0] for r in await conn.fetch(
            "SELECT id FROM wf_runs WHERE id = ANY($1::uuid[]) AND status = 'completed'", pending)}  # fmt: skip
        pending = [run_id for run_id in pending if run_id not in done]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} of {len(run_ids)} runs not completed in {limit_s} s")
        await asyncio.sleep(0.02)
    last = await conn.fetchval("SELECT extract(epoch FROM max(finished_at)) FROM wf_runs WHERE id = ANY($1::uuid[])",
                               [uuid.UUID(run_id) for run_id in run_ids])  # fmt: skip
    return float(last)


async def _drain(conn: Any, limit_s: float = 60.0) -> None:
    """Wait until the relay has sent every outbox row (the events of the phase that just ended)."""
    deadline = time.monotonic() + limit_s
    while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM event_outbox_pending)"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the outbox did not drain in {limit_s} s")
        await asyncio.sleep(0.02)


#: The app's statements (not the bench's own polling and counting).
_OURS = "query NOT LIKE '%pg_stat%' AND query NOT LIKE 'SELECT count(*) FROM wf_runs WHERE name%'"

_TOP = (
    "SELECT calls, round(total_exec_time) AS ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS q "
    "FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%' AND query NOT LIKE "
    "'SELECT count(*) FROM wf_runs WHERE name%' ORDER BY total_exec_time DESC LIMIT 12"
)


async def _counters(conn: Any) -> tuple[int, int]:
    await asyncio.sleep(1.2)  # backends flush their statistics within a second of going idle
    xacts = await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = "
                                "current_database()")  # fmt: skip
    calls = await conn.fetchval(f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE {_OURS}")  # noqa: S608
    return int(xacts), int(calls)


async def _dispatch(conn: Any, names: list[str]) -> tuple[float, float, int]:
    rows = await conn.fetch("SELECT extract(epoch FROM t.started_at - t.ready_at) * 1000 AS ms FROM wf_tasks t "
                            "JOIN wf_runs r ON r.id = t.run_id WHERE r.name = ANY($1)", names)  # fmt: skip
    values = [float(r["ms"]) for r in rows]
    return percentile(values, 0.5), percentile(values, 0.99), len(values)


class Cpu:
    """CPU seconds (user + system) of the app's workers and of PostgreSQL's processes since the last call."""

    def __init__(self, pids: list[int], postgres_pid: int | None) -> None:
        self.workers = [psutil.Process(pid) for pid in pids]
        self.postgres = psutil.Process(postgres_pid) if postgres_pid else None
        self.last = self._now()

    def _now(self) -> tuple[float, float]:
        app = sum(sum(w.cpu_times()[:2]) for w in self.workers)
        pg = 0.0
        if self.postgres is not None:
            for proc in [self.postgres, *self.postgres.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a backend that ended meanwhile
                    pg += sum(proc.cpu_times()[:2])
        return app, pg

    def since(self) -> tuple[float, float]:
        """(app, PostgreSQL) CPU seconds since the previous call (backends that ended are not counted)."""
        now = self._now()
        used = (now[0] - self.last[0], max(0.0, now[1] - self.last[1]))
        self.last = now
        return used


def _spy(pids: list[int], out: Path | None, label: str) -> list[subprocess.Popen[bytes]]:
    if out is None or (shutil.which("py-spy") is None and not Path(".venv/bin/py-spy").exists()):
        return []
    binary = shutil.which("py-spy") or ".venv/bin/py-spy"
    out.mkdir(parents=True, exist_ok=True)
    native = ["--native"] if os.environ.get("SPY_NATIVE") else []  # C frames too (asyncpg's protocol, syscalls)
    return [subprocess.Popen([binary, "record", "--pid", str(pid), "-r", "400", "-f", "raw", *native, "-o",
                              str(out / f"{label}-{i}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, pid in enumerate(pids)]  # fmt: skip


def _unspy(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
    for spy in spies:
        spy.wait(timeout=60)


async def _bulk(poster: Poster, conn: Any, pids: list[int], cpu: Cpu, runs: int, bulk: int, clients: int, tag: str,
                spy: Path | None, dsn: str | None) -> dict[str, Any]:  # fmt: skip
    """The single-task runs submitted ``bulk`` at a time to ``POST /workflows/batch``."""
    await conn.execute("SELECT pg_stat_statements_reset()")
    xacts0, calls0 = await _counters(conn)
    spies = _spy(pids, spy, f"bulk{tag}")
    one = {"name": f"bulk{tag}", "tasks": [{"id": "t", "kind": "noop"}]}
    requests = [json.dumps({"workflows": [one] * min(bulk, runs - i)}).encode() for i in range(0, runs, bulk)]
    run_ids: list[str] = []
    cpu.since()
    began, began_at = time.perf_counter(), time.time()

    async def bulk_worker() -> None:
        conn1 = await poster.connect()
        try:
            while requests:
                run_ids.extend(json.loads(await poster.post(conn1, "/workflows/batch", requests.pop()))["run_ids"])
        finally:
            conn1[1].close()

    waits: Counter[tuple[str, str]] = Counter()
    async with sample_waits(dsn, waits) if dsn else contextlib.nullcontext():
        await asyncio.gather(*(bulk_worker() for _ in range(min(clients, len(requests)))))
        submitted = time.perf_counter() - began
        elapsed = await _until(conn, run_ids, 300) - began_at
        await _drain(conn)
    used = cpu.since()
    _unspy(spies)
    xacts1, calls1 = await _counters(conn)
    top = await conn.fetch(_TOP)
    return {"bulk": runs / elapsed, "bulk_cpu": used, "bulk_submit": runs / submitted,
            "bulk_xacts": (xacts1 - xacts0) / runs, "bulk_statements": (calls1 - calls0) / runs,
            "bulk_top": [(r["calls"], r["ms"], r["q"]) for r in top],
            "bulk_dispatch": await _dispatch(conn, [f"bulk{tag}"]), "bulk_waits": waits}  # fmt: skip


async def measure(base: str, dsn: str, pids: list[int], postgres_pid: int | None, runs: int, fanout: int,
                  bulk: int, clients: int, paced: float, tag: str, spy: Path | None,
                  waits: bool) -> dict[str, Any]:  # fmt: skip
    """Every workflow figure against the app at ``base``."""
    poster = Poster(base)
    conn = await asyncpg.connect(dsn)
    result: dict[str, Any] = {}
    warm = json.dumps({"name": f"warm{tag}", "tasks": [{"id": "t", "kind": "noop"}]}).encode()
    # Every connection at once, so that each worker's pool has grown to them before the timed phases (a new
    # connection costs a connect and asyncpg's type introspection, a warm-up cost, not a run's); with several
    # workers, as many per worker (the kernel spreads the connections unevenly).
    await _until(conn, await poster.many("/workflows", warm, 20 * clients, clients * len(pids)), 60)
    await _drain(conn)
    await conn.execute("SELECT pg_stat_statements_reset()")
    xacts0, calls0 = await _counters(conn)

    spies = _spy(pids, spy, f"single{tag}")
    cpu = Cpu(pids, postgres_pid)
    single = json.dumps({"name": f"single{tag}", "tasks": [{"id": "t", "kind": "noop"}]}).encode()
    began, began_at = time.perf_counter(), time.time()
    run_ids = await poster.many("/workflows", single, runs, clients)
    submitted = time.perf_counter() - began
    elapsed = await _until(conn, run_ids, 300) - began_at
    await _drain(conn)
    result["single_cpu"] = cpu.since()
    _unspy(spies)
    xacts1, calls1 = await _counters(conn)
    top = await conn.fetch(_TOP)
    result.update(single=runs / elapsed, submit=runs / submitted, xacts=(xacts1 - xacts0) / runs,
                  statements=(calls1 - calls0) / runs, top=[(r["calls"], r["ms"], r["q"]) for r in top],
                  single_dispatch=await _dispatch(conn, [f"single{tag}"]))  # fmt: skip

    if bulk:
        result.update(await _bulk(poster, conn, pids, cpu, runs, bulk, clients, tag, spy, dsn if waits else None))

    await conn.execute("SELECT pg_stat_statements_reset()")
    xacts0, calls0 = await _counters(conn)
    spies = _spy(pids, spy, f"fanout{tag}")
    cpu.since()
    fan = json.dumps({"name": f"fanout{tag}", "max_parallel": 10_000,
                      "tasks": [{"id": f"t{i}", "kind": "noop"} for i in range(fanout)]}).encode()  # fmt: skip
    conn1 = await poster.connect()
    began_at = time.time()
    fan_id = json.loads(await poster.post(conn1, "/workflows", fan))["run_id"]
    result["fanout"] = fanout / (await _until(conn, [fan_id], 300) - began_at)
    await _drain(conn)
    result["fanout_cpu"] = cpu.since()
    _unspy(spies)
    xacts1, calls1 = await _counters(conn)
    top = await conn.fetch(_TOP)
    result.update(fan_xacts=(xacts1 - xacts0) / fanout, fan_statements=(calls1 - calls0) / fanout,
                  fan_top=[(r["calls"], r["ms"], r["q"]) for r in top])  # fmt: skip

    paced_body = json.dumps({"name": f"paced{tag}", "tasks": [{"id": "t", "kind": "noop"}]}).encode()
    count = int(paced * 3)
    began = time.perf_counter()
    conn1[1].close()
    conn1 = await poster.connect()  # the server closed the idle one
    paced_ids = []
    for i in range(count):  # at a fixed rate, one at a time
        await asyncio.sleep(max(0.0, began + i / paced - time.perf_counter()))
        paced_ids.append(json.loads(await poster.post(conn1, "/workflows", paced_body))["run_id"])
    await _until(conn, paced_ids, 60)
    result["paced"] = await _dispatch(conn, [f"paced{tag}"])

    steps = [{"id": f"s{i}", "kind": "noop", "depends_on": [f"s{i - 1}"] if i else []} for i in range(10)]
    chain = json.dumps({"name": f"chain{tag}", "tasks": steps}).encode()
    latencies = []
    conn1[1].close()
    conn1 = await poster.connect()
    for _ in range(10):
        began = time.perf_counter()
        body = json.loads(await poster.post(conn1, "/workflows?wait=20", chain))
        assert body["status"] == "completed", body
        latencies.append((time.perf_counter() - began) * 1000)
    conn1[1].close()
    result["chain"] = (statistics.median(latencies), max(latencies))
    await conn.close()
    return result


def _cpu(used: tuple[float, float], tasks: int) -> str:
    return f"CPU per task: app {used[0] / tasks * 1e6:,.0f} us, PostgreSQL {used[1] / tasks * 1e6:,.0f} us"


def _report_bulk(plain: float, r: dict[str, Any], runs: int, bulk: int) -> None:
    print(f"single-task runs, POST /workflows/batch of {bulk}: {runs} -> {r['bulk']:,.0f} tasks/s (ratio "
          f"{r['bulk'] / plain:.2f} of plain; submits alone {r['bulk_submit']:,.0f} runs/s); dispatch p50 "
          f"{r['bulk_dispatch'][0]:.1f} ms, p99 {r['bulk_dispatch'][1]:.1f} ms")  # fmt: skip
    print(f"  {_cpu(r['bulk_cpu'], runs)}")
    print(f"  per run: {r['bulk_xacts']:.2f} transactions, {r['bulk_statements']:.2f} statements (submit included)")
    for calls, ms, query in r["bulk_top"]:
        print(f"    {calls:7d} calls {ms:7.0f} ms  {query}")
    if r["bulk_waits"]:
        print("  active backends sampled (share of samples, wait event or CPU, statement):")
        report_waits(r["bulk_waits"])


def report(plain: float, processes: int, r: dict[str, Any], runs: int, fanout: int, bulk: int,
           paced: float) -> None:  # fmt: skip
    print(f"== {processes} app process(es)")
    print(f"single-task runs, one POST /workflows per run: {runs} -> {r['single']:,.0f} tasks/s (ratio "
          f"{r['single'] / plain:.2f} of plain; submits alone {r['submit']:,.0f}/s); dispatch under this flood "
          f"p50 {r['single_dispatch'][0]:.1f} ms, p99 {r['single_dispatch'][1]:.1f} ms")  # fmt: skip
    print(f"  {_cpu(r['single_cpu'], runs)}")
    print(f"  per run: {r['xacts']:.2f} transactions, {r['statements']:.2f} statements (submit included)")
    for calls, ms, query in r["top"]:
        print(f"    {calls:7d} calls {ms:7.0f} ms  {query}")
    if "bulk" in r:  # --bulk 0 skips it (an app without POST /workflows/batch)
        _report_bulk(plain, r, runs, bulk)
    print(f"fan-out run of {fanout} tasks: {r['fanout']:,.0f} tasks/s (ratio {r['fanout'] / plain:.2f} of plain)")
    print(f"  {_cpu(r['fanout_cpu'], fanout)}")
    print(f"  per task: {r['fan_xacts']:.2f} transactions, {r['fan_statements']:.2f} statements")
    for calls, ms, query in r["fan_top"]:
        print(f"    {calls:7d} calls {ms:7.0f} ms  {query}")
    p50, p99, n = r["paced"]
    print(f"dispatch latency at {paced:g} runs/s, {n} tasks: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"10-step chain end to end (?wait): median {r['chain'][0]:.1f} ms, max {r['chain'][1]:.1f} ms")


def _pid(stack: EmbeddedStack) -> int | None:
    process = stack.postgres.process if stack.postgres is not None else None
    return process.pid if process is not None else None


async def _enable_statements(stack: EmbeddedStack, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    await conn.close()
    assert stack.postgres is not None
    stack.postgres.stop()
    stack.postgres.start()
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000, help="single-task runs (default 1000)")
    parser.add_argument("--fanout", type=int, default=1000, help="tasks of the fan-out run (default 1000)")
    parser.add_argument(
        "--bulk", type=int, default=100, help="definitions per bulk submit (default 100; 0: no bulk phase)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent submitters / connections (default 16)")
    parser.add_argument("--paced", type=float, default=100, help="runs/s of the dispatch-latency phase (100)")
    parser.add_argument("--processes", default="1,2", help="app process counts to measure (default 1,2)")
    parser.add_argument("--py-spy", type=Path, default=None, help="record each worker with py-spy into this dir")
    parser.add_argument("--waits", action="store_true", help="sample PostgreSQL's wait events in the bulk phase")
    args = parser.parse_args()
    base_dir = Path(tempfile.mkdtemp(prefix="bench-workflow-"))
    stack = EmbeddedStack(base_dir)
    stack.start()
    try:
        assert stack.postgres is not None
        urls = stack.urls
        dsn = _dsn(urls["database_url"])
        upgrade(stack.postgres.url)
        asyncio.run(_enable_statements(stack, dsn))
        env = {"OMNINODE_DATABASE_URL": urls["database_url"], "OMNINODE_REDIS_URL": urls["redis_url"],
               "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
               "OMNINODE_RATE_LIMIT_REQUESTS": "10000000", "OMNINODE_LOG_LEVEL": "WARNING",
               # --clients submits at once plus the engine's claim loops, the relay and the health checks: at
               # the default pool (10 + 10 overflow) overflow connections are closed and reopened all the time,
               # each paying a connect and asyncpg's type introspection (~190 introspections a 1,000-run phase).
               "OMNINODE_DATABASE_POOL_SIZE": str(args.clients + 8)}  # fmt: skip
        for processes in (int(p) for p in args.processes.split(",")):
            # Each configuration's baseline is measured just before it (no app running): this machine's speed
            # drifts by tens of percent over minutes, and a baseline taken once at the start compared the second
            # configuration with a machine of several minutes before.
            plain = asyncio.run(baseline(dsn, max(5000, args.runs), args.clients))
            print(f"\nplain INSERT+COMMIT/s ({args.clients} connections), just before {processes} app process(es): "
                  f"{plain:,.0f}")  # fmt: skip
            with serve_app(env, processes) as (base, server):
                pids = [p.pid for p in worker_processes(server)]
                result = asyncio.run(measure(base, dsn, pids, _pid(stack), args.runs, args.fanout, args.bulk,
                                             args.clients, args.paced, f"p{processes}", args.py_spy,
                                             args.waits))  # fmt: skip
            report(plain, processes, result, args.runs, args.fanout, args.bulk, args.paced)
    finally:
        stack.stop()
        shutil.rmtree(base_dir, ignore_errors=True)  # its PostgreSQL, Kafka and Redis data (~130 MB)


if __name__ == "__main__":
    main()
