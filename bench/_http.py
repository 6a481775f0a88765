"""Benchmark plumbing: servers in their own processes and a lean HTTP/1.1 load generator.

The load generator is a few lines of asyncio over raw keep-alive sockets, written here because the bench
must run from the repository alone (no wrk/oha on the machine) and an HTTP client library would spend more
CPU per request than the servers under test, on the same two cores. It sends a pre-encoded request on each
of N connections, reads each response fully (Content-Length), and records latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from bench._uvicorn import command as uvicorn_command

__all__ = ["LoadResult", "load", "percentile", "serve"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0-1) of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(app: str, env: dict[str, str], *, factory: bool = False) -> Iterator[tuple[str, int]]:
    """Run ``app`` (``module:attribute``) under uvicorn in a child process; yields (base URL, pid)."""
    port = free_port()
    command = uvicorn_command(app, port, factory=factory)
    process = subprocess.Popen(command, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health/live", timeout=1).status_code < 500:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"{app} exited with {process.returncode}")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def _request(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def load(
    base: str, path: str, *, body: bytes, headers: dict[str, str], concurrency: int, seconds: float,
    warmup: float = 1.0, body_for: object = None,
) -> LoadResult:  # fmt: skip
    """Keep ``concurrency`` connections busy for ``seconds`` (after ``warmup``); 2xx counts as success.

    ``body_for``, if given, is ``(worker, sequence) -> bytes`` and makes each request's body distinct.
    """
    host_port = base.removeprefix("http://")
    host, port = host_port.split(":")
    fixed = _request("POST", path, host_port, headers, body)
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds
    counted = 0

    async def worker(index: int) -> None:
        nonlocal errors, counted
        reader, writer = await asyncio.open_connection(host, int(port))
        sequence = 0
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                payload = (
                    fixed if body_for is None else _request("POST", path, host_port, headers, body_for(index, sequence))
                )  # type: ignore[operator]
                sequence += 1
                writer.write(payload)
                status = await _read_response(reader)
                done = time.perf_counter()
                if now >= measure_from:
                    if 200 <= status < 300:
                        latencies.append((done - now) * 1000)
                        counted += 1
                    else:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return LoadResult(counted, seconds, percentile(latencies, 0.5), percentile(latencies, 0.99), errors)
