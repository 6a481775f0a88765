"""Running one claimed task under its lease: render it, run its kind, renew the lease, record how it ended."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.modules.workflow.services import instruments
from omninode_bridge.modules.workflow.services.http import HttpTaskError
from omninode_bridge.modules.workflow.services.kinds import Kinds, TaskFailure, output_size
from omninode_bridge.modules.workflow.services.store import Claimed, EngineStore
from omninode_bridge.modules.workflow.services.templates import TemplateError, is_truthy, references, render
from omninode_bridge.modules.workflow.services.wake import Waker
from omninode_bridge.modules.workflow.settings import WorkflowSettings

__all__ = ["TaskRunner"]

log = structlog.get_logger(__name__)


class _Stopped(Exception):
    """The run asked its running tasks to stop (it is failing or was cancelled)."""


class TaskRunner:
    """Runs the tasks its engine claimed, each in a job of its own, and records each attempt's end.

    Args:
        settings: Lease, output limit.
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
        self.wake = waker.local
        self.background: set[asyncio.Task[None]] = set()

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
