"""What a run is made of: the handle steps see, the step type, the recorder port, results and failures."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.core.steps.records import Lead, RunRecord, StepRecord

__all__ = ["LeadSkippedError", "Recorder", "Run", "RunFailedError", "RunResult", "Step", "StepTimeoutError"]

C = TypeVar("C")


class Run:
    """What a step sees of the run besides its context: identity, the unit of work, and its events.

    Attributes:
        workflow_id: Id of this run (also in every event it publishes).
        correlation_id: The request's correlation id (the Kafka key of the events).
        namespace: The namespace the work belongs to, if any.
        uow: The caller's unit of work; steps write through it and never commit.
        state: The run's FSM state.
        degraded: True once an optional step was skipped.
    """

    __slots__ = ("_flush", "_lifecycle", "_pending", "correlation_id", "degraded", "lead", "namespace", "staged",
                 "state", "uow", "workflow_id")  # fmt: skip

    def __init__(
        self,
        workflow_id: uuid.UUID,
        correlation_id: str,
        namespace: str | None,
        uow: UnitOfWork,
        state: str,
        flush: Callable[[Run], Awaitable[int]],
    ) -> None:
        self.workflow_id = workflow_id
        self.correlation_id = correlation_id
        self.namespace = namespace
        self.uow = uow
        self.state = state
        self.degraded = False
        self._pending: list[tuple[str, Any]] = []
        self._lifecycle: list[tuple[str, Any]] = []
        self._flush = flush
        #: Events an event-publishing step released: written with the run record, in this order.
        self.staged: list[tuple[str, Any]] = []
        #: A step's write deferred to the run's one statement (:meth:`write_with_run`).
        self.lead: Lead | None = None

    def write_with_run(self, lead: Lead) -> None:
        """Defer a step's write to the statement that records the run: one round trip for both.

        The write goes first and gates the rest: when it writes no row (e.g. ``ON CONFLICT DO NOTHING``
        met an existing row), nothing of the run is written and :meth:`StepRunner.run` raises
        :class:`LeadSkippedError`. A step that needs the write's answer before the run goes on cannot
        defer it. One per run: a retried step's last attempt replaces its earlier one.
        """
        self.lead = lead

    def emit(self, event_type: str, payload: Any) -> None:
        """Publish ``event_type`` with the run's events, if the contract lists it.

        Events emitted by steps are dropped when the run fails, like the steps' other writes.
        """
        self._pending.append((event_type, payload))

    def record(self, event_type: str, payload: Any) -> None:
        """A lifecycle event of the runner's own: kept even when the run fails."""
        self._pending.append((event_type, payload))
        self._lifecycle.append((event_type, payload))

    def take_pending(self) -> list[tuple[str, Any]]:
        """The events not yet written, in the order they happened; clears them."""
        pending, self._pending = self._pending, []
        return pending

    def take_lifecycle(self) -> list[tuple[str, Any]]:
        """Every lifecycle event of the run (for a failed run, written again on their own); clears pending."""
        self._pending = []
        return list(self._lifecycle)

    async def publish_emitted(self) -> int:
        """Release the events emitted so far to the outbox (an event-publishing step); returns how many.

        They are written with the run record (one statement, in the order they happened), in the same
        transaction as before: a rolled-back run publishes none of them.
        """
        return await self._flush(self)


Step = Callable[[C, Run], Awaitable[Mapping[str, Any] | None]]
"""``async def step(context, run) -> output``: do the step's work; the output is recorded with the step."""


class Recorder(Protocol):
    """Where runs are recorded (:class:`~omninode_bridge.core.steps.records.RunRecorder` in the app)."""

    def separate(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A fresh unit of work for a failed run."""
        ...

    async def save(
        self,
        uow: UnitOfWork,
        run: RunRecord,
        events: Sequence[tuple[str, Any]],
        *,
        lead: Lead | None = None,
        commit: bool = False,
    ) -> bool:
        """Write the run, its steps, transitions and events (type, payload) after ``lead``; whether it wrote."""
        ...


@dataclass(frozen=True, slots=True)
class RunResult(Generic[C]):
    """A completed run, with the context its steps filled."""

    workflow_id: uuid.UUID
    state: str
    degraded: bool
    processing_time_ms: float
    context: C
    steps: list[StepRecord]


class RunFailedError(RuntimeError):
    """A required step failed or exceeded its timeout; the failure is already recorded.

    Attributes:
        workflow_id: The failed run.
        step: The step that failed (None if the FSM refused a transition).
        cause: The original exception (the caller may re-raise a client error a step raised).
        error: The failure as recorded with the run: a safe classification of ``cause``, never its text
            (a database error's text carries the statement's values). Use it in responses.
    """

    def __init__(self, workflow_id: uuid.UUID, step: str | None, cause: BaseException) -> None:
        self.error = describe_error(cause)
        super().__init__(f"workflow {workflow_id} failed at {step or 'a state transition'}: {self.error}")
        self.workflow_id = workflow_id
        self.step = step
        self.cause = cause


class LeadSkippedError(RuntimeError):
    """A run's deferred write (:meth:`Run.write_with_run`) wrote no row or failed: nothing of the run was written.

    Not recorded as a failure: the caller runs again without deferring, to see what was there (a conflict)
    or to have the failure happen, and be recorded, in the step that makes the write.

    Attributes:
        workflow_id: The run that was not written.
        cause: The error of the statement, when it failed (None when it wrote nothing).
    """

    def __init__(self, workflow_id: uuid.UUID, cause: BaseException | None = None) -> None:
        super().__init__(f"workflow {workflow_id}: its deferred write {'failed' if cause else 'wrote nothing'}; "
                         "the run was not recorded")  # fmt: skip
        self.workflow_id = workflow_id
        self.cause = cause


class StepTimeoutError(TimeoutError):
    """A step ran past its contract timeout."""
