"""Group commit of single submits: alone when writes are free, grouped while they are busy, faults kept apart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omninode_bridge.modules.workflow.services.group_commit import GroupCommit


class RowError(Exception):
    """Stands for PostgreSQL refusing one item's row (the whole statement wrote nothing)."""


class Writes:
    """Records each write's items; a write waits for ``gate`` (to hold it in flight) and fails on a ``bad`` item."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[str]) -> None:
        self.groups.append(list(items))
        await self.gate.wait()
        if "bad" in items:
            raise RowError(f"refused: {items}")


def group_commit(writes: Writes, *, in_flight: int = 1, max_items: int = 100, max_weight: int = 100) -> Any:
    return GroupCommit(writes, in_flight=in_flight, max_items=max_items, max_weight=max_weight, weight=len,
                       alone_on=(RowError,))  # fmt: skip


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_item_is_written_at_once_and_items_arriving_meanwhile_as_one_group() -> None:
    writes = Writes()
    commit = group_commit(writes)
    writes.gate.clear()
    first = asyncio.create_task(commit("a"))
    await settle()
    assert writes.groups == [["a"]]  # no wait for company
    others = [asyncio.create_task(commit(item)) for item in ("b", "c", "d")]
    await settle()
    assert writes.groups == [["a"]]  # queued behind the write in flight
    writes.gate.set()
    await asyncio.gather(first, *others)
    assert writes.groups == [["a"], ["b", "c", "d"]]


async def test_as_many_writes_as_in_flight_go_alone_before_items_queue() -> None:
    writes = Writes()
    commit = group_commit(writes, in_flight=2)
    writes.gate.clear()
    tasks = [asyncio.create_task(commit(item)) for item in ("a", "b", "c", "d")]
    await settle()
    assert writes.groups == [["a"], ["b"]]
    writes.gate.set()
    await asyncio.gather(*tasks)
    assert writes.groups == [["a"], ["b"], ["c", "d"]]


async def test_a_group_refused_for_one_item_is_written_one_by_one_and_only_that_item_fails() -> None:
    writes = Writes()
    commit = group_commit(writes)
    writes.gate.clear()
    first = asyncio.create_task(commit("a"))
    await settle()
    grouped = [asyncio.create_task(commit(item)) for item in ("b", "bad", "c")]
    await settle()
    writes.gate.set()
    await first
    results = await asyncio.gather(*grouped, return_exceptions=True)
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], RowError)
    assert writes.groups == [["a"], ["b", "bad", "c"], ["b"], ["bad"], ["c"]]


async def test_any_other_error_fails_the_whole_group() -> None:
    writes = Writes()

    async def down(items: list[str]) -> None:
        await writes(items)
        if len(items) > 1:
            raise ConnectionError("the database went away")

    commit = GroupCommit(down, in_flight=1, max_items=10, max_weight=10, weight=len, alone_on=(RowError,))
    writes.gate.clear()
    first = asyncio.create_task(commit("a"))
    await settle()
    grouped = [asyncio.create_task(commit(item)) for item in ("b", "c")]
    await settle()
    writes.gate.set()
    await first
    results = await asyncio.gather(*grouped, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert writes.groups == [["a"], ["b", "c"]]  # not retried item by item: it may have been written


async def test_a_caller_cancelled_while_queued_is_left_out_of_its_group() -> None:
    writes = Writes()
    commit = group_commit(writes)
    writes.gate.clear()
    first = asyncio.create_task(commit("a"))
    await settle()
    gone = asyncio.create_task(commit("b"))
    kept = asyncio.create_task(commit("c"))
    await settle()
    gone.cancel()
    writes.gate.set()
    await asyncio.gather(first, kept)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert writes.groups == [["a"], ["c"]]


async def test_groups_keep_within_their_item_and_weight_limits() -> None:
    writes = Writes()
    commit = group_commit(writes, max_items=3, max_weight=6)
    writes.gate.clear()
    first = asyncio.create_task(commit("a"))
    await settle()
    # weights 1, 1, 1, 1 (four items: over max_items), then 4 + 4 (over max_weight), then one over it alone
    items = ["b", "c", "d", "e", "ffff", "gggg", "hhhhhhhh"]
    queued = [asyncio.create_task(commit(item)) for item in items]
    await settle()
    writes.gate.set()
    await asyncio.gather(first, *queued)
    assert writes.groups == [["a"], ["b", "c", "d"], ["e", "ffff"], ["gggg"], ["hhhhhhhh"]]
