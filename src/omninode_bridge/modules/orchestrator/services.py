"""The contract-driven workflow runner (NodeBridgeOrchestrator).

A module hands the orchestrator one handler per non-routing step; the contract decides their order,
timeouts and which are optional, the FSM decides which state changes are legal, and the event subcontract
decides which events are published. Everything a run records (the execution, its steps and transitions,
and its events through the outbox) is written in the caller's unit of work, in a few bulk statements at the
end, so the request commits it together with the step handlers' own writes.

On failure the caller's transaction is rolled back (the handlers' writes, e.g. a stamp row, disappear) and
the failed execution with its events is written in a fresh transaction, so a failure is still on record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select, text
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import EventPublisher, OnexEnvelopeV1, new_envelope
from omninode_bridge.core.fsm import StateMachine
from omninode_bridge.core.safe_errors import describe_error, loggable_error
from omninode_bridge.modules.orchestrator import events
from omninode_bridge.modules.orchestrator.models import FsmTransitionRow, WorkflowExecutionRow, WorkflowStepRow
from omninode_bridge.modules.orchestrator.routing import RoutedService, ServiceUnavailableError
from omninode_bridge.modules.orchestrator.schemas import (
    FsmTransition,
    OrchestratorContract,
    StepSpec,
    WorkflowExecution,
    WorkflowStep,
)

__all__ = [
    "StepHandler",
    "WorkflowFailedError",
    "WorkflowOrchestrator",
    "WorkflowResult",
    "WorkflowRun",
    "check_handlers",
    "load_execution",
    "validate_contract",
]

log = structlog.get_logger(__name__)

# The three inserts of a finished run as data-modifying CTEs: one round trip instead of three (the foreign
# keys are checked at the end of the statement, after the execution row exists).
_WRITE_RUN = text("""
WITH execution AS (
    INSERT INTO workflow_executions (id, workflow_type, contract_version, correlation_id, namespace, state, degraded,
                                     started_at, completed_at, duration_ms, error, result)
    VALUES (:id, :workflow_type, :contract_version, :correlation_id, :namespace, :state, :degraded, :started_at,
            :completed_at, :duration_ms, :error, CAST(:result AS jsonb))
), steps AS (
    INSERT INTO workflow_steps (workflow_id, position, name, step_type, status, optional, started_at, duration_ms,
                                timeout_ms, error, output)
    SELECT :id, * FROM unnest(CAST(:step_positions AS smallint[]), CAST(:step_names AS text[]),
                              CAST(:step_types AS text[]), CAST(:step_statuses AS text[]),
                              CAST(:step_optional AS boolean[]), CAST(:step_started AS timestamptz[]),
                              CAST(:step_durations AS float8[]), CAST(:step_timeouts AS integer[]),
                              CAST(:step_errors AS text[]), CAST(:step_outputs AS jsonb[]))
)
INSERT INTO fsm_transitions (workflow_id, from_state, to_state, at, reason)
SELECT :id, * FROM unnest(CAST(:from_states AS text[]), CAST(:to_states AS text[]),
                          CAST(:transition_at AS timestamptz[]), CAST(:reasons AS text[]))
