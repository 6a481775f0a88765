"""Group commit: writes that arrive while others are under way go to PostgreSQL together, as one statement.

A flood of ``POST /workflows`` was one statement and one commit per run: the statement's round trip (the socket
write alone was an eighth of the app's CPU per run in py-spy) and PostgreSQL's work per statement and per commit
(a WAL flush each) were paid once per run. Here a write goes at once while fewer than ``in_flight`` writes are under
way, so a lone submit waits for nothing; those that arrive meanwhile queue, and when a write ends the queue goes
as one write. Under load the groups grow by themselves, with no timer to tune.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Writes items alone while few writes are under way, else together with the items queued meanwhile.

    Args:
        write: Writes a group of items, all or none (one statement).
        in_flight: Writes under way at once; an item that finds them all busy waits for the next group.
        max_items: Items of one group at most.
        max_weight: The summed ``weight`` of one group at most (a group holds at least one item).
        weight: An item's weight (e.g. its rows).
        alone_on: Errors that one item's data can cause (PostgreSQL refused the statement: nothing was written):
            a group that fails with one is written again item by item, so that only the faulty one fails.
    """

    def __init__(self, write: Callable[[list[T]], Awaitable[None]], *, in_flight: int, max_items: int,
                 max_weight: int, weight: Callable[[T], int],
                 alone_on: tuple[type[Exception], ...] = ()) -> None:  # fmt: skip
        self._write = write
        self._in_flight = in_flight
        self._max_items = max_items
        self._max_weight = max_weight
        self._weight = weight
        self._alone_on = alone_on
        self._busy = 0
        self._queue: deque[tuple[T, asyncio.Future[None]]] = deque()
        self._groups: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> None:
        """Write ``item``, alone or in a group; returns once its write committed, raises what it raised."""
        if self._busy < self._in_flight and not self._queue:
            self._busy += 1
            try:
                await self._write([item])
            finally:
                self._ended()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        await future  # cancelled: its group leaves it out, unless the group's write already began

    def _ended(self) -> None:
        """A write ended: start the next group while a write may begin."""
        self._busy -= 1
        while self._queue and self._busy < self._in_flight:
            group = self._take()
            if group:
                self._busy += 1
                task = asyncio.get_running_loop().create_task(self._flush(group), name="workflow-group-commit")
                self._groups.add(task)  # a reference until it ends
                task.add_done_callback(self._groups.discard)

    def _take(self) -> list[tuple[T, asyncio.Future[None]]]:
        group: list[tuple[T, asyncio.Future[None]]] = []
        weight = 0
        while self._queue and len(group) < self._max_items:
            item, future = self._queue[0]
            if future.done():  # its caller was cancelled while it waited
                self._queue.popleft()
                continue
            weight += self._weight(item)
            if group and weight > self._max_weight:
                break
            group.append(self._queue.popleft())
        return group

    async def _flush(self, group: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            try:
                await self._write([item for item, _ in group])
            except self._alone_on:
                if len(group) == 1:
                    raise
                await self._one_by_one(group)
                return
        except Exception as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        except BaseException:
            for _, future in group:
                future.cancel()
            raise
        else:
            for _, future in group:
                if not future.done():
                    future.set_result(None)
        finally:
            self._ended()

    async def _one_by_one(self, group: list[tuple[T, asyncio.Future[None]]]) -> None:
        for item, future in group:
            if future.done():
                continue
            try:
                await self._write([item])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(None)
