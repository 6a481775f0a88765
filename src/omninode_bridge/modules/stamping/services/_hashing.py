"""BLAKE3 hashing: inline for small inputs, in a worker thread for large ones, incremental for streams.

No hasher pool (seed 001 had one): a ``blake3.blake3()`` costs well under a microsecond to create, which
``bench/stamping.py`` shows beside the hashing itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from blake3 import blake3

from omninode_bridge.core.errors import ProblemError

__all__ = ["HashPolicy", "StreamDigest", "hash_stream"]

#: Streamed bytes are hashed in blocks of this size, in a worker thread, while the next block arrives.
STREAM_BLOCK_BYTES = 1024 * 1024
#: Bytes kept from the start of a stream for content-type detection and stamp-block recognition.
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HashPolicy:
    """Where hashing runs.

    Attributes:
        inline_max_bytes: Inputs up to this size are hashed on the event loop: handing 1 KiB to a thread
            costs more (tens of microseconds) than hashing it (about one microsecond).
        max_threads: blake3's ``max_threads`` for large in-memory inputs (``blake3.AUTO`` when 0).
        stream_threads: blake3's ``max_threads`` for each block of a stream (``blake3.AUTO`` when 0). One:
            a stream's blocks are already hashed in a thread beside the event loop that receives them, and
            one blake3 thread (1-4 GiB/s here) outruns the receive path (under 1 GiB/s), so more threads
            only add coordination: with ``AUTO`` a 1 GiB upload spent 0.8-1.4 s hashing its 1 MiB blocks
            on the 2-core machine, with one thread 0.25-0.45 s, and the server's CPU per GiB fell by about
            a fifth (``bench/_gib.py``; README, "Benchmarks").
    """

    inline_max_bytes: int = 128 * 1024
    max_threads: int = 0
    stream_threads: int = 1

    def _threads(self) -> int:
        return self.max_threads or blake3.AUTO

    async def hash_bytes(self, data: bytes) -> str:
        """Hex BLAKE3 digest of ``data``, without blocking the event loop for large inputs."""
        if len(data) <= self.inline_max_bytes:
            return blake3(data).hexdigest()
        threads = self._threads()
        return await asyncio.to_thread(lambda: blake3(data, max_threads=threads).hexdigest())


@dataclass(slots=True)
class StreamDigest:
    """What :func:`hash_stream` learnt: the digest, the size, the first bytes, and optionally the whole body.

    Attributes:
        file_hash: Hex BLAKE3 digest of every byte after ``skip_prefix`` was applied.
        size_bytes: Bytes hashed.
        head: The first bytes of the stream (up to ``HEAD_BYTES``), before any prefix was skipped.
        body: The whole stream, if it fit in ``keep_max_bytes``; else None.
        hash_seconds: Time spent hashing (in threads or inline), for the step's record.
    """

    file_hash: str
    size_bytes: int
    head: bytes
    body: bytes | None
    hash_seconds: float


async def hash_stream(
    chunks: AsyncIterator[bytes],
    *,
    max_bytes: int,
    keep_max_bytes: int = 0,
    strip_head: Callable[[bytes], bytes] | None = None,
    policy: HashPolicy | None = None,
) -> StreamDigest:
    """Hash a stream incrementally; memory stays at a few blocks whatever its size.

    Blocks of ``STREAM_BLOCK_BYTES`` are hashed in a worker thread while the event loop receives the next
    one (blake3 releases the GIL), so hashing and receiving overlap.

    Args:
        chunks: The body, as it arrives.
        max_bytes: Refuse (413) a stream longer than this.
        keep_max_bytes: Keep the whole (stripped) body in memory if it is no longer than this.
        strip_head: Rewrites the first ``HEAD_BYTES`` before they are hashed (removes an existing stamp
            block); the digest, size, head and body all describe the rewritten stream.
        policy: Thread settings (its ``stream_threads``).

    Raises:
        ProblemError: 413 once more than ``max_bytes`` arrived.
    """
    threads = (policy or HashPolicy()).stream_threads or blake3.AUTO
    hasher = blake3(max_threads=threads)
    loop = asyncio.get_running_loop()
    head = bytearray()
    head_done = False
    kept: list[bytes] | None = [] if keep_max_bytes > 0 else None
    pending: list[bytes] = []
    pending_size = 0
    received = 0
    size = 0
    in_flight: asyncio.Future[float] | None = None
    hash_seconds = 0.0

    def update(blocks: list[bytes]) -> float:
        # The chunks as received, no joined copy: blake3 keeps its state across calls.
        began = time.perf_counter()
        for block in blocks:
            hasher.update(block)
        return time.perf_counter() - began

    def take(block: bytes) -> None:
        nonlocal pending_size, size, kept
        size += len(block)
        pending.append(block)
        pending_size += len(block)
        if kept is not None:
            kept.append(block)
            if size > keep_max_bytes:
                kept = None

    async for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > max_bytes:
            if in_flight is not None:
                await in_flight
            raise ProblemError(413, f"The upload exceeds {max_bytes} bytes.", slug="payload-too-large")
        if not head_done:
            head.extend(chunk)
            if len(head) < HEAD_BYTES:
                continue
            head_done = True
            chunk = strip_head(bytes(head)) if strip_head else bytes(head)
            head = bytearray(chunk[:HEAD_BYTES])
        take(chunk)
        if pending_size >= STREAM_BLOCK_BYTES:
            blocks = pending
            pending = []
            pending_size = 0
            if in_flight is not None:
                hash_seconds += await in_flight  # keeps the blocks in order
            in_flight = loop.run_in_executor(None, update, blocks)
    if not head_done:  # the whole stream fit in the head
        stripped = strip_head(bytes(head)) if strip_head else bytes(head)
        head = bytearray(stripped)
        take(stripped)
    if in_flight is not None:
        hash_seconds += await in_flight
    if pending:
        hash_seconds += update(pending)
    body = b"".join(kept) if kept is not None else None
    return StreamDigest(hasher.hexdigest(), size, bytes(head), body, hash_seconds)
