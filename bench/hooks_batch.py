"""``POST /hooks/batch`` alone: events/s of 1,000-hook batches over a few connections (wrk), with a profile hook.

The same request bodies as ``bench.suite``'s batch figure, against ``omninode-bridge serve`` on a fresh
embedded stack; the baseline, from the same run, is the bare Litestar endpoint decoding the same body.
With ``--profile``, py-spy samples the app's worker while the load runs and writes a flame graph.

Run: ``.venv/bin/python -m bench.hooks_batch [--seconds 10] [--connections 4] [--workers 1] [--profile out.svg]``
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import uuid
from pathlib import Path

from bench._tools import require_wrk, serve_app, serve_bare, worker_processes, wrk
from bench.suite import AUTH, BATCH_BODY, KEY
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy flame graph of the first worker (.svg; collapsed stacks if .txt).",
    )
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
        body = BATCH_BODY.format(run=uuid.uuid4().hex[:8])
        with serve_bare() as (bare, _):
            baseline = wrk(bare + "/bare", body, {"content-type": "application/octet-stream"},
                           connections=args.connections, seconds=args.seconds)  # fmt: skip
        with serve_app(env, args.workers) as (app, server):
            workers = worker_processes(server)
            spy = None
            if args.profile:
                pid = workers[0].pid
                spy = subprocess.Popen([".venv/bin/py-spy", "record", "-p", str(pid), "-o", str(args.profile), "-d",
                                        str(int(args.seconds)), "--nonblocking",
                                        *(["--format", "raw"] if args.profile.suffix == ".txt" else [])])  # fmt: skip
            cpu_before = sum(sum(w.cpu_times()[:2]) for w in workers)
            ours = wrk(app + "/hooks/batch", body, AUTH, connections=args.connections, seconds=args.seconds)
            cpu = sum(sum(w.cpu_times()[:2]) for w in workers) - cpu_before
            if spy is not None:
                spy.wait()
        print(f"POST /hooks/batch: {ours.rate * 1000:,.0f} events/s ({ours.rate:.1f} req/s, p50 {ours.p50_ms:.0f} ms,"
              f" p99 {ours.p99_ms:.0f} ms, {ours.errors} errors) | bare endpoint, same body: "
              f"{baseline.rate * 1000:,.0f} events/s | ratio {ours.rate / baseline.rate:.3f}")  # fmt: skip
        # CPU per event holds on a shared machine where the rate does not: what one free core would sustain.
        requests = ours.rate * args.seconds
        print(f"app CPU: {cpu * 1e3 / max(requests, 1):.1f} ms per 1,000-hook request "
              f"({requests * 1000 / max(cpu, 1e-9):,.0f} events per CPU-second)")  # fmt: skip
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
