"""The engine's claim loops: wake up, claim runnable tasks in batches, settle runs, sweep (see the package)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import Counter
from typing import Any, get_args

import asyncpg
import structlog

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.modules.workflow.schemas import Kind
from omninode_bridge.modules.workflow.services import instruments
from omninode_bridge.modules.workflow.services.batch import (
    INLINE_BATCH,
    INLINE_KINDS,
    Batch,
    Done,
    settle,
    start_batch,
    stranded,
)
from omninode_bridge.modules.workflow.services.engine._running import TaskRunner
from omninode_bridge.modules.workflow.services.kinds import Kinds, TaskFailure, output_size
from omninode_bridge.modules.workflow.services.store import Claimed, EngineStore
from omninode_bridge.modules.workflow.services.templates import TemplateError
from omninode_bridge.modules.workflow.services.wake import CHANNEL, Waker
from omninode_bridge.modules.workflow.settings import WorkflowSettings

__all__ = ["Engine"]

log = structlog.get_logger(__name__)
#: Claim loops per process: with three, single-task runs submitted in bulk completed at 1,405-1,799/s against
#: 860-1,199/s with two (bench.workflow's bulk phase, one process, four runs each, interleaved): while two claims'
#: transactions are in flight (their commit and events), a third takes what became ready.
_CLAIMERS = 3
#: How soon a run that could not be settled (another transaction held its row) is tried again.
_SETTLE_RETRY_S = 0.02
#: How often the gauges of runs and tasks in flight are read from the database (by the sweeping loop).
_GAUGES_S = 2.0
#: Every task kind (a claim of the uncapped ones names them).
_ALL_KINDS = get_args(Kind)
#: While inline claims come back full, how often a claim also takes tasks of the other kinds.
_GENERAL_EVERY_S = 0.05


class Engine(TaskRunner):
    """Claims and runs workflow tasks in this process; takes what :class:`TaskRunner` takes (its settings also
    give the concurrency and the polling interval)."""

    def __init__(self, settings: WorkflowSettings, database: Database, store: EngineStore, kinds: Kinds,
                 waker: Waker) -> None:  # fmt: skip
        super().__init__(settings, database, store, kinds, waker)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.inflight: dict[asyncio.Task[None], Claimed] = {}
        self._reserved = 0
        # Per-kind caps (settings.kind_concurrency): slots of a kind are reserved while a claim is in flight, as
        # the process's slots are, so that the claim loops together stay within each cap.
        self._kind_limits = settings.kind_limits()
        self._kind_reserved: Counter[str] = Counter()
        self._covered = 0  # the wake-up generation the latest claim started after (see wake.Wake)
        # Free runs whose tasks this process completed in a claim that did not end them (batch.settle).
        self._unsettled: dict[uuid.UUID, Claimed] = {}
        self._stranded_after = uuid.UUID(int=0)  # where the next sweep for unsettled runs goes on
        self._next_stranded = 0.0
        self._next_gauges = 0.0
        self._next_general = 0.0
        self._listener: Any = None

    def notify_local(self) -> None:
        """Wake this process's engine (after a commit that made tasks ready)."""
        self.wake.set()

    async def _listen(self) -> None:
        url = self.database.settings.url or ""
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        try:
            self._listener = await asyncpg.connect(dsn)
            await self._listener.add_listener(CHANNEL, self._notified)
        except Exception as exc:  # polling still runs every poll_seconds
            log.warning("workflow engine: LISTEN unavailable, polling only", error=describe_error(exc))

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self.waker.token:  # another process committed (ours woke this engine already)
            self.wake.set()

    async def run(self) -> None:
        """Claim and run tasks until cancelled."""
        await self._listen()
        self.waker.engine_here = True
        try:
            # Several claim loops: one's transaction is in flight while another claims (rows are locked with SKIP
            # LOCKED, so they take different tasks); a task made ready waits for less than a whole claim.
            await asyncio.gather(*(self._loop(sweeper=i == 0) for i in range(_CLAIMERS)))
        finally:
            self.waker.engine_here = False
            await self._shutdown()

    async def _loop(self, *, sweeper: bool) -> None:
        next_sweep = 0.0
        again = True  # claim without a new wake-up: the first round, a full batch, a poll
        while True:
            self.wake.clear()
            if not again and self.wake.generation <= self._covered:
                # Woken by a set that another loop's claim, started after it, covers: nothing new to take.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.settings.poll_seconds)
                    continue
                again = True  # the poll interval passed
                continue
            # Every commit that woke the engine up to here is visible to the claim's snapshot, taken after.
            self._covered = self.wake.generation
            # Slots are reserved while a claim is in flight, so that the loops together stay within concurrency.
            free = max(0, self.settings.concurrency - len(self.inflight) - self._reserved)
            self._reserved += free
            claimed: list[Claimed] = []
            batch = Batch()
            held: Counter[str] = Counter()
            try:
                claimed, batch = await self._claim(free, held)
            except Exception as exc:
                log.warning("workflow engine: claim failed", error=describe_error(exc))
                await asyncio.sleep(self.settings.poll_seconds)
            finally:
                # Released with no await before the claimed tasks enter inflight below, which counts them instead.
                self._reserved -= free
                self._kind_reserved.subtract(held)
            if batch.full or len(self.inflight) >= self.settings.concurrency:
                self.waker.share()  # more than this process takes now: the other processes claim the rest
            for task in claimed:
                job = asyncio.create_task(self._execute(task), name=f"wf-{task.run_id}-{task.task_id}")
                self.inflight[job] = task
                job.add_done_callback(self._done)
            if sweeper and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.settings.poll_seconds
                try:
                    await self._sweep()
                except Exception as exc:  # the next sweep tries again; a bug here must not pass silently
                    log.warning("workflow engine: sweep failed", error=describe_error(exc))
            if self._unsettled:
                try:
                    await self._settle()
                except Exception as exc:  # tried again next round (and by the sweep)
                    log.warning("workflow engine: settling runs failed", error=describe_error(exc))
            again = True
            if batch.full or batch.ready:
                continue  # more may be waiting, or the inline tasks made some ready
            wait = _SETTLE_RETRY_S if self._unsettled else self.settings.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), wait)
                again = False  # woken: claim only if no claim started since covers the wake-up

    def _done(self, job: asyncio.Task[None]) -> None:
        self.inflight.pop(job, None)
        self.wake.set()  # a slot is free

    async def _claim(self, limit: int, held: Counter[str]) -> tuple[list[Claimed], Batch]:
        """Claim up to ``limit`` tasks; complete the inline ones in the same transaction; return the others (the
        capped kinds' slots they take are in ``held``, see :meth:`_claim_any`)."""
        lease = self.settings.lease_seconds
        async with self.database.unit_of_work() as uow:
            # Inline kinds in a large batch (they take no slot), then any kind up to the free slots.
            claimed = await self.store.claim(uow, self.worker, INLINE_BATCH, lease, sorted(INLINE_KINDS))
            full = len(claimed) == INLINE_BATCH
            # After a full inline claim the loop claims again at once; the other kinds are then claimed at most
            # every _GENERAL_EVERY_S (a round trip less per batch while inline tasks pile up, none left waiting).
            if limit > 0 and (not full or time.monotonic() >= self._next_general):
                self._next_general = time.monotonic() + _GENERAL_EVERY_S
                more = await self._claim_any(uow, limit, held)
                full = full or len(more) == limit
                claimed += more
            inline = await self._inline(uow, claimed)
            batch = await start_batch(uow, self.store.publisher, self.worker, claimed, inline)
            await uow.commit()
        batch.full = full
        now = time.time()
        for task in claimed:
            if task.ready_at is not None:
                instruments.DISPATCH.observe(max(0.0, now - task.ready_at.timestamp()))
        # One label lookup per kind and outcome, not per task (a batch is up to INLINE_BATCH tasks).
        outcomes = Counter((d.task.kind, "skipped" if d.skipped else "completed") for d in inline)
        for (kind, status), count in outcomes.items():
            instruments.TASKS.labels(kind=kind, status=status).inc(count)
            duration = instruments.DURATION.labels(kind=kind)
            for _ in range(count):
                duration.observe(0.0)
        if batch.ended:
            self.waker.moved(batch.ended)
            ended = set(batch.ended)
            for done in {d.task.run_id: d for d in inline if d.task.run_id in ended}.values():
                self._feedback(done.task, 1.0)
        self._unsettled.update(batch.unsettled)
        inlined = {(d.task.run_id, d.task.task_id) for d in inline}
        return [c for c in claimed if c.phase != "forward" or (c.run_id, c.task_id) not in inlined], batch

    async def _claim_any(self, uow: UnitOfWork, limit: int, held: Counter[str]) -> list[Claimed]:
        """Claim up to ``limit`` tasks of any kind, within the per-kind caps when there are some.

        With caps, the uncapped kinds are claimed together, then each capped kind up to its free slots: a statement
        more per capped kind (none without caps). The slots of the capped tasks claimed stay reserved in ``held``
        until the caller has them in flight.
        """
        lease = self.settings.lease_seconds
        if not self._kind_limits:
            return await self.store.claim(uow, self.worker, limit, lease)
        uncapped = [kind for kind in _ALL_KINDS if kind not in self._kind_limits]
        claimed = await self.store.claim(uow, self.worker, limit, lease, uncapped)
        running = Counter(task.kind for task in self.inflight.values())
        for kind, cap in self._kind_limits.items():
            room = min(cap - running[kind] - self._kind_reserved[kind], limit - len(claimed))
            if room <= 0:
                continue
            self._kind_reserved[kind] += room
            held[kind] += room  # released by the claim loop once the claimed tasks are in flight
            got = await self.store.claim(uow, self.worker, room, lease, [kind])
            self._kind_reserved[kind] -= room - len(got)
            held[kind] -= room - len(got)
            claimed += got
        return claimed

    async def _settle(self) -> None:
        """End the free runs this process's claims completed tasks of, now that those claims committed."""
        pending, self._unsettled = self._unsettled, {}
        try:
            async with self.database.unit_of_work() as uow:
                ended, skipped = await settle(uow, self.store.publisher, sorted(pending))
                await uow.commit()
        except BaseException:
            self._unsettled.update(pending)  # tried again (and the sweep settles any run left behind)
            raise
        for run_id in skipped:
            self._unsettled[run_id] = pending[run_id]
        if ended:
            self.waker.moved(ended)
            for run_id in ended:
                self._feedback(pending[run_id], 1.0)

    async def _inline(self, uow: UnitOfWork, claimed: list[Claimed]) -> list[Done]:
        """The results of the claimed tasks that run here and now (``noop``). One whose template or output
        fails is left to :meth:`_execute`, which records the failure under the task's retry policy."""
        done: list[Done] = []
        for task in claimed:
            if task.kind not in INLINE_KINDS or task.phase != "forward":
                continue
            try:
                params, run = await self._prepare(task, uow)
            except (TemplateError, TaskFailure):
                continue
            if run and output_size(params) > self.settings.max_output_bytes:
                continue
            done.append(Done(task, params if run else None, skipped=not run))
        return done

    async def _sweep(self) -> None:
        async with self.database.unit_of_work() as uow:
            if await self.store.sweep(uow):
                await uow.commit()
        if time.monotonic() >= self._next_gauges:
            self._next_gauges = time.monotonic() + _GAUGES_S
            async with self.database.unit_of_work() as uow:
                await instruments.refresh_gauges(uow)
        if time.monotonic() < self._next_stranded:
            return
        # A run is left unsettled only by a process that died between a claim's commit and its settle: looked for
        # as often as a dead process's leases expire (a third of the lease), a page at a time.
        self._next_stranded = time.monotonic() + self.settings.lease_seconds / 3
        async with self.database.unit_of_work() as uow:
            ended, self._stranded_after = await stranded(uow, self.store.publisher, self._stranded_after)
            await uow.commit()
        if ended:
            self.waker.moved(ended)

    async def _shutdown(self) -> None:
        jobs = list(self.inflight)
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        held = list(self.inflight.values())
        if held:
            with contextlib.suppress(Exception):
                async with self.database.unit_of_work() as uow:
                    await self.store.release(uow, held)
                    await uow.commit()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
