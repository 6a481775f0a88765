"""The 1 GiB streamed ``POST /hash`` of ``bench.suite`` and ``bench.serving``.

The client is ``http.client`` on a blocking socket: each 1 MiB piece is one ``sendall`` of the same
buffer, so the client costs the kernel's copy and little else (about 0.3 s of CPU per GiB here). The
httpx client it replaces spent about 1 s of CPU per GiB, which on a 2-core machine is taken from the
server being measured. Beside the wall-clock rate the server's own CPU seconds for the upload are
reported: on a shared machine they vary far less than the rate does.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil
from blake3 import blake3

__all__ = ["GibUpload", "gib_upload"]

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True, slots=True)
class GibUpload:
    """One 1 GiB upload: GiB/s, raw one-thread blake3 GiB/s (same run), server RSS growth and CPU seconds."""

    rate: float
    raw_rate: float
    rss_growth: int
    server_cpu_s: float


def _post(base: str, key: str, block: bytes) -> tuple[int, bytes]:
    url = urlsplit(base)
    pieces: Iterator[memoryview] = (memoryview(block) for _ in range(GIB // MIB))
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=300)
    try:
        connection.request("POST", "/hash", body=pieces, headers={
            "x-api-key": key, "content-type": "application/octet-stream", "content-length": str(GIB),
        })  # fmt: skip
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def gib_upload(base: str, key: str, server_pid: int) -> GibUpload:
    """``POST /hash`` of 1 GiB sent in 1 MiB pieces, checked against the digest computed here."""
    block = os.urandom(MIB)
    began = time.perf_counter()
    raw = blake3(max_threads=1)
    for _ in range(GIB // MIB):
        raw.update(block)
    raw_rate = 1 / (time.perf_counter() - began)

    server = psutil.Process(server_pid)
    before = peak = server.memory_info().rss
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu_before = sum(server.cpu_times()[:2])
    began = time.perf_counter()
    try:
        status, body = await asyncio.to_thread(_post, base, key, block)
    finally:
        seconds = time.perf_counter() - began
        cpu = sum(server.cpu_times()[:2]) - cpu_before
        stop.set()
        sampler.join()
    if status != 200 or json.loads(body)["file_hash"] != raw.hexdigest():
        raise RuntimeError(f"POST /hash answered {status}: {body[:300]!r}")
    return GibUpload(1 / seconds, raw_rate, peak - before, cpu)
