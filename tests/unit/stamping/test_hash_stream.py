"""The streaming hasher without a server: same digest whatever the chunking and blake3 threads, 413 past the cap."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from blake3 import blake3

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.stamping.services import HashPolicy, hash_stream

MIB = 1024 * 1024


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("stream_threads", [1, 0])
@pytest.mark.parametrize("piece", [1000, 256 * 1024, 3 * MIB])
async def test_stream_digest_matches_one_shot_blake3(stream_threads: int, piece: int) -> None:
    # Several 1 MiB blocks plus a ragged tail, so hashing in the thread and the final inline update both run.
    data = os.urandom(5 * MIB + 12_345)
    digest = await hash_stream(
        _pieces(data, piece), max_bytes=len(data), policy=HashPolicy(stream_threads=stream_threads)
    )
    assert digest.file_hash == blake3(data).hexdigest()
    assert digest.size_bytes == len(data)
    assert digest.head == data[: 64 * 1024]
    assert digest.body is None


async def test_stream_past_the_cap_is_413() -> None:
    data = os.urandom(3 * MIB)
    with pytest.raises(ProblemError) as raised:
        await hash_stream(_pieces(data, 256 * 1024), max_bytes=2 * MIB)
    assert raised.value.status_code == 413