""")

SOURCE = "omninode-bridge.orchestrator"


@dataclass(slots=True)
class WorkflowRun:
    """What a step handler sees: the run's identity, its input, and the results of earlier steps.

    Attributes:
        workflow_id: Id of this run (also in every event it publishes).
        correlation_id: The request's correlation id (the Kafka key of the events).
        namespace: The namespace the work belongs to, if any.
        uow: The request's unit of work; handlers write through it and never commit.
        data: Input plus what earlier steps put there (by convention, under their own keys).
        degraded: True once an optional step was skipped.
    """

    workflow_id: uuid.UUID
    correlation_id: str
    namespace: str | None
    uow: UnitOfWork
    data: dict[str, Any]
    degraded: bool = False
    state: str = ""
    _pending: list[tuple[str, Any]] = field(default_factory=list)
    _lifecycle: list[tuple[str, Any]] = field(default_factory=list)
    _flush: Callable[[WorkflowRun], Awaitable[int]] | None = None

    def emit(self, event_type: str, payload: Any) -> None:
        """Publish ``event_type`` with the run's events, if the contract lists it.

        Events emitted by step handlers are dropped when the workflow fails, like their other writes.
        """
        self._pending.append((event_type, payload))

    def _record(self, event_type: str, payload: Any) -> None:
        """A lifecycle event of the orchestrator's own: kept even when the workflow fails."""
        self._pending.append((event_type, payload))
        self._lifecycle.append((event_type, payload))

    async def publish_emitted(self) -> int:
        """Write the events emitted so far to the outbox now (an event-publishing step); returns how many."""
        return await self._flush(self) if self._flush is not None else 0


StepHandler = Callable[[WorkflowRun], Awaitable[Mapping[str, Any] | None]]
"""``async def handler(run) -> output``: do the step's work; the output is recorded with the step."""


@dataclass(frozen=True, slots=True)
class WorkflowResult:
    """A completed run."""

    workflow_id: uuid.UUID
    state: str
    degraded: bool
    processing_time_ms: float
    data: dict[str, Any]
    steps: list[WorkflowStep]


class WorkflowFailedError(RuntimeError):
    """A required step failed or exceeded its timeout; the failure is already recorded.

    Attributes:
        workflow_id: The failed run.
        step: The step that failed (None if the FSM refused a transition).
        cause: The original exception (a client error a step raised is re-raised by the caller).
        error: The failure as recorded with the run: a safe classification of ``cause``, never its text
            (a database error's text carries the statement's values). Use it in responses.
    """

    def __init__(self, workflow_id: uuid.UUID, step: str | None, cause: BaseException) -> None:
        self.error = describe_error(cause)
        super().__init__(f"workflow {workflow_id} failed at {step or 'a state transition'}: {self.error}")
        self.workflow_id = workflow_id
        self.step = step
        self.cause = cause


class StepTimeoutError(TimeoutError):
    """A step ran past its contract timeout."""


def validate_contract(contract: OrchestratorContract) -> StateMachine:
    """Check the contract's FSM, lifecycle states and routing references; returns its state machine.

    Raises:
        ValueError: Naming what is inconsistent.
    """
    fsm = StateMachine(contract.name, contract.fsm)
    lifecycle = contract.fsm.lifecycle
    for state in (lifecycle.running, lifecycle.succeeded, lifecycle.failed):
        if not fsm.has_state(state):
            raise ValueError(f"{contract.name}: lifecycle state {state!r} is not a declared FSM state")
    services = {service.name for service in contract.routing.services}
    for step in contract.workflow_coordination.steps:
        if step.type == "routing" and (step.service is None or step.service not in services):
            raise ValueError(f"{contract.name}: routing step {step.name!r} names no routing service")
    return fsm


def check_handlers(contract: OrchestratorContract, handlers: Iterable[str]) -> None:
    """Every non-routing step of the contract must have a handler.

    Raises:
        ValueError: Naming the steps without one.
    """
    known = set(handlers)
    missing = [s.name for s in contract.workflow_coordination.steps if s.type != "routing" and s.name not in known]
    if missing:
        raise ValueError(f"{contract.name}: no handler for contract steps {missing}")


