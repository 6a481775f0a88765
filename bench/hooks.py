"""Hook ingestion throughput: POST /hooks and POST /hooks/batch beside a bare Litestar endpoint.

Each figure is measured in the same run against a baseline on the same server settings (uvicorn, one
worker, no access log, log level WARNING):

* **bare** - a Litestar app with one POST endpoint per shape that decodes the JSON body and answers 202:
  no middleware, no database, nothing durable;
* **hooks** - the real app (``create_app``) on a fresh embedded stack: API-key authentication, the Redis
  rate limiter (limit raised out of the way, still checked per request), validation, redaction,
  idempotency claim, ``hook_events`` row and outbox row committed before the 202. The outbox relay, the
  hooks processor and the live feed run in the same process, as in production.

The load generator is a minimal keep-alive HTTP/1.1 client (asyncio streams, one connection per client)
so that the client costs as little CPU as possible on the shared machine. Every request body is unique
(hooks are not deduplicated by content any more; unique bodies keep the runs comparable). Targets: single hooks at
>= 0.5 of the bare rate with p99 < 25 ms at 32 concurrent clients; batches >= 30,000 events/s.

Run: ``.venv/bin/python -m bench.hooks [--seconds S] [--clients N] [--batch-clients N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, post
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench._tools import discard
from bench._uvicorn import command as uvicorn_command
from omninode_bridge.embedded import EmbeddedStack, free_port
from omninode_bridge.migrations import upgrade

KEY = "onb_bench_admin_key_0123456789abcdef"
BATCH_SIZE = 1000
SINGLE_TARGET_RATIO = 0.5
SINGLE_P99_TARGET_MS = 25.0
BATCH_TARGET_EVENTS = 30_000


# --- the bare baseline -----------------------------------------------------------------------------


@post("/hooks", status_code=202)
async def _bare_hook(data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()), "status": "accepted"}


@post("/hooks/batch", status_code=202)
async def _bare_batch(data: dict[str, Any]) -> dict[str, Any]:
    return {"batch_id": str(uuid.uuid4()), "accepted": len(data["events"]), "status": "accepted"}


#: ``uvicorn bench.hooks:bare_app``: the baseline app.
bare_app = Litestar(route_handlers=[_bare_hook, _bare_batch], logging_config=None)


# --- servers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(target: str, env: dict[str, str], *, factory: bool = False) -> Iterator[str]:
    """Run ``uvicorn target`` in a child process; yields its base URL."""
    port = free_port()
    command = uvicorn_command(target, port, factory=factory)
    process = subprocess.Popen(command, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{target} exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health/live", timeout=1).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def app_env(urls: dict[str, str]) -> dict[str, str]:
    """Environment of the real app on the bench stack."""
    return {
        "OMNINODE_ENV": "test",
        "OMNINODE_DATABASE_URL": urls["database_url"],
        "OMNINODE_REDIS_URL": urls["redis_url"],
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"],
        "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
        "OMNINODE_RATE_LIMIT_REQUESTS": "100000000",
        "OMNINODE_LOG_LEVEL": "WARNING",
        "OMNINODE_DATABASE_POOL_SIZE": "40",
    }


# --- load generator --------------------------------------------------------------------------------


@dataclass
class Result:
    """What one load phase measured."""

    requests: int
    events: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(
    base: str, path: str, body_of: Callable[[int], bytes], counter: Iterator[int], stop_at: float,
    warm_until: float, latencies: list[float], tally: list[int],
) -> None:  # fmt: skip
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n"
    try:
        while (now := time.perf_counter()) < stop_at:
            body = body_of(next(counter))
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            started = time.perf_counter()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            elapsed = (time.perf_counter() - started) * 1000
            if now >= warm_until:
                latencies.append(elapsed)
                if status_line.split(b" ", 2)[1] == b"202":
                    tally[0] += 1
                else:
                    tally[1] += 1
    finally:
        writer.close()


async def load(
    base: str, path: str, body_of: Callable[[int], bytes], *, clients: int, seconds: float, warmup: float,
    events_per_request: int,
) -> Result:  # fmt: skip
    """``clients`` connections posting as fast as answers come back, measured after ``warmup``."""
    counter = itertools.count()
    latencies: list[float] = []
    tally = [0, 0]
    start = time.perf_counter()
    warm_until = start + warmup
    stop_at = warm_until + seconds
    await asyncio.gather(
        *(_client(base, path, body_of, counter, stop_at, warm_until, latencies, tally) for _ in range(clients))
    )
    measured = max(time.perf_counter() - warm_until, 1e-9)
    return Result(tally[0], tally[0] * events_per_request, tally[1], measured, latencies)


_RUN = uuid.uuid4().hex[:8]
_PAD = "x" * 200


def single_body(n: int) -> bytes:
    """A ~400-byte post_tool_use hook, unique per request."""
    return (
        f'{{"source":"bench-agent","event_type":"post_tool_use","session_id":"bench-{_RUN}-{n % 64}",'
        f'"tool_name":"Bash","tool_call_id":"{_RUN}-{n}","data":{{"n":{n},"exit_code":0,"output":"{_PAD}"}}}}'
    ).encode()


def batch_body(n: int) -> bytes:
    """``BATCH_SIZE`` such hooks in one body."""
    first = n * BATCH_SIZE
    return b'{"events":[' + b",".join(single_body(first + i) for i in range(BATCH_SIZE)) + b"]}"


async def backlog(database_url: str) -> tuple[int, int]:
    """(outbox rows not yet sent, hook events not yet processed) right after a phase."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            pending = (await conn.execute(text("SELECT count(*) FROM event_outbox_pending"))).scalar()
            unprocessed = (
                await conn.execute(text("SELECT count(*) FROM hook_events WHERE status <> 'processed'"))
            ).scalar()
        return int(pending or 0), int(unprocessed or 0)
    finally:
        await engine.dispose()


