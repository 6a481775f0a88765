"""A multi-GB raw upload is stamped while it streams: memory stays flat."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import psutil
from blake3 import blake3

from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, live_server

TOTAL = 2 * 1024**3
BLOCK = 1024 * 1024


async def test_two_gib_upload_is_stamped_with_flat_memory(settings: Settings) -> None:
    block = os.urandom(BLOCK)
    expected = blake3(max_threads=blake3.AUTO)
    for _ in range(TOTAL // BLOCK):
        expected.update(block)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(TOTAL // BLOCK):
            yield block  # the same buffer each time: the client adds no memory of its own

    process = psutil.Process()
    peak = baseline = process.memory_info().rss
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=300) as http:
        sampler = asyncio.create_task(sample())
        try:
            response = await http.post(
                "/stamp", content=body(),
                params={"namespace": f"big-{uuid.uuid4().hex[:8]}", "file_path": "datasets/blob.bin"},
                headers={"X-API-Key": ADMIN_KEY, "content-type": "application/octet-stream"},
            )  # fmt: skip
        finally:
            done.set()
            await sampler
    assert response.status_code == 201, response.text
    stamp = response.json()
    assert stamp["size_bytes"] == TOTAL
    assert stamp["file_hash"] == expected.hexdigest()
    assert stamp["content_type"] == "application/octet-stream"
    assert stamp["stamped_content"] is None
    growth_mib = (peak - baseline) / 1024**2
    print(f"2 GiB upload: RSS growth {growth_mib:.1f} MiB, server processing {stamp['processing_time_ms']:.0f} ms")
    assert growth_mib < 64