class WorkflowOrchestrator:
    """Runs workflows as the orchestrator contract describes.

    Args:
        contract: The validated orchestrator contract.
        publisher: Writes the run's events to the outbox.
        services: Routed services by name (for ``routing`` steps).

    Raises:
        ValueError: The contract's FSM or lifecycle is inconsistent, or a routing step names no service.
    """

    def __init__(
        self, contract: OrchestratorContract, publisher: EventPublisher, services: Mapping[str, RoutedService]
    ) -> None:
        self.contract = contract
        self.publisher = publisher
        self.services = dict(services)
        self.fsm = validate_contract(contract)
        publisher.catalog.require(contract.event_type.topic)
        self._published = frozenset(contract.event_type.events)
        self._version = str(contract.contract_version)

    @property
    def steps(self) -> list[StepSpec]:
        """The contract's steps, in order."""
        return list(self.contract.workflow_coordination.steps)

    def check_handlers(self, handlers: Mapping[str, StepHandler]) -> None:
        """Fail at start-up if a non-routing step of the contract has no handler.

        Raises:
            ValueError: Naming the steps without a handler.
        """
        check_handlers(self.contract, handlers)

    async def run(
        self,
        uow: UnitOfWork,
        handlers: Mapping[str, StepHandler],
        *,
        workflow_type: str,
        correlation_id: str,
        namespace: str | None,
        data: dict[str, Any],
    ) -> WorkflowResult:
        """Run the contract's steps in ``uow``; the caller commits on success.

        Raises:
            WorkflowFailedError: A required step failed or timed out, or a transition was illegal. The
                caller's transaction has been rolled back and the failed run committed.
        """
        started_at = dt.datetime.now(dt.UTC)
        clock = time.perf_counter()
        run = WorkflowRun(uuid7(), correlation_id, namespace, uow, data, state=self.fsm.initial, _flush=self._flush)
        recorded_steps: list[tuple[StepSpec, WorkflowStep, dt.datetime]] = []
        transitions: list[FsmTransition] = []
        run._record(events.WORKFLOW_STARTED, events.WorkflowStarted(run.workflow_id, workflow_type, namespace))
        failed_step: str | None = None
        try:
            self._transition(run, transitions, self.contract.fsm.lifecycle.running)
            for step in self.steps:
                failed_step = step.name
                step_started = dt.datetime.now(dt.UTC)
                outcome, error = await self._run_step(run, step, handlers)
                recorded_steps.append((step, outcome, step_started))
                run._record(
                    events.STEP_COMPLETED,
                    events.StepCompleted(
                        run.workflow_id, step.name, outcome.status, outcome.duration_ms, outcome.error
                    ),
                )
                if error is not None:
                    raise error
            failed_step = None
            self._transition(run, transitions, self.contract.fsm.lifecycle.succeeded)
        except Exception as exc:
            try:
                await self._record_failure(
                    run, workflow_type, started_at, clock, failed_step, exc, recorded_steps, transitions
                )  # fmt: skip
            except Exception:
                # Typically the database itself failed; the original error is what the caller needs.
                log.exception("could not record a failed workflow", workflow_id=str(run.workflow_id))
            raise WorkflowFailedError(run.workflow_id, failed_step, exc) from exc

        elapsed_ms = (time.perf_counter() - clock) * 1000
        result = {key: value for key, value in data.items() if key in ("stamp_id", "file_hash", "existing")}
        run._record(
            events.WORKFLOW_COMPLETED,
            events.WorkflowCompleted(run.workflow_id, run.state, run.degraded, round(elapsed_ms, 3), result),
        )
        await self._write(run, workflow_type, started_at, elapsed_ms, None, result, recorded_steps, transitions)
        await self._flush(run)
        return WorkflowResult(
            run.workflow_id, run.state, run.degraded, elapsed_ms, data, [s for _, s, _ in recorded_steps]
        )

    async def _run_step(
        self, run: WorkflowRun, step: StepSpec, handlers: Mapping[str, StepHandler]
    ) -> tuple[WorkflowStep, Exception | None]:
        """Run one step under its timeout; returns its record and, if it failed the workflow, the error."""
        timeout = step.timeout_ms / 1000
        began = time.perf_counter()
        status, error, output = "completed", None, {}
        failure: Exception | None = None
        deadline: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(timeout) as deadline:
                produced = await self._invoke(run, step, handlers)
            output = dict(produced or {})
            # CPU-bound work never yields to the timeout; check the clock as well.
            if time.perf_counter() - began > timeout:
                raise StepTimeoutError(f"step {step.name} exceeded its {step.timeout_ms} ms timeout")
        except TimeoutError as exc:
            status = "failed"
            # The step's own deadline, or a timeout inside the handler (classified, never a library's text).
            expired = isinstance(exc, StepTimeoutError) or (deadline is not None and deadline.expired())
            error = f"step {step.name} exceeded its {step.timeout_ms} ms timeout" if expired else describe_error(exc)
            failure = StepTimeoutError(error)
        except Exception as exc:
            status = "failed"
            # Stored with the step and returned by GET /orchestrator/workflows/{id}: a classification only.
            error = describe_error(exc)
            failure = exc
        duration_ms = (time.perf_counter() - began) * 1000
        if status == "failed" and step.optional:
            # An optional step never fails the workflow; its absence is reported as degraded.
            run.degraded = True
            status = "skipped"
            failure = None
            log.info("optional step skipped", step=step.name, workflow_id=str(run.workflow_id), error=error)
        record = WorkflowStep(step.name, step.type, status, step.optional, round(duration_ms, 3),  # type: ignore[arg-type]
                              step.timeout_ms, error, output)  # fmt: skip
        return record, failure

    async def _invoke(
        self, run: WorkflowRun, step: StepSpec, handlers: Mapping[str, StepHandler]
    ) -> Mapping[str, Any] | None:
        if step.type == "routing":
            service = self.services[step.service or ""]
            if not service.configured:
                raise ServiceUnavailableError(f"{service.spec.name} is not configured")
            run.emit("INTELLIGENCE_REQUESTED", {"workflow_id": str(run.workflow_id), "service": service.spec.name})
            answer = await service.call(
                {"workflow_id": str(run.workflow_id), "namespace": run.namespace,
                 **{k: v for k, v in run.data.items() if isinstance(v, str | int | float | bool) and k[0] != "_"}}
            )  # fmt: skip
            run.data[step.name] = answer
            run.emit("INTELLIGENCE_RECEIVED", {"workflow_id": str(run.workflow_id), "service": service.spec.name})
            return {"service": service.spec.name, "keys": sorted(answer)}
        return await handlers[step.name](run)

    def _transition(
        self, run: WorkflowRun, transitions: list[FsmTransition], target: str, reason: str | None = None
    ) -> None:
        self.fsm.check(run.state, target)
        transitions.append(FsmTransition(run.state, target, dt.datetime.now(dt.UTC), reason))
        run._record(events.STATE_TRANSITION, events.StateTransition(run.workflow_id, run.state, target, reason))
        run.state = target

    async def _record_failure(
        self,
        run: WorkflowRun,
        workflow_type: str,
        started_at: dt.datetime,
        clock: float,
        failed_step: str | None,
        exc: Exception,
        recorded_steps: list[tuple[StepSpec, WorkflowStep, dt.datetime]],
        transitions: list[FsmTransition],
    ) -> None:
        """Roll back the run's work, then commit the failed run and its lifecycle events on their own."""
        error = describe_error(exc)  # stored with the run and its WORKFLOW_FAILED event: never a library's text
        try:
            self._transition(run, transitions, self.contract.fsm.lifecycle.failed, reason=error[:500])
        except Exception as fsm_error:
            # The FSM refuses even FAILED from here: keep the run's last legal state on record.
            log.error("workflow cannot reach its failed state", workflow_id=str(run.workflow_id),
                      error=loggable_error(fsm_error))  # fmt: skip
        run._record(
            events.WORKFLOW_FAILED, events.WorkflowFailed(run.workflow_id, run.state, failed_step, error[:2000])
        )
        await run.uow.rollback()
        # Handler events (a stamp that no longer exists) are dropped; the lifecycle is republished whole.
        run._pending = list(run._lifecycle)
        elapsed_ms = (time.perf_counter() - clock) * 1000
        await self._write(run, workflow_type, started_at, elapsed_ms, error[:4000], {}, recorded_steps, transitions)
        await self._flush(run)
        await run.uow.commit()
        log.warning("workflow failed", workflow_id=str(run.workflow_id), step=failed_step, error=error)

    async def _write(
        self,
        run: WorkflowRun,
        workflow_type: str,
        started_at: dt.datetime,
        elapsed_ms: float,
        error: str | None,
        result: dict[str, Any],
        recorded_steps: list[tuple[StepSpec, WorkflowStep, dt.datetime]],
        transitions: list[FsmTransition],
    ) -> None:
        """The execution, its steps and its transitions: one statement (one round trip)."""
        steps = [(position, step, outcome, started) for position, (step, outcome, started) in enumerate(recorded_steps)]
        await run.uow.session.execute(
            _WRITE_RUN,
            {
                "id": run.workflow_id, "workflow_type": workflow_type, "contract_version": self._version,
                "correlation_id": run.correlation_id, "namespace": run.namespace, "state": run.state,
                "degraded": run.degraded, "started_at": started_at, "completed_at": dt.datetime.now(dt.UTC),
                "duration_ms": round(elapsed_ms, 3), "error": error, "result": json.dumps(result),
                "step_positions": [p for p, _, _, _ in steps], "step_names": [s.name for _, s, _, _ in steps],
                "step_types": [s.type for _, s, _, _ in steps], "step_statuses": [o.status for _, _, o, _ in steps],
                "step_optional": [s.optional for _, s, _, _ in steps],
                "step_started": [started for _, _, _, started in steps],
                "step_durations": [o.duration_ms for _, _, o, _ in steps],
                "step_timeouts": [s.timeout_ms for _, s, _, _ in steps],
                "step_errors": [o.error for _, _, o, _ in steps],
                "step_outputs": [json.dumps(o.output) for _, _, o, _ in steps],
                "from_states": [t.from_state for t in transitions], "to_states": [t.to_state for t in transitions],
                "transition_at": [t.at for t in transitions], "reasons": [t.reason for t in transitions],
            },
        )  # fmt: skip

    async def _flush(self, run: WorkflowRun) -> int:
        """Write the run's pending events, in the order they happened, to the outbox."""
        envelopes = [self._envelope(run, event_type, payload) for event_type, payload in run._pending
                     if event_type in self._published]  # fmt: skip
        run._pending = []
        await self.publisher.publish_many(run.uow, self.contract.event_type.topic, envelopes)
        return len(envelopes)

    def _envelope(self, run: WorkflowRun, event_type: str, payload: Any) -> OnexEnvelopeV1:
        return new_envelope(event_type=event_type, payload=payload, correlation_id=run.correlation_id, source=SOURCE)