# --- phases ----------------------------------------------------------------------------------------


def run_phase(
    label: str, base: str, path: str, body_of: Callable[[int], bytes], *, clients: int, seconds: float,
    events_per_request: int,
) -> Result:  # fmt: skip
    result = asyncio.run(
        load(
            base,
            path,
            body_of,
            clients=clients,
            seconds=seconds,
            warmup=min(2.0, seconds / 3),
            events_per_request=events_per_request,
        )
    )
    print(
        f"  {label:<14} {result.requests:>8} req {result.events_per_second:>10.0f} events/s  "
        f"p50 {result.percentile(0.50):6.2f} ms  p99 {result.percentile(0.99):7.2f} ms  errors {result.errors}",
        flush=True,
    )
    return result


@contextlib.contextmanager
def fresh_stack() -> Iterator[EmbeddedStack]:
    """An embedded stack of its own, migrated (each hooks phase starts without another phase's backlog)."""
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-hooks-")))
    stack.start()
    try:
        assert stack.postgres is not None
        upgrade(stack.postgres.url)
        yield stack
    finally:
        discard(stack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per phase (default 8)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients for POST /hooks (default 32)")
    parser.add_argument("--batch-clients", type=int, default=4, help="concurrent clients for batches (default 4)")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  clients: {args.clients} (single), {args.batch_clients} (batch of {BATCH_SIZE})")

    print("bare Litestar endpoint:", flush=True)
    with serve("bench.hooks:bare_app", {}) as base:
        bare_single = run_phase("POST /hooks", base, "/hooks", single_body, clients=args.clients,
                                seconds=args.seconds, events_per_request=1)  # fmt: skip
        bare_batch = run_phase("POST /batch", base, "/hooks/batch", batch_body, clients=args.batch_clients,
                               seconds=args.seconds, events_per_request=BATCH_SIZE)  # fmt: skip

    print("hooks (durable: committed to PostgreSQL with its outbox row before the 202):", flush=True)
    with fresh_stack() as stack, serve("omninode_bridge.app:create_app", app_env(stack.urls), factory=True) as base:
        hooks_single = run_phase("POST /hooks", base, "/hooks", single_body, clients=args.clients,
                                 seconds=args.seconds, events_per_request=1)  # fmt: skip
        single_backlog = asyncio.run(backlog(stack.urls["database_url"]))
    with fresh_stack() as stack, serve("omninode_bridge.app:create_app", app_env(stack.urls), factory=True) as base:
        hooks_batch = run_phase("POST /batch", base, "/hooks/batch", batch_body, clients=args.batch_clients,
                                seconds=args.seconds, events_per_request=BATCH_SIZE)  # fmt: skip
        batch_backlog = asyncio.run(backlog(stack.urls["database_url"]))

    single_ratio = hooks_single.events_per_second / bare_single.events_per_second
    batch_ratio = hooks_batch.events_per_second / bare_batch.events_per_second
    p99 = hooks_single.percentile(0.99)
    print()
    print(f"{'measure':<34} {'bare':>10} {'hooks':>10} {'ratio':>7}  target")
    print(f"{'POST /hooks events/s':<34} {bare_single.events_per_second:>10.0f} "
          f"{hooks_single.events_per_second:>10.0f} {single_ratio:>7.2f}  ratio >= {SINGLE_TARGET_RATIO}: "
          f"{'met' if single_ratio >= SINGLE_TARGET_RATIO else 'MISSED'}")  # fmt: skip
    print(f"{'POST /hooks p50 / p99 ms':<34} {bare_single.percentile(0.5):>4.1f}/{bare_single.percentile(0.99):<5.1f} "
          f"{hooks_single.percentile(0.5):>4.1f}/{p99:<5.1f}          p99 < {SINGLE_P99_TARGET_MS:.0f} ms: "
          f"{'met' if p99 < SINGLE_P99_TARGET_MS else 'MISSED'}")  # fmt: skip
    print(f"{'POST /hooks/batch events/s':<34} {bare_batch.events_per_second:>10.0f} "
          f"{hooks_batch.events_per_second:>10.0f} {batch_ratio:>7.2f}  >= {BATCH_TARGET_EVENTS}: "
          f"{'met' if hooks_batch.events_per_second >= BATCH_TARGET_EVENTS else 'MISSED'}")  # fmt: skip
    print(f"after the single phase: {single_backlog[0]} outbox rows unsent, {single_backlog[1]} hooks unprocessed")
    print(f"after the batch phase:  {batch_backlog[0]} outbox rows unsent, {batch_backlog[1]} hooks unprocessed")
    if statistics.fmean([hooks_single.errors, hooks_batch.errors]) > 0:
        print(f"errors: {hooks_single.errors} single, {hooks_batch.errors} batch (non-202 answers)")


if __name__ == "__main__":
    main()
