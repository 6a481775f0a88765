"""The step engine's rules on fakes of its own ports: FSM, timeouts, optional steps, retries, run records."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.steps import (
    FsmSpec,
    IllegalTransitionError,
    Lead,
    LeadSkippedError,
    Run,
    RunFailedError,
    RunRecord,
    StateMachine,
    StateSpec,
    Step,
    StepRunner,
    WorkflowContract,
)


class FakeSession:
    """Counts what is done to a unit of work's transaction."""

    def __init__(self) -> None:
        self.commits = 0
        self.rollbacks = 0

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        self.rollbacks += 1


def _uow() -> tuple[UnitOfWork, FakeSession]:
    session = FakeSession()
    return UnitOfWork(cast("AsyncSession", session)), session


@dataclass
class FakeRecorder:
    """Keeps runs and events in memory, by the unit of work they were written in."""

    saved: list[tuple[UnitOfWork, RunRecord]] = field(default_factory=list)
    leads: list[tuple[Lead | None, bool]] = field(default_factory=list)
    lead_writes: bool = True
    lead_error: Exception | None = None
    published: list[tuple[UnitOfWork, str]] = field(default_factory=list)
    separate_sessions: list[FakeSession] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def _separate(self) -> AsyncIterator[UnitOfWork]:
        uow, session = _uow()
        self.separate_sessions.append(session)
        yield uow

    def separate(self) -> contextlib.AbstractAsyncContextManager[UnitOfWork]:
        return self._separate()

    async def save(
        self,
        uow: UnitOfWork,
        run: RunRecord,
        events: Sequence[tuple[str, Any]],
        *,
        lead: Lead | None = None,
        commit: bool = False,
    ) -> bool:
        self.leads.append((lead, commit))
        if lead is not None and self.lead_error is not None:
            raise self.lead_error
        if lead is not None and not self.lead_writes:
            return False  # the deferred write met a conflict: nothing of the run is written
        self.saved.append((uow, run))
        self.published.extend((uow, event_type) for event_type, _ in events)
        if commit:
            await uow.commit()
        return True

    def events(self, uow: UnitOfWork) -> list[str]:
        return [event_type for written_in, event_type in self.published if written_in is uow]


@dataclass
class Ctx:
    """A typed context, as a module's would be."""

    seen: list[str] = field(default_factory=list)
    value: int = 0


