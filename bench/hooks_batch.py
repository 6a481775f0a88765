"""Hook ingestion alone: ``POST /hooks/batch`` (1,000 hooks a request, few connections) and ``POST /hooks``
single (32 connections and one), by wrk, with the app's CPU time per 1,000 hooks and a profile hook.

The same request bodies as ``bench.suite``'s hook figures, against ``omninode-bridge serve`` on a fresh
embedded stack; the baseline, from the same run, is the bare Litestar endpoint decoding the same batch body.
CPU per hook (the app's worker processes, user + system, before/after each load) holds on a shared machine
where the rate does not. With ``--profile``, py-spy samples the first worker during the batch load.

Run: ``.venv/bin/python -m bench.hooks_batch [--seconds 10] [--connections 4] [--workers 1] [--single]
[--profile out.svg]``
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import psutil
from sqlalchemy.engine import make_url

from bench._bodies import BATCH_BODY, HOOK_BODY
from bench._tools import Load, discard, require_wrk, serve_app, serve_bare, worker_processes, wrk
from bench.suite import AUTH, KEY
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade


def _cpu(workers: list[psutil.Process]) -> float:
    return sum(sum(w.cpu_times()[:2]) for w in workers)


def _measured(
    workers: list[psutil.Process], url: str, body: str, *, connections: int, seconds: float
) -> tuple[Load, float]:
    """A wrk load and the workers' CPU seconds it cost."""
    before = _cpu(workers)
    load = wrk(url, body, AUTH, connections=connections, seconds=seconds)
    return load, _cpu(workers) - before


def _processed(database_url: str) -> int:
    """How many hooks the processor has applied so far."""

    async def count() -> int:
        url = make_url(database_url).set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            return int(await connection.fetchval("SELECT count(*) FROM hook_events WHERE status = 'processed'"))
        finally:
            await connection.close()

    return asyncio.run(count())


def _report(name: str, load: Load, cpu: float, per_request: int) -> None:
    hooks = load.requests * per_request
    print(f"{name}: {load.rate * per_request:,.0f} events/s (p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, "
          f"{load.errors} errors) | app CPU {cpu * 1e6 / max(hooks, 1):,.1f} ms per 1,000 hooks "
          f"({hooks / max(cpu, 1e-9):,.0f} hooks per CPU-second)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--single", action="store_true", help="Also POST /hooks single at 32 connections and 1.")
    parser.add_argument("--drain", type=float, default=10.0, help="Seconds the processor works off the backlog.")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy flame graph of the first worker (.svg; collapsed stacks if .txt).",
    )
    parser.add_argument("--profile-drain", type=Path, default=None, help="As --profile, while the backlog drains.")
    parser.add_argument("--profile-single", type=Path, default=None, help="As --profile, single hooks at 32 conns.")
    args = parser.parse_args()
    require_wrk()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-batch-")))
    stack.start()
    try:
        urls = stack.urls
        upgrade(urls["database_url"])
        env = {
            "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"],
            "OMNINODE_REDIS_URL": urls["redis_url"],
            "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
            "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000", "OMNINODE_LOG_LEVEL": "WARNING",
        }  # fmt: skip
        run = uuid.uuid4().hex[:8]
        body = BATCH_BODY.format(run=run)
        with serve_bare() as (bare, _):
            baseline = wrk(bare + "/bare", body, {"content-type": "application/octet-stream"},
                           connections=args.connections, seconds=args.seconds)  # fmt: skip
        with serve_app(env, args.workers) as (app, server):
            workers = worker_processes(server)
            spy = None
            singles = []
            if args.single:
                # First, before the batches leave a backlog: the processor shares the CPU with these.
                wrk(app + "/hooks", HOOK_BODY.format(run=f"{run}-warm"), AUTH, connections=32, seconds=2)
                for connections in (32, 1):
                    hook = HOOK_BODY.format(run=f"{run}-{connections}")
                    if args.profile_single and connections == 32:
                        spy = subprocess.Popen([".venv/bin/py-spy", "record", "-p", str(workers[0].pid), "-o",
                                                str(args.profile_single), "-d", str(int(args.seconds)),
                                                "--nonblocking", "--format", "raw"])  # fmt: skip
                    applied = _processed(urls["database_url"])
                    load, cpu = _measured(workers, app + "/hooks", hook, connections=connections, seconds=args.seconds)
                    applied = _processed(urls["database_url"]) - applied
                    singles.append((connections, load, cpu, applied))
                    if spy is not None:
                        spy.wait()
                        spy = None
            wrk(app + "/hooks/batch", body, AUTH, connections=args.connections, seconds=2)  # warm-up
            if args.profile:
                spy = subprocess.Popen([".venv/bin/py-spy", "record", "-p", str(workers[0].pid), "-o",
                                        str(args.profile), "-d", str(int(args.seconds)), "--nonblocking",
                                        *(["--format", "raw"] if args.profile.suffix == ".txt" else [])])  # fmt: skip
            batch, batch_cpu = _measured(workers, app + "/hooks/batch", body, connections=args.connections,
                                         seconds=args.seconds)  # fmt: skip
            if spy is not None:
                spy.wait()
                spy = None
            # The backlog the load left: what the in-process hooks processor applies per CPU-second, unloaded.
            before, cpu_before, started = _processed(urls["database_url"]), _cpu(workers), time.monotonic()
            if args.profile_drain:
                subprocess.run([".venv/bin/py-spy", "record", "-p", str(workers[0].pid), "-o",
                                str(args.profile_drain), "-d", str(int(args.drain)), "--nonblocking", "--format",
                                "raw"], check=False)  # fmt: skip
            else:
                time.sleep(args.drain)
            drained = _processed(urls["database_url"]) - before
            drain_cpu, drain_seconds = _cpu(workers) - cpu_before, time.monotonic() - started
        _report(f"POST /hooks/batch (1,000 a request, {args.connections} conns)", batch, batch_cpu, 1000)
        print(f"  bare endpoint, same body: {baseline.rate * 1000:,.0f} events/s | ratio "
              f"{batch.rate / baseline.rate:.3f}")  # fmt: skip
        print(f"hooks processor, no load: {drained / drain_seconds:,.0f} events/s applied, app CPU "
              f"{drain_cpu * 1e6 / max(drained, 1):,.1f} ms per 1,000 events")  # fmt: skip
        for connections, load, cpu, applied in singles:
            _report(f"POST /hooks single, {connections} conns", load, cpu, 1)
            print(f"  the processor applied {applied:,} hooks meanwhile ({load.requests:,} accepted)")
    finally:
        discard(stack)


if __name__ == "__main__":
    main()