async def load_execution(uow: UnitOfWork, workflow_id: uuid.UUID) -> WorkflowExecution | None:
    """A recorded workflow with its steps and transitions, or None."""
    row = await uow.session.get(WorkflowExecutionRow, workflow_id)
    if row is None:
        return None
    steps = (
        await uow.session.scalars(
            select(WorkflowStepRow).where(WorkflowStepRow.workflow_id == workflow_id).order_by(WorkflowStepRow.position)
        )
    ).all()
    transitions = (
        await uow.session.scalars(
            select(FsmTransitionRow).where(FsmTransitionRow.workflow_id == workflow_id).order_by(FsmTransitionRow.id)
        )
    ).all()
    return WorkflowExecution(
        workflow_id=row.id, workflow_type=row.workflow_type, correlation_id=row.correlation_id,
        namespace=row.namespace, state=row.state, degraded=row.degraded, started_at=row.started_at,
        completed_at=row.completed_at, duration_ms=row.duration_ms, error=row.error, result=row.result,
        steps=[WorkflowStep(s.name, s.step_type, s.status, s.optional, s.duration_ms, s.timeout_ms,  # type: ignore[arg-type]
                            s.error, s.output) for s in steps],
        transitions=[FsmTransition(t.from_state, t.to_state, t.at, t.reason) for t in transitions],
    )  # fmt: skip
