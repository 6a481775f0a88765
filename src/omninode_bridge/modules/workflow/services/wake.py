"""Waking engines after a commit that made tasks ready, and ``?wait`` callers after a run moved.

A ``NOTIFY`` inside the transaction that made tasks ready would serialise every such commit on PostgreSQL's
notification lock (held across the commit's WAL flush, so no group commit): submits ran one fsync at a time.
The commit wakes this process's engine at once instead, and one ``NOTIFY`` per burst, sent after the commits
on a connection of its own, wakes the other processes (their polling stays the fallback): at once when this
process runs no engine, else when its engine finds more than it can take (a full claim, or no free slot).
Woken by every commit of every process, two engines both claimed for each burst of submits, and one of the two
claims found nothing (2 processes measured slower than 1 on single-task runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import asyncpg
import structlog

from omninode_bridge.core.db import Database
from omninode_bridge.core.safe_errors import describe_error

__all__ = ["CHANNEL", "Wake", "Waker"]

log = structlog.get_logger(__name__)
CHANNEL = "wf_ready"


class Wake(asyncio.Event):
    """The engine's wake-up signal, counting how often it was set.

    The claim loops of a process wait on it, and one ``set`` releases them all: the loop that claims first takes
    the tasks, and the others' claims would find none. A loop records ``generation`` before it claims
    (``Engine._loop``); a loop woken by no ``set`` since then skips its claim.
    """

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def set(self) -> None:
        """Wake the waiting loops and count the wake-up."""
        self.generation += 1
        super().set()


class Waker:
    """This process's wake-ups: the engine's signal, a coalesced ``NOTIFY``, and runs being waited for.

    Args:
        database: The app's database (its URL for the notifying connection, its named signal for the engine).
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.local = Wake()
        # Sent with each NOTIFY: this process's own listener ignores it (its engine was woken locally already).
        self.token = uuid.uuid4().hex[:16]
        self._pending = False
        self._sender: asyncio.Task[None] | None = None
        self._connection: Any = None
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        # Set by this process's engine while it runs: it takes what a commit here made ready, and wakes the
        # other processes only for what it cannot take (Engine._loop), instead of each commit waking them all.
        self.engine_here = False

    def __call__(self) -> None:
        """Wake this process's engine now, and the other processes soon when no engine runs here (an
        ``after_commit`` callback)."""
        self.local.set()
        if not self.engine_here:
            self.share()

    def share(self) -> None:
        """Wake the other processes' engines soon: one ``NOTIFY`` per burst of calls."""
        self._pending = True
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._notify(), name="workflow-notify")

    async def _notify(self) -> None:
        while self._pending:
            self._pending = False  # commits made while this NOTIFY is in flight are covered by the next one
            try:
                if self._connection is None or self._connection.is_closed():
                    url = self.database.settings.url or ""
                    self._connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
                await self._connection.execute(f"NOTIFY {CHANNEL}, '{self.token}'")  # hex: nothing to quote
            except Exception as exc:  # the other processes poll
                log.warning("workflow: NOTIFY failed", error=describe_error(exc))
                self._connection = None
                return

    def moved(self, run_ids: Any) -> None:
        """Tell ``?wait`` callers of these runs to look again (a transition of theirs committed here)."""
        for run_id in run_ids:
            for waiter in self._waiters.get(run_id, ()):
                waiter.set()

    def watch(self, run_id: uuid.UUID) -> asyncio.Event:
        """An event set whenever a transition of ``run_id`` commits in this process; :meth:`unwatch` it after."""
        waiter = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(waiter)
        return waiter

    def unwatch(self, run_id: uuid.UUID, waiter: asyncio.Event) -> None:
        """Forget a :meth:`watch`."""
        peers = self._waiters.get(run_id)
        if peers is not None:
            peers.discard(waiter)
            if not peers:
                del self._waiters[run_id]

    async def aclose(self) -> None:
        """Stop sending and close the notifying connection."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
