"""The relay's murmur2 picks the partitions aiokafka's (and Java's) default partitioner picks."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from omninode_bridge.core.events._partitioner import KeyHashes, murmur2


def test_murmur2_equals_aiokafka_for_every_tail_length() -> None:
    draw = random.Random(7)
    keys = [bytes(draw.getrandbits(8) for _ in range(length)) for length in range(64) for _ in range(20)]
    keys += [str(uuid.uuid4()).encode() for _ in range(200)] + [b"\xff" * 40, "é-ключ".encode()]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


def test_key_hashes_cache_and_start_over_at_the_limit() -> None:
    hashes = KeyHashes(limit=3)
    keys = [f"k{i}".encode() for i in range(7)]
    assert [hashes(k) for k in keys + keys] == [aiokafka_murmur2(k) for k in keys + keys]
    assert len(hashes._hashes) <= 3
