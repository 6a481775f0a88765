"""What each platform layer costs a small request: ``POST /hash`` 1 KiB with one layer bypassed at a time.

Each variant is the app (``bench._layers.create_app``, which is ``create_app`` with the named layers
replaced by pass-throughs) under uvicorn in one process, loaded by wrk (32 connections). The cost of a
layer is the server's CPU per request with everything minus that figure with the layer bypassed: CPU time
per request holds on a shared machine far better than req/s does. The bare Litestar endpoint
(``bench._bare``) is the floor. Logs go to /dev/null at ``--log-level`` (INFO, as deployed, by default).

Run: ``.venv/bin/python -m bench.platform [--seconds 5] [--log-level INFO] [--server uvicorn|granian]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench._layers import LAYERS
from bench._tools import _wait_ready, discard, require_wrk, wrk
from bench._uvicorn import command as uvicorn_command
from omninode_bridge.embedded import EmbeddedStack, free_port
from omninode_bridge.migrations import upgrade

KEY = "onb_bench_key_0123456789abcdef0123456789"
HASH_BODY = 'local payload = string.rep("h", 1024)\nfunction body(tid, n) return payload end\n'
RAW = {"x-api-key": KEY, "content-type": "application/octet-stream"}
VARIANTS = ["", *LAYERS, ",".join(LAYERS)]


def server_command(target: str, port: int, server: str, factory: bool = True) -> list[str]:
    """The command serving the ASGI app (or factory) ``target`` in one process, as ``serve`` runs it."""
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", *(["--factory"] if factory else []),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
                "--log-level", "warning", target]  # fmt: skip
    return uvicorn_command(target, port, factory=factory)


@contextlib.contextmanager
def serve(target: str, env: dict[str, str], server: str) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    with open(os.devnull, "wb") as devnull:
        command = server_command(target, port, server, factory=target.endswith("create_app"))
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=devnull)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, base)
            served = psutil.Process(process.pid)
            yield base, served
        finally:
            process.terminate()
            process.wait(timeout=60)


def cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def measure(base: str, path: str, process: psutil.Process, seconds: float) -> tuple[float, float]:
    """(req/s, server CPU microseconds per request) of a wrk run."""
    wrk(base + path, HASH_BODY, RAW, connections=32, seconds=1)  # warm-up
    before = cpu_seconds(process)
    load = wrk(base + path, HASH_BODY, RAW, connections=32, seconds=seconds)
    used = cpu_seconds(process) - before
    return load.rate, used / max(1, load.requests) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--only", default=None, help="Comma-separated layer names to measure (default: all).")
    args = parser.parse_args()
    require_wrk()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-platform-")))
    stack.start()
    results: list[tuple[str, float, float]] = []
    try:
        urls = stack.urls
        upgrade(urls["database_url"])
        env = {
            "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"],
            "OMNINODE_REDIS_URL": urls["redis_url"], "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"],
            "OMNINODE_API_KEYS": f"bench:{KEY}:admin", "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000",
            "OMNINODE_LOG_LEVEL": args.log_level,
        }  # fmt: skip
        with serve("bench._bare:app", {}, args.server) as (base, process):
            rate, cpu = measure(base, "/bare", process, args.seconds)
            results.append(("bare Litestar endpoint", rate, cpu))
            print(f"  bare: {rate:,.0f} req/s, {cpu:.0f} us CPU/request", flush=True)
        variants = VARIANTS if args.only is None else ["", *args.only.split(",")]
        for bypass in variants:
            with serve("bench._layers:create_app", {**env, "BENCH_BYPASS": bypass}, args.server) as (base, process):
                rate, cpu = measure(base, "/hash", process, args.seconds)
            name = "app, every layer" if not bypass else ("app, no platform layer" if "," in bypass else bypass)
            results.append((name, rate, cpu))
            print(f"  {name}: {rate:,.0f} req/s, {cpu:.0f} us CPU/request", flush=True)
    finally:
        discard(stack)
    full = next((cpu for name, _, cpu in results if name == "app, every layer"), None)
    print(f"\n| variant ({args.server}, log level {args.log_level}) | req/s | CPU us/request | layer cost us |")
    print("|---|---|---|---|")
    for name, rate, cpu in results:
        cost = "" if full is None or name.startswith(("app, every", "bare")) else f"{full - cpu:.0f}"
        print(f"| {name} | {rate:,.0f} | {cpu:.0f} | {cost} |")


if __name__ == "__main__":
    main()
