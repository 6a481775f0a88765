"""The engine of one app process: claim runnable tasks, run them under their lease, record how they ended.

Any number of processes run it on one database. It wakes on its own process's commits that made tasks ready
(submits, cancels, retries, compensations started), on a ``NOTIFY wf_ready`` from another process (sent by
a process without an engine after such commits, or by an engine that found more than it could take:
``wake.Waker``), when a retry is due, and otherwise polls every ``poll_seconds``. Both claim loops wait on one
signal; a loop woken by a wake-up that the other loop's claim already covers does not claim
(``wake.Wake``). Tasks are claimed in batches; ``noop`` tasks
complete in the claim's own transaction (``batch.start_batch``), the others run under a lease that is renewed
while they run; a process that dies leaves leases that expire, and the tasks are claimed again (a new attempt
number fences the old one out). Free runs whose tasks a claim completed without ending them are settled right
after its commit (``batch.settle``), retried within ``_SETTLE_RETRY_S`` when another transaction held the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import structlog

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.safe_errors import describe_error
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
from omninode_bridge.modules.workflow.services.http import HttpTaskError
from omninode_bridge.modules.workflow.services.kinds import Kinds, TaskFailure, output_size
from omninode_bridge.modules.workflow.services.store import Claimed, EngineStore
from omninode_bridge.modules.workflow.services.templates import TemplateError, is_truthy, references, render
from omninode_bridge.modules.workflow.services.wake import CHANNEL, Waker
from omninode_bridge.modules.workflow.settings import WorkflowSettings

__all__ = ["Engine"]

log = structlog.get_logger(__name__)
_CLAIMERS = 2
#: How soon a run that could not be settled (another transaction held its row) is tried again.
_SETTLE_RETRY_S = 0.02
#: How often the gauges of runs and tasks in flight are read from the database (by the sweeping loop).
_GAUGES_S = 2.0


class _Stopped(Exception):
    """The run asked its running tasks to stop (it is failing or was cancelled)."""


class Engine:
    """Claims and runs workflow tasks in this process.

    Args:
        settings: Concurrency, lease, polling.
        database: The app's database.
        store: The engine's statements.
        kinds: Runs each kind.
        waker: This process's wake-ups (the engine's signal, ``?wait`` callers).
    """

    def __init__(self, settings: WorkflowSettings, database: Database, store: EngineStore, kinds: Kinds,
                 waker: Waker) -> None:  # fmt: skip
        self.settings = settings
        self.database = database
        self.store = store
        self.kinds = kinds
        self.waker = waker
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.wake = waker.local
        self.inflight: dict[asyncio.Task[None], Claimed] = {}
        self._reserved = 0
        self._covered = 0  # the wake-up generation the latest claim started after (see wake.Wake)
        # Free runs whose tasks this process completed in a claim that did not end them (batch.settle).
        self._unsettled: dict[uuid.UUID, Claimed] = {}
        self._stranded_after = uuid.UUID(int=0)  # where the next sweep for unsettled runs goes on
        self._next_stranded = 0.0
        self._next_gauges = 0.0
        self._listener: Any = None
        self.background: set[asyncio.Task[None]] = set()

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
            # Two claim loops: one's transaction is in flight while the other claims (rows are locked with SKIP
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
                # Woken by a set that the other loop's claim, started after it, covers: nothing new to take.
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
            try:
                claimed, batch = await self._claim(free)
            except Exception as exc:
                log.warning("workflow engine: claim failed", error=describe_error(exc))
                await asyncio.sleep(self.settings.poll_seconds)
            finally:
                self._reserved -= free
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

    async def _claim(self, limit: int) -> tuple[list[Claimed], Batch]:
        """Claim up to ``limit`` tasks; complete the inline ones in the same transaction; return the others."""
        lease = self.settings.lease_seconds
        async with self.database.unit_of_work() as uow:
            # Inline kinds in a large batch (they take no slot), then any kind up to the free slots.
            claimed = await self.store.claim(uow, self.worker, INLINE_BATCH, lease, sorted(INLINE_KINDS))
            full = len(claimed) == INLINE_BATCH
            if limit > 0:
                more = await self.store.claim(uow, self.worker, limit, lease)
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

    async def _renew(self, task: Claimed, work: asyncio.Task[Any]) -> None:
        """Renew the lease every third of it; cancel ``work`` when the lease is lost or the run is cancelled."""
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                async with self.database.unit_of_work() as uow:
                    ours, stop = await self.store.renew(uow, task, self.settings.lease_seconds)
                    await uow.commit()
            except Exception as exc:
                log.warning("workflow engine: lease renewal failed", error=describe_error(exc))
                continue
            if not ours or stop:
                work.cancel(_Stopped.__name__)
                return

    async def _execute(self, task: Claimed) -> None:
        began = time.perf_counter()
        spec = task.spec
        try:
            params, run = await self._prepare(task)
        except (TemplateError, TaskFailure) as exc:
            await self._fail(task, str(exc))
            return
        if not run:
            await self._complete(task, None, skipped=True, began=began)
            return
        timeout_s = float(spec.get("timeout_s", 60.0))
        work = asyncio.create_task(self.kinds.run(task.kind, params, run_id=task.run_id, task_id=task.task_id,
                                                  attempt=task.attempt, timeout_s=timeout_s))  # fmt: skip
        renewal = asyncio.create_task(self._renew(task, work))
        try:
            async with asyncio.timeout(timeout_s):
                result = await asyncio.shield(work)
        except TimeoutError:
            work.cancel()
            await self._fail(task, f"task {task.task_id} exceeded its {timeout_s:g} s timeout")
            return
        except asyncio.CancelledError:
            if work.cancelled() and not _current_cancelling():
                await self._fail(task, "stopped: its workflow is failing or was cancelled", cancelled=True)
                return
            work.cancel()
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, (TaskFailure, HttpTaskError)) else describe_error(exc)
            await self._fail(task, message)
            return
        finally:
            renewal.cancel()
        await self._complete(task, result.output, began=began, in_completion=result.in_completion)

    async def _prepare(self, task: Claimed, uow: UnitOfWork | None = None) -> tuple[dict[str, Any], bool]:
        spec = task.spec
        refs = sorted(references(spec.get("params", {})) | references(spec.get("when") or ""))
        outputs: dict[str, Any] = {}
        if refs and uow is not None:
            outputs = await self.store.outputs(uow, task.run_id, refs)
        elif refs:
            async with self.database.unit_of_work() as read:
                outputs = await self.store.outputs(read, task.run_id, refs)
        context = {"inputs": task.inputs, "tasks": outputs}
        when = spec.get("when")
        if when and not is_truthy(render(when, context)):
            return {}, False
        params = render(spec.get("params", {}), context)
        return params, True

    async def _complete(self, task: Claimed, output: Any, *, began: float, skipped: bool = False,
                        in_completion: Any = None) -> None:  # fmt: skip
        duration_ms = (time.perf_counter() - began) * 1000
        try:
            async with self.database.unit_of_work() as uow:
                if in_completion is not None:
                    output = await in_completion(uow)
                if output is not None and output_size(output) > self.settings.max_output_bytes:
                    raise TaskFailure(f"the output is over {self.settings.max_output_bytes} bytes")
                ended = await self.store.complete(uow, task, output, skipped=skipped, duration_ms=duration_ms)
                if ended is not None:
                    await uow.commit()
                    self.waker.moved((task.run_id,))
                    if ended == "completed":
                        self._feedback(task, 1.0)
                    instruments.TASKS.labels(kind=task.kind, status="skipped" if skipped else "completed").inc()
                    instruments.DURATION.labels(kind=task.kind).observe(duration_ms / 1000)
                else:
                    log.info("workflow task result dropped: its attempt was fenced out", run_id=str(task.run_id),
                             task_id=task.task_id, attempt=task.attempt)  # fmt: skip
        except TaskFailure as exc:
            await self._fail(task, str(exc))
        except Exception as exc:
            await self._fail(task, describe_error(exc))

    async def _fail(self, task: Claimed, error: str, *, cancelled: bool = False) -> None:
        try:
            async with self.database.unit_of_work() as uow:
                wait = await self.store.fail(uow, task, error, cancelled=cancelled)
                await uow.commit()
            self.waker.moved((task.run_id,))
        except Exception as exc:  # the lease expires and another attempt follows
            log.warning("workflow engine: could not record a failure", error=describe_error(exc))
            return
        instruments.TASKS.labels(kind=task.kind, status="retrying" if wait is not None else "failed").inc()
        if wait is None and task.phase == "forward" and not cancelled:
            self._feedback(task, 0.0)
        if wait is not None:
            asyncio.get_running_loop().call_later(wait, self.wake.set)
        self.wake.set()

    def _feedback(self, task: Claimed, score: float) -> None:
        """Tell the metrics module how the run's AI answers did: 1 when the run completed, 0 when a task failed."""
        if self.kinds.ai is None or not task.has_ai:
            return
        job = asyncio.create_task(self._send_feedback(task, score))
        self.background.add(job)
        job.add_done_callback(self.background.discard)

    async def _send_feedback(self, task: Claimed, score: float) -> None:
        ai = self.kinds.ai
        try:
            async with self.database.unit_of_work() as uow:
                executions = await self.store.ai_executions(uow, task.run_id)
            for execution_id in executions:
                if ai is not None:
                    await ai.feedback(execution_id, score)
        except Exception as exc:  # feedback is advice to the router; the run's record does not depend on it
            log.warning("workflow: AI feedback not sent", error=describe_error(exc))


def _current_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current is not None and current.cancelling())
