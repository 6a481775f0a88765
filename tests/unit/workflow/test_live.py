"""The live view's plumbing without servers: which runs a commit changed, who is woken, what a viewer is sent."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from redis.asyncio import Redis

from omninode_bridge.core.events import EventPublisher, load_catalog, new_envelope
from omninode_bridge.modules.workflow import WORKFLOW_TOPIC
from omninode_bridge.modules.workflow.services import LiveHub, LivePublisher
from omninode_bridge.modules.workflow.services.live_stream import diff_tasks
from tests.support import CLOSED_PORT

OTHER_TOPIC = "omninode_bridge_hook_events_v1"


class _FakeDatabase:
    """What the publisher asks of a database: its named signals."""

    def __init__(self) -> None:
        self.signals: dict[str, asyncio.Event] = {}

    def signal(self, name: str) -> asyncio.Event:
        return self.signals.setdefault(name, asyncio.Event())


class _FakeUnitOfWork:
    """Collects after-commit callbacks, as the real unit of work does."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def commit(self) -> None:
        for callback in self.callbacks:
            callback()


def _hub() -> LiveHub:
    # Never connected here: only the in-process side of the hub is exercised.
    return LiveHub(Redis.from_url(f"redis://127.0.0.1:{CLOSED_PORT}/0"), origin="me")


def test_a_change_wakes_the_viewers_of_that_run_only_and_queues_it_for_the_other_processes() -> None:
    hub = _hub()
    watched, other = uuid.uuid4(), uuid.uuid4()
    with hub.watch(watched) as wake, hub.watch(other) as elsewhere:
        assert hub.viewers == 2
        hub.changed([str(watched)])
        assert wake.is_set()
        assert not elsewhere.is_set()
        assert hub._pending == {str(watched)}
    assert hub.viewers == 0
    assert hub._viewers == {}


def test_messages_from_other_processes_wake_viewers_and_this_process_own_are_skipped() -> None:
    hub = _hub()
    run = uuid.uuid4()
    with hub.watch(run) as wake:
        hub._receive(f"me|{run}".encode())
        assert not wake.is_set()
        hub._receive(f"them|not-a-uuid,{uuid.uuid4()}".encode())
        assert not wake.is_set()
        hub._receive(f"them|{uuid.uuid4()},{run}".encode())
        assert wake.is_set()


def test_the_publisher_reports_the_runs_of_workflow_events_once_committed() -> None:
    hub = _hub()
    publisher = LivePublisher(EventPublisher(load_catalog(), _FakeDatabase()), hub)
    run = uuid.uuid4()
    uow = _FakeUnitOfWork()
    with hub.watch(run) as wake:
        envelopes = [new_envelope(event_type="TaskCompleted", payload={}, correlation_id=str(run)) for _ in (1, 2)]
        params = publisher.staged_arrays(uow, WORKFLOW_TOPIC, envelopes)
        assert params["outbox_keys"] == [str(run), str(run)]
        assert not wake.is_set(), "nothing is announced before the commit"
        publisher.staged_params(uow, OTHER_TOPIC, new_envelope(event_type="X", payload={}, correlation_id="c"))
        uow.commit()
        assert wake.is_set()
    assert hub._pending == {str(run)}


def _row(task_id: str, status: str, attempt: int = 1, phase: str = "forward") -> Any:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return SimpleNamespace(task_id=task_id, phase=phase, status=status, attempt=attempt, ready_at=at,
                           started_at=at, finished_at=None, error=None)  # fmt: skip


def test_only_tasks_whose_visible_state_changed_are_sent() -> None:
    known: dict[tuple[str, str], Any] = {}
    first = [_row("a", "running"), _row("b", "waiting", 0)]
    assert [r.task_id for r in diff_tasks(known, first)] == ["a", "b"]
    assert diff_tasks(known, first) == []
    again = [_row("a", "running", 2), _row("b", "waiting", 0), _row("a", "ready", 0, phase="compensate")]
    assert [(r.task_id, r.phase) for r in diff_tasks(known, again)] == [("a", "forward"), ("a", "compensate")]
