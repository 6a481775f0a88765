"""Which runs changed, across processes: the wake-ups behind ``GET /workflows/{id}/events``.

A run changes in whichever process holds its task (claim, completion, failure, compensation), while its
viewer may be connected to another. Every transaction that changes a run stages a workflow event keyed by
the run id, so :class:`LivePublisher` (the engine's publisher) notes those run ids and, once the
transaction committed, hands them to this process's :class:`LiveHub`. The hub wakes local viewers at once
and tells the other processes with one Redis ``PUBLISH`` on :data:`CHANNEL` per flush (at most every
:data:`FLUSH_SECONDS`, however many runs changed: one message, not one per run or per task). Each process
subscribes once and wakes its own viewers of the runs named.

A wake-up carries no state: a viewer re-reads its run's rows (PostgreSQL is the record). When Redis is
down, or a message is lost, viewers still see every change through their poll of the rows (see
``live_stream``), only later.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import EnvelopeHead, EventPublisher, OnexEnvelopeV1
from omninode_bridge.core.module import raise_if_stopping
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.modules.workflow.messages import WORKFLOW_TOPIC

__all__ = ["CHANNEL", "FLUSH_SECONDS", "LiveHub", "LivePublisher"]

log = structlog.get_logger(__name__)

CHANNEL = "workflow:live"
#: Shortest time between two PUBLISHes of one process (changes in between go in the next one).
FLUSH_SECONDS = 0.02
#: Run ids per message (a flush with more is split).
_MESSAGE_RUNS = 500
_RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)

live_publish_failures = Counter(
    "omninode_workflow_live_publish_failures_total", "Run-change messages not sent to other processes (Redis down)."
)

live_viewers = Gauge("omninode_workflow_live_viewers", "Open live views of workflow runs (event streams).")


class LiveHub:
    """This process's side of the run-change channel.

    Args:
        redis: The app's Redis client.
        origin: This process's id in messages (its own messages are skipped: its viewers were woken already).
    """

    def __init__(self, redis: Redis, origin: str | None = None) -> None:
        self.redis = redis
        self.origin = origin or uuid.uuid4().hex[:12]
        self._viewers: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._pending: set[str] = set()
        self._flush = asyncio.Event()
        self.subscribed = False

    # Producers -------------------------------------------------------------------------------------------------
    def changed(self, run_ids: Iterable[str | uuid.UUID]) -> None:
        """Runs whose rows changed (called after the commit; never blocks)."""
        for run_id in run_ids:
            self._wake_local(run_id)
            self._pending.add(str(run_id))
        self._flush.set()

    async def publish_loop(self) -> None:
        """Send the changed run ids to the other processes until cancelled."""
        while True:
            await self._flush.wait()
            self._flush.clear()
            pending, self._pending = sorted(self._pending), set()
            for start in range(0, len(pending), _MESSAGE_RUNS):
                message = f"{self.origin}|{','.join(pending[start : start + _MESSAGE_RUNS])}"
                try:
                    await self.redis.publish(CHANNEL, message)
                except Exception:  # Redis down (or anything else): this loop must not die with changes queued
                    live_publish_failures.inc()  # other processes' viewers see it through their poll
            await asyncio.sleep(FLUSH_SECONDS)

    # Consumers -------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def watch(self, run_id: uuid.UUID) -> Any:
        """An event set whenever ``run_id`` may have changed (the caller clears it), while the block runs."""
        event = asyncio.Event()
        self._viewers.setdefault(run_id, set()).add(event)
        live_viewers.inc()
        try:
            yield event
        finally:
            live_viewers.dec()
            viewers = self._viewers.get(run_id)
            if viewers is not None:
                viewers.discard(event)
                if not viewers:
                    del self._viewers[run_id]

    @property
    def viewers(self) -> int:
        """Open watches in this process."""
        return sum(len(v) for v in self._viewers.values())

    async def subscribe_loop(self) -> None:
        """Receive the other processes' messages until cancelled; reconnect with backoff when Redis fails."""
        failures = 0
        while True:
            try:
                async with self._subscription() as pubsub:
                    self.subscribed = True
                    failures = 0
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        raise_if_stopping()
                        if message is not None:
                            self._receive(message.get("data"))
            except Exception as exc:  # Redis down, or a bad reply: reconnect rather than leave viewers polling
                self.subscribed = False
                delay = _RECONNECT_SECONDS[min(failures, len(_RECONNECT_SECONDS) - 1)]
                if failures == 0:
                    log.warning("workflow live: Redis channel unavailable; viewers poll", error=describe_error(exc))
                failures += 1
                await asyncio.sleep(delay)
            finally:
                self.subscribed = False

    @contextlib.asynccontextmanager
    async def _subscription(self) -> AsyncIterator[Any]:
        pubsub: Any = self.redis.pubsub()  # redis-py leaves PubSub's methods unannotated
        try:
            await pubsub.subscribe(CHANNEL)
            yield pubsub
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _receive(self, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data or "")
        origin, _, ids = text.partition("|")
        if origin == self.origin or not self._viewers:
            return
        for run_id in ids.split(","):
            self._wake_local(run_id)

    def _wake_local(self, run_id: str | uuid.UUID) -> None:
        if not self._viewers:
            return
        try:
            key = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(run_id)
        except ValueError:
            return
        for event in self._viewers.get(key, ()):
            event.set()


#: What the publisher stages: a whole envelope, or one with its payload encoded already.
_Envelope = OnexEnvelopeV1 | EnvelopeHead


class LivePublisher(EventPublisher):
    """The app's event publisher that also reports, after the commit, the runs whose workflow events it staged.

    The engine's transitions each stage an event keyed by the run id (task started, completed, failed,
    retrying, skipped; run ended; compensation), whatever statement writes them, so this sees every change
    without the engine knowing about live views.

    Args:
        publisher: The app's publisher (its catalog and database are shared).
        hub: Told which runs changed.
    """

    def __init__(self, publisher: EventPublisher, hub: LiveHub) -> None:
        super().__init__(publisher.catalog, publisher.database)
        self.hub = hub

    def _note(self, uow: UnitOfWork, topic: str, envelopes: Sequence[_Envelope]) -> None:
        if topic == WORKFLOW_TOPIC and envelopes:
            runs = frozenset(e.correlation_id for e in envelopes)
            uow.after_commit(lambda: self.hub.changed(runs))

    def staged_arrays(self, uow: UnitOfWork, topic: str, envelopes: Sequence[_Envelope]) -> dict[str, Any]:
        """As :meth:`EventPublisher.staged_arrays` (``publish_many`` goes through it), noting the runs."""
        self._note(uow, topic, envelopes)
        return super().staged_arrays(uow, topic, envelopes)

    async def stage_many(self, uow: UnitOfWork, topic: str, envelopes: Sequence[_Envelope]) -> None:
        """As :meth:`EventPublisher.stage_many`, noting the runs."""
        self._note(uow, topic, envelopes)
        await super().stage_many(uow, topic, envelopes)

    def staged_params(self, uow: UnitOfWork, topic: str, envelope: OnexEnvelopeV1) -> dict[str, Any]:
        """As :meth:`EventPublisher.staged_params`, noting the run."""
        self._note(uow, topic, [envelope])
        return super().staged_params(uow, topic, envelope)
