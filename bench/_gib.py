"""The 1 GiB streamed ``POST /hash`` of ``bench.suite`` and ``bench.serving``."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator

import httpx
import psutil
from blake3 import blake3

__all__ = ["gib_upload"]

GIB = 1024**3
MIB = 1024**2


async def gib_upload(base: str, key: str, server_pid: int) -> tuple[float, float, int]:
    """``POST /hash`` of 1 GiB streamed in 1 MiB pieces: (GiB/s, raw one-thread blake3 GiB/s, RSS growth)."""
    block = os.urandom(MIB)
    began = time.perf_counter()
    raw = blake3(max_threads=1)
    for _ in range(GIB // MIB):
        raw.update(block)
    raw_rate = 1 / (time.perf_counter() - began)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(GIB // MIB):
            yield block

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
    began = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=300) as http:
            response = await http.post(
                base + "/hash", content=chunks(), headers={"x-api-key": key, "content-type": "application/octet-stream"}
            )
    finally:
        stop.set()
        sampler.join()
    seconds = time.perf_counter() - began
    assert response.json()["file_hash"] == raw.hexdigest(), response.text
    return 1 / seconds, raw_rate, peak - before
