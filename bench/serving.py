"""uvicorn vs granian, as ``serve`` would run each: small requests, 1 vs 2 workers, the 1 GiB upload.

For each server and worker count: the bare Litestar endpoint (``bench._bare``) and the app
(``omninode_bridge.app:create_app``) under wrk, 32 connections: ``POST /hash`` 1 KiB and
``GET /health/live``; with one worker also the 1 GiB streamed ``POST /hash`` (GiB/s, RSS growth) and
RSS per worker after the load. Ratios are against the bare endpoint served the same way, same run.

Run: ``.venv/bin/python -m bench.serving [--seconds 5] [--servers uvicorn,granian]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench._gib import gib_upload
from bench._tools import _wait_ready, discard, require_wrk, wrk
from bench._uvicorn import command as uvicorn_command
from omninode_bridge.embedded import EmbeddedStack, free_port
from omninode_bridge.migrations import upgrade

KEY = "onb_bench_key_0123456789abcdef0123456789"
HASH_BODY = 'local payload = string.rep("h", 1024)\nfunction body(tid, n) return payload end\n'
GET = "function body(tid, n) return nil end\n"
RAW = {"x-api-key": KEY, "content-type": "application/octet-stream"}
MIB = 1024**2


def command(server: str, target: str, port: int, workers: int, factory: bool) -> list[str]:
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", *(["--factory"] if factory else []),
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
                "--log-level", "warning", "--no-ws", target]  # fmt: skip
    return uvicorn_command(target, port, workers=workers, factory=factory)


@contextlib.contextmanager
def serve(server: str, target: str, env: dict[str, str], workers: int) -> Iterator[tuple[str, list[psutil.Process]]]:
    port = free_port()
    with open(os.devnull, "wb") as devnull:
        argv = command(server, target, port, workers, target.endswith("create_app"))
        process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=devnull)
        try:
            _wait_ready(process, f"http://127.0.0.1:{port}")
            parent = psutil.Process(process.pid)
            children = [c for c in parent.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
            yield f"http://127.0.0.1:{port}", (children if workers > 1 or server == "granian" else [parent])
        finally:
            process.terminate()
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--servers", default="uvicorn,granian")
    args = parser.parse_args()
    require_wrk()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-serving-")))
    stack.start()
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    try:
        urls = stack.urls
        upgrade(urls["database_url"])
        env = {
            "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"],
            "OMNINODE_REDIS_URL": urls["redis_url"], "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"],
            "OMNINODE_API_KEYS": f"bench:{KEY}:admin", "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000",
            "OMNINODE_LOG_LEVEL": "INFO",
        }  # fmt: skip
        for server in args.servers.split(","):
            for workers in (1, 2):
                with serve(server, "bench._bare:app", {}, workers) as (base, _):
                    wrk(base + "/bare", HASH_BODY, RAW, connections=32, seconds=1)
                    bare = wrk(base + "/bare", HASH_BODY, RAW, connections=32, seconds=args.seconds)
                    bare_live = wrk(base + "/health/live", GET, {}, connections=32, seconds=args.seconds, method="GET")
                with serve(server, "omninode_bridge.app:create_app", env, workers) as (base, processes):
                    wrk(base + "/hash", HASH_BODY, RAW, connections=32, seconds=1)
                    app = wrk(base + "/hash", HASH_BODY, RAW, connections=32, seconds=args.seconds)
                    live = wrk(base + "/health/live", GET, {}, connections=32, seconds=args.seconds, method="GET")
                    rss = ", ".join(f"{p.memory_info().rss / MIB:.0f}" for p in processes)
                    out(f"| {server} | {workers} | /hash 1 KiB | {app.rate:,.0f} (p99 {app.p99_ms:.1f} ms) | "
                        f"{bare.rate:,.0f} | {app.rate / bare.rate:.2f} |")  # fmt: skip
                    out(f"| {server} | {workers} | /health/live | {live.rate:,.0f} | {bare_live.rate:,.0f} | "
                        f"{live.rate / bare_live.rate:.2f} |")  # fmt: skip
                    out(f"| {server} | {workers} | RSS per worker after load | {rss} MiB | | |")
                    if workers == 1:
                        up = asyncio.run(gib_upload(base, KEY, processes[0].pid))
                        out(f"| {server} | 1 | POST /hash 1 GiB | {up.rate:.2f} GiB/s, RSS +{up.rss_growth / MIB:.0f} "
                            f"MiB, server CPU {up.server_cpu_s:.2f} s | blake3 1 thread {up.raw_rate:.2f} GiB/s | "
                            f"{up.rate / up.raw_rate:.2f} |")  # fmt: skip
    finally:
        discard(stack)
    print("\n| server | workers | figure | app | bare, same server | ratio |\n|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
