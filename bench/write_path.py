"""The durable write path alone: ``POST /stamp`` and ``POST /hooks`` at 32 and 1 connections beside pgbench.

A focused part of ``bench.suite`` (issue 13, items 3 and 4): one app worker, wrk for the load, pgbench's plain
``INSERT`` + ``COMMIT`` from the same run as the yardstick. With ``--profile DIR`` each 32-connection run is
also recorded by py-spy (``--idle``: wall clock, so what waits shows) into DIR as flame graphs and a
CPU-seconds-per-request line.

Run: ``.venv/bin/python -m bench.write_path [--seconds 5] [--profile /tmp/prof]``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench._bodies import HOOK_BODY, STAMP_BODY
from bench._tools import Load, discard, pgbench, require_wrk, serve_app, worker_processes, wrk
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade

KEY = "onb_bench_key_0123456789abcdef0123456789"
AUTH = {"x-api-key": KEY, "content-type": "application/json"}


def _line(name: str, load: Load, unit: str, baseline: float) -> None:
    print(f"  {name}: {load.rate:,.0f} {unit}, p50 {load.p50_ms:.2f} p99 {load.p99_ms:.1f} ms, "
          f"errors {load.errors}, ratio to pgbench {load.rate / baseline:.3f}", flush=True)  # fmt: skip


def run(stack: EmbeddedStack, seconds: float, profile: Path | None, extra: dict[str, str], only: str | None) -> None:
    urls = stack.urls
    env = {
        "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"], "OMNINODE_REDIS_URL": urls["redis_url"],
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
        "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000", "OMNINODE_LOG_LEVEL": "WARNING", **extra,
    }  # fmt: skip
    pg32 = pgbench(urls["database_url"], clients=32, seconds=seconds)
    pg1 = pgbench(urls["database_url"], clients=1, seconds=seconds)
    print(f"  pgbench {pg32:,.0f} tps (32 clients), {pg1:,.0f} tps (1 client)", flush=True)
    run_id = uuid.uuid4().hex[:8]
    with serve_app(env, 1) as (app, server):
        worker = worker_processes(server)[0]
        cases = [
            ("stamp", STAMP_BODY.format(run=run_id), "stamps/s"),
            ("hooks", HOOK_BODY.format(run=run_id), "events/s"),
        ]
        wrk(app + "/stamp", STAMP_BODY.format(run=run_id + "warm"), AUTH, connections=32, seconds=2)
        for path, body, unit in cases:
            if only and path != only:
                continue
            with _spy(profile, f"{path}-32-cpu", worker.pid, seconds, idle=False):
                before = worker.cpu_times()
                load = wrk(app + "/" + path, body, AUTH, connections=32, seconds=seconds)
                after = worker.cpu_times()
            cpu = (after.user + after.system - before.user - before.system) / max(load.requests, 1)
            _line(f"POST /{path} 32 conns", load, unit, pg32)
            print(f"    app CPU per request {cpu * 1e6:,.0f} us", flush=True)
            with _spy(profile, f"{path}-1-wall", worker.pid, seconds, idle=True):
                one = wrk(app + "/" + path, body.replace(run_id, run_id + "one"), AUTH, connections=1, seconds=seconds)
            _line(f"POST /{path} 1 conn", one, unit, pg1)


@contextlib.contextmanager
def _spy(folder: Path | None, name: str, pid: int, seconds: float, *, idle: bool) -> Iterator[None]:
    """py-spy on ``pid`` for the block (collapsed stacks in ``folder/name.txt``); nothing without a folder."""
    if folder is None:
        yield
        return
    command = [shutil.which("py-spy") or ".venv/bin/py-spy", "record", "-r", "200", "-d", str(int(seconds)),
               "-p", str(pid), "-f", "raw", "-o", str(folder / f"{name}.txt")]  # fmt: skip
    command += ["--idle"] if idle else []
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--profile", type=Path, default=None, help="Record py-spy flame graphs into this folder.")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the app (repeatable).")
    parser.add_argument("--only", choices=["stamp", "hooks"], default=None, help="Measure one endpoint.")
    args = parser.parse_args()
    require_wrk()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-write-")))
    stack.start()
    try:
        upgrade(stack.urls["database_url"])
        run(stack, args.seconds, args.profile, dict(e.split("=", 1) for e in args.env), args.only)
    finally:
        discard(stack)


if __name__ == "__main__":
    main()
