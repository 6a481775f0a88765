"""The contract-driven step runner, generic over a typed context.

A workflow is a contract (steps in order with their timeouts, retries and optionality; an FSM with a
lifecycle; the events to publish) plus one step callable per contract step. Each step is an ``async``
callable on the caller's typed context ``C`` and the :class:`Run` handle. The runner moves the FSM, bounds
every step by its timeout, skips a failing optional step (the run is then *degraded*), and records the run:
on success in the caller's unit of work (the caller commits, with its steps' own writes); on failure in a
transaction of its own, leaving the caller's unit of work untouched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import structlog
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.safe_errors import describe_error, loggable_error
from omninode_bridge.core.steps import messages
from omninode_bridge.core.steps.fsm import StateMachine
from omninode_bridge.core.steps.records import RunRecord, StepRecord, StepStatus, TransitionRecord
from omninode_bridge.core.steps.run import (
    LeadSkippedError,
    Recorder,
    Run,
    RunFailedError,
    RunResult,
    Step,
    StepTimeoutError,
)
from omninode_bridge.core.steps.specs import StepSpec, WorkflowContract

__all__ = ["StepRunner", "check_steps", "validate_contract"]

log = structlog.get_logger(__name__)

C = TypeVar("C")


def validate_contract(contract: WorkflowContract) -> StateMachine:
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


def check_steps(contract: WorkflowContract, names: Iterable[str]) -> None:
    """Every step of the contract must have a callable.

    Raises:
        ValueError: Naming the steps without one.
    """
    known = set(names)
    missing = [s.name for s in contract.workflow_coordination.steps if s.name not in known]
    if missing:
        raise ValueError(f"{contract.name}: no handler for contract steps {missing}")


class StepRunner(Generic[C]):
    """Runs a contract's steps on a typed context ``C``.

    Args:
        contract: The workflow contract.
        steps: A callable per contract step name.
        recorder: Records runs and stages their events.
        result: What a completed run reports (stored with it and in ``WORKFLOW_COMPLETED``).

    Raises:
        ValueError: The contract is inconsistent, or a contract step has no callable.
    """

    def __init__(
        self,
        contract: WorkflowContract,
        steps: Mapping[str, Step[C]],
        recorder: Recorder,
        result: Callable[[C], dict[str, Any]],
    ) -> None:
        self.contract = contract
        self.fsm = validate_contract(contract)
        check_steps(contract, steps)
        self.steps = dict(steps)
        self.recorder = recorder
        self.result = result
        self._published = frozenset(contract.event_type.events)
        self._version = str(contract.contract_version)

    async def run(
        self,
        uow: UnitOfWork,
        context: C,
        *,
        workflow_type: str,
        correlation_id: str,
        namespace: str | None,
        commit: bool = False,
    ) -> RunResult[C]:
        """Run the contract's steps in ``uow``; the caller commits on success, unless ``commit``.

        The run's record and every event it publishes are written at the end by one statement, after a
        step's deferred write if it made one (:meth:`Run.write_with_run`). With ``commit`` that statement
        is committed with ``uow`` (one round trip when the steps wrote nothing else).

        Raises:
            LeadSkippedError: The deferred write wrote nothing, or failed; nothing of the run was written.
            RunFailedError: A required step failed or timed out, or a transition was illegal. The failed run
                is committed on its own; ``uow`` is left as the steps left it (the caller rolls it back).
        """
        started_at = dt.datetime.now(dt.UTC)
        clock = time.perf_counter()
        run = Run(uuid7(), correlation_id, namespace, uow, self.fsm.initial, self._flush)
        steps: list[StepRecord] = []
        transitions: list[TransitionRecord] = []
        run.record(messages.WORKFLOW_STARTED, messages.WorkflowStarted(run.workflow_id, workflow_type, namespace))
        failed_step: str | None = None
        try:
            self._transition(run, transitions, self.contract.fsm.lifecycle.running)
            for spec in self.contract.workflow_coordination.steps:
                failed_step = spec.name
                record, error = await self._run_step(run, context, spec)
                steps.append(record)
                run.record(messages.STEP_COMPLETED, messages.StepCompleted(
                    run.workflow_id, spec.name, record.status, record.duration_ms, record.error))  # fmt: skip
                if error is not None:
                    raise error
            failed_step = None
            self._transition(run, transitions, self.contract.fsm.lifecycle.succeeded)
        except Exception as exc:
            try:
                await self._record_failure(run, workflow_type, started_at, clock, failed_step, exc, steps, transitions)
            except Exception:
                # Typically the database itself failed; the original error is what the caller needs.
                log.exception("could not record a failed workflow", workflow_id=str(run.workflow_id))
            raise RunFailedError(run.workflow_id, failed_step, exc) from exc

        elapsed_ms = (time.perf_counter() - clock) * 1000
        result = self.result(context)
        completed = messages.WorkflowCompleted(run.workflow_id, run.state, run.degraded, round(elapsed_ms, 3), result)
        run.record(messages.WORKFLOW_COMPLETED, completed)
        await self._flush(run)
        done = self._record(run, workflow_type, started_at, elapsed_ms, None, result, steps, transitions)
        try:
            written = await self.recorder.save(uow, done, run.staged, lead=run.lead, commit=commit)
        except Exception as exc:
            if run.lead is None:
                raise
            # The deferred write failed after its step had completed: the caller runs again without deferring,
            # so the failure happens in its step and is recorded there, as it would have been.
            raise LeadSkippedError(run.workflow_id, exc) from exc
        if not written:
            raise LeadSkippedError(run.workflow_id)
        return RunResult(run.workflow_id, run.state, run.degraded, elapsed_ms, context, steps)

    async def _run_step(self, run: Run, context: C, spec: StepSpec) -> tuple[StepRecord, Exception | None]:
        """Run one step under its timeout; returns its record and, if it failed the run, the error."""
        timeout = spec.timeout_ms / 1000
        started_at = dt.datetime.now(dt.UTC)
        began = time.perf_counter()
        status: StepStatus = "completed"
        error: str | None = None
        output: dict[str, Any] = {}
        failure: Exception | None = None
        deadline: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(timeout) as deadline:
                produced = await self._attempts(run, context, spec)
            output = dict(produced or {})
            # CPU-bound work never yields to the timeout; check the clock as well.
            if time.perf_counter() - began > timeout:
                raise StepTimeoutError(f"step {spec.name} exceeded its {spec.timeout_ms} ms timeout")
        except TimeoutError as exc:
            status = "failed"
            # The step's own deadline, or a timeout inside the step (classified, never a library's text).
            expired = isinstance(exc, StepTimeoutError) or (deadline is not None and deadline.expired())
            error = f"step {spec.name} exceeded its {spec.timeout_ms} ms timeout" if expired else describe_error(exc)
            failure = StepTimeoutError(error)
        except Exception as exc:
            status = "failed"
            # Stored with the step and returned by GET /orchestrator/workflows/{id}: a classification only.
            error = describe_error(exc)
            failure = exc
        duration_ms = (time.perf_counter() - began) * 1000
        if status == "failed" and spec.optional:
            # An optional step never fails the run; its absence is reported as degraded.
            run.degraded = True
            status = "skipped"
            failure = None
            log.info("optional step skipped", step=spec.name, workflow_id=str(run.workflow_id), error=error)
        record = StepRecord(spec.name, spec.type, status, spec.optional, started_at, round(duration_ms, 3),
                            spec.timeout_ms, error, output)  # fmt: skip
        return record, failure

    async def _attempts(self, run: Run, context: C, spec: StepSpec) -> Mapping[str, Any] | None:
        """The step, tried again after a failure up to ``spec.retries`` times (the timeout bounds them all)."""
        step = self.steps[spec.name]
        for attempt in range(spec.retries):
            try:
                return await step(context, run)
            except TimeoutError:
                raise
            except Exception as exc:
                log.info("step retried", step=spec.name, attempt=attempt + 1, error=loggable_error(exc))
        return await step(context, run)

    def _transition(
        self, run: Run, transitions: list[TransitionRecord], target: str, reason: str | None = None
    ) -> None:
        self.fsm.check(run.state, target)
        transitions.append(TransitionRecord(run.state, target, dt.datetime.now(dt.UTC), reason))
        run.record(messages.STATE_TRANSITION, messages.StateTransition(run.workflow_id, run.state, target, reason))
        run.state = target

    async def _record_failure(
        self,
        run: Run,
        workflow_type: str,
        started_at: dt.datetime,
        clock: float,
        failed_step: str | None,
        exc: Exception,
        steps: list[StepRecord],
        transitions: list[TransitionRecord],
    ) -> None:
        """Commit the failed run and its lifecycle events in a transaction of their own."""
        error = describe_error(exc)  # stored with the run and its WORKFLOW_FAILED event: never a library's text
        try:
            self._transition(run, transitions, self.contract.fsm.lifecycle.failed, reason=error[:500])
        except Exception as fsm_error:
            # The FSM refuses even FAILED from here: keep the run's last legal state on record.
            log.error("workflow cannot reach its failed state", workflow_id=str(run.workflow_id),
                      error=loggable_error(fsm_error))  # fmt: skip
        run.record(messages.WORKFLOW_FAILED,
                   messages.WorkflowFailed(run.workflow_id, run.state, failed_step, error[:2000]))  # fmt: skip
        # Step events (a stamp that will not exist) are dropped; the lifecycle is written whole.
        lifecycle = [event for event in run.take_lifecycle() if event[0] in self._published]
        elapsed_ms = (time.perf_counter() - clock) * 1000
        record = self._record(run, workflow_type, started_at, elapsed_ms, error[:4000], {}, steps, transitions)
        async with self.recorder.separate() as own:
            await self.recorder.save(own, record, lifecycle, commit=True)
        log.warning("workflow failed", workflow_id=str(run.workflow_id), step=failed_step, error=error)

    def _record(
        self,
        run: Run,
        workflow_type: str,
        started_at: dt.datetime,
        elapsed_ms: float,
        error: str | None,
        result: dict[str, Any],
        steps: list[StepRecord],
        transitions: list[TransitionRecord],
    ) -> RunRecord:
        return RunRecord(run.workflow_id, workflow_type, self._version, run.correlation_id, run.namespace,
                         run.state, run.degraded, started_at, elapsed_ms, error, result, list(steps),
                         list(transitions))  # fmt: skip

    async def _flush(self, run: Run) -> int:
        """Release the run's pending events that the contract publishes, in the order they happened."""
        events = [event for event in run.take_pending() if event[0] in self._published]
        run.staged.extend(events)
        return len(events)
