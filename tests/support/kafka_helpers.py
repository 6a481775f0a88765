"""An independent Kafka client for tests: plain aiokafka, none of the app's code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import blake3
from aiokafka import AIOKafkaConsumer


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0, match: Callable[[Any], bool] | None = None
) -> list[Any]:
    """Read ``topic`` from the beginning until ``expect`` records (that ``match``) arrived, or fail."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(r for r in items if match is None or match(r))
    finally:
        await consumer.stop()
    assert len(records) >= expect, f"{topic}: {len(records)} of {expect} records within {timeout}s"
    return records


def verify_envelope(value: bytes) -> dict[str, Any]:
    """Check an envelope the way any consumer can: recompute the BLAKE3 of the canonical payload."""
    envelope = json.loads(value)
    canonical = json.dumps(envelope["payload"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert blake3.blake3(canonical.encode()).hexdigest() == envelope["payload_hash"]
    assert envelope["envelope_version"] == "1.0"
    return envelope