EVENTS = ["WORKFLOW_STARTED", "WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "STEP_COMPLETED", "STATE_TRANSITION", "DID"]


def _contract(steps: list[dict[str, Any]], processing: list[str] | None = None) -> WorkflowContract:
    return msgspec.convert({
        "contract_version": {"major": 1, "minor": 0, "patch": 0}, "name": "T", "version": "1",
        "workflow_coordination": {"steps": steps},
        "fsm": {"initial_state": "PENDING", "states": [
            {"name": "PENDING", "transitions": ["PROCESSING", "FAILED"]},
            {"name": "PROCESSING", "transitions": processing or ["COMPLETED", "FAILED"]},
            {"name": "COMPLETED", "terminal": True}, {"name": "FAILED", "terminal": True},
        ], "lifecycle": {"running": "PROCESSING", "succeeded": "COMPLETED", "failed": "FAILED"}},
        "event_type": {"topic": "t", "events": EVENTS},
    }, WorkflowContract)  # fmt: skip


def _step(name: str, timeout_ms: int = 500, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "compute", "timeout_ms": timeout_ms, **extra}


async def _record(context: Ctx, run: Run) -> dict[str, Any]:
    context.seen.append("record")
    context.value += 1
    run.emit("DID", {"n": context.value})
    run.emit("NOT_IN_CONTRACT", {})
    return {"value": context.value}


async def _publish(context: Ctx, run: Run) -> dict[str, Any]:
    return {"events": await run.publish_emitted()}


def _runner(contract: WorkflowContract, steps: dict[str, Step[Ctx]]) -> tuple[StepRunner[Ctx], FakeRecorder]:
    recorder = FakeRecorder()
    return StepRunner(contract, steps, recorder, lambda context: {"value": context.value}), recorder


async def _run(runner: StepRunner[Ctx], uow: UnitOfWork, context: Ctx | None = None) -> Any:
    return await runner.run(uow, context or Ctx(), workflow_type="t", correlation_id="c", namespace="ns")


def test_state_machine_refuses_illegal_transitions() -> None:
    machine = StateMachine(
        "t", FsmSpec(initial_state="A", states=[StateSpec("A", ["B"]), StateSpec("B", terminal=True)])
    )
    machine.check("A", "B")
    with pytest.raises(IllegalTransitionError):
        machine.check("B", "A")
    with pytest.raises(ValueError, match="undeclared"):
        StateMachine("t", FsmSpec(initial_state="A", states=[StateSpec("A", ["Z"])]))


async def test_completed_run_is_recorded_in_the_callers_unit_of_work() -> None:
    runner, recorder = _runner(_contract([_step("record"), _step("publish")]), {"record": _record, "publish": _publish})
    uow, session = _uow()
    result = await _run(runner, uow)
    assert (result.state, result.degraded, result.context.value) == ("COMPLETED", False, 1)
    assert [(s.name, s.status) for s in result.steps] == [("record", "completed"), ("publish", "completed")]
    assert result.steps[0].output == {"value": 1}
    [(written_in, record)] = recorder.saved
    assert written_in is uow
    assert (record.state, record.result, record.error) == ("COMPLETED", {"value": 1}, None)
    assert [(t.from_state, t.to_state) for t in record.transitions] == [("PENDING", "PROCESSING"),
                                                                        ("PROCESSING", "COMPLETED")]  # fmt: skip
    events = recorder.events(uow)
    assert events[0] == "WORKFLOW_STARTED"
    assert events[-1] == "WORKFLOW_COMPLETED"
    assert events.count("STEP_COMPLETED") == 2
    assert events.count("STATE_TRANSITION") == 2
    assert "DID" in events
    assert "NOT_IN_CONTRACT" not in events  # the contract decides what is published
    # Flushed mid-run, in order: started, PENDING -> PROCESSING, the step's event, its STEP_COMPLETED.
    assert events[:4] == ["WORKFLOW_STARTED", "STATE_TRANSITION", "DID", "STEP_COMPLETED"]
    assert result.steps[1].output == {"events": 4}
    assert (session.commits, session.rollbacks) == (0, 0)  # the caller commits


async def test_step_over_its_contract_timeout_fails_the_run_cleanly() -> None:
    async def slow_cpu(context: Ctx, run: Run) -> None:
        time.sleep(0.02)  # CPU-bound: never yields to the deadline, caught by the clock check

    contract = _contract([_step("record"), _step("hash", timeout_ms=1), _step("publish")])
    runner, recorder = _runner(contract, {"record": _record, "hash": slow_cpu, "publish": _publish})
    uow, session = _uow()
    with pytest.raises(RunFailedError) as failed:
        await _run(runner, uow)
    assert failed.value.step == "hash"
    [(written_in, record)] = recorder.saved
    assert written_in is not uow  # recorded in a transaction of its own ...
    assert [s.commits for s in recorder.separate_sessions] == [1]
    assert (session.commits, session.rollbacks) == (0, 0)  # ... without touching the caller's
    assert record.state == "FAILED"
    assert [t.to_state for t in record.transitions] == ["PROCESSING", "FAILED"]
    assert record.steps[-1].name == "hash"
    assert "timeout" in (record.steps[-1].error or "")
    failure_events = recorder.events(written_in)
    assert failure_events[0] == "WORKFLOW_STARTED"
    assert failure_events[-1] == "WORKFLOW_FAILED"
    assert "DID" not in failure_events  # a failed run's step events are dropped


async def test_fsm_contract_without_completion_fails_the_run() -> None:
    runner, _ = _runner(_contract([_step("record")], processing=["FAILED"]), {"record": _record})
    with pytest.raises(RunFailedError, match="illegal transition PROCESSING -> COMPLETED"):
        await _run(runner, _uow()[0])


async def test_hanging_optional_step_is_skipped_within_its_timeout() -> None:
    async def hang(context: Ctx, run: Run) -> None:
        await asyncio.Event().wait()

    contract = _contract([_step("intelligence", timeout_ms=50, optional=True), _step("record")])
    runner, _ = _runner(contract, {"intelligence": hang, "record": _record})
    began = time.monotonic()
    result = await _run(runner, _uow()[0])
    assert time.monotonic() - began < 0.5  # the step timeout bounds it, not the hanging step
    assert (result.state, result.degraded) == ("COMPLETED", True)
    assert [(s.name, s.status) for s in result.steps] == [("intelligence", "skipped"), ("record", "completed")]
    assert "timeout" in (result.steps[0].error or "")


async def test_removing_the_optional_step_from_the_contract() -> None:
    async def hang(context: Ctx, run: Run) -> None:
        await asyncio.Event().wait()

    runner, _ = _runner(_contract([_step("record")]), {"intelligence": hang, "record": _record})
    result = await _run(runner, _uow()[0])
    assert result.degraded is False  # nothing optional was skipped
    assert [s.name for s in result.steps] == ["record"]


async def test_retries_follow_a_failure_while_time_is_left() -> None:
    async def flaky(context: Ctx, run: Run) -> None:
        context.seen.append("try")
        if len(context.seen) == 1:
            raise ConnectionError("first try fails")

    runner, _ = _runner(_contract([_step("flaky", retries=1)]), {"flaky": flaky})
    result = await _run(runner, _uow()[0])
    assert result.context.seen == ["try", "try"]
    assert result.steps[0].status == "completed"
    runner, _ = _runner(_contract([_step("flaky")]), {"flaky": flaky})
    with pytest.raises(RunFailedError, match="flaky"):
        await _run(runner, _uow()[0])


def test_contract_step_without_a_callable_is_refused() -> None:
    contract = _contract([_step("record"), _step("sign_with_hsm")])
    with pytest.raises(ValueError, match=r"no handler for contract steps \['sign_with_hsm'\]"):
        _runner(contract, {"record": _record})


async def _defer(context: Ctx, run: Run) -> dict[str, Any]:
    run.write_with_run(Lead("INSERT INTO t VALUES (:x) RETURNING 1", {"x": context.value}))
    run.emit("DID", {"deferred": True})
    return {}


async def test_a_deferred_write_and_every_event_go_with_the_run_record_in_one_save() -> None:
    runner, recorder = _runner(_contract([_step("defer"), _step("publish")]), {"defer": _defer, "publish": _publish})
    uow, session = _uow()
    result = await runner.run(uow, Ctx(), workflow_type="t", correlation_id="c", namespace="ns", commit=True)
    [(lead, commit)] = recorder.leads
    assert lead is not None
    assert lead.params == {"x": 0}
    assert commit
    assert session.commits == 1  # committed with the statement, not by the caller
    [(written_in, record)] = recorder.saved
    assert written_in is uow
    assert record.workflow_id == result.workflow_id
    events = recorder.events(uow)
    assert events[0] == "WORKFLOW_STARTED"
    assert events[-1] == "WORKFLOW_COMPLETED"
    assert "DID" in events


async def test_a_deferred_write_that_wrote_nothing_leaves_no_run_behind() -> None:
    runner, recorder = _runner(_contract([_step("defer"), _step("publish")]), {"defer": _defer, "publish": _publish})
    recorder.lead_writes = False
    uow, _session = _uow()
    with pytest.raises(LeadSkippedError):
        await runner.run(uow, Ctx(), workflow_type="t", correlation_id="c", namespace="ns", commit=True)
    assert recorder.saved == []
    assert recorder.published == []
    assert recorder.separate_sessions == []  # not a failure: nothing is recorded


async def test_a_deferred_write_that_failed_is_handed_back_unrecorded_for_the_caller_to_run_again() -> None:
    runner, recorder = _runner(_contract([_step("defer"), _step("publish")]), {"defer": _defer, "publish": _publish})
    recorder.lead_error = RuntimeError("forced")
    uow, _session = _uow()
    with pytest.raises(LeadSkippedError) as raised:
        await runner.run(uow, Ctx(), workflow_type="t", correlation_id="c", namespace="ns", commit=True)
    assert raised.value.cause is recorder.lead_error
    assert recorder.separate_sessions == []  # recorded when the run is made again, by the step that writes
