"""Request-reply over the codegen topics, and the session status record."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import EventPublisher, OnexEnvelopeV1, new_envelope
from omninode_bridge.modules.codegen import messages, schemas
from omninode_bridge.modules.codegen.models import SessionEvent

__all__ = ["KINDS", "STATUS_TOPIC", "PendingReplies", "RequestReply", "SessionService"]

STATUS_TOPIC = "omninode_codegen_status_session_v1"

#: kind -> (request topic, response topic, request event type, request schema)
KINDS: dict[str, tuple[str, str, str, type[msgspec.Struct]]] = {
    "analyze": ("omninode_codegen_request_analyze_v1", "omninode_codegen_response_analyze_v1",
                "CodegenAnalysisRequest", messages.CodegenAnalysisRequest),
    "validate": ("omninode_codegen_request_validate_v1", "omninode_codegen_response_validate_v1",
                 "CodegenValidationRequest", messages.CodegenValidationRequest),
    "pattern": ("omninode_codegen_request_pattern_v1", "omninode_codegen_response_pattern_v1",
                "CodegenPatternRequest", messages.CodegenPatternRequest),
    "mixin": ("omninode_codegen_request_mixin_v1", "omninode_codegen_response_mixin_v1",
              "CodegenMixinRequest", messages.CodegenMixinRequest),
}  # fmt: skip


class PendingReplies:
    """Requests of this process waiting for their response, by correlation id."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[OnexEnvelopeV1]] = {}

    def expect(self, correlation_id: str) -> asyncio.Future[OnexEnvelopeV1]:
        future: asyncio.Future[OnexEnvelopeV1] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    def resolve(self, envelope: OnexEnvelopeV1) -> bool:
        """Hand a response to its waiting request; False if no request here waits for it."""
        future = self._waiting.get(envelope.correlation_id)
        if future is None or future.done():
            return False
        future.set_result(envelope)
        return True


class RequestReply:
    """Publishes codegen requests and waits for their responses (one per app, built by the module's lifespan).

    Args:
        publisher: The outbox publisher.
        replies: The requests of this process waiting for a response (fed by the response listener).
        timeout_ms: How long a request waits (the catalog's ``request_reply.timeout_ms``).
    """

    def __init__(self, publisher: EventPublisher, replies: PendingReplies, timeout_ms: int) -> None:
        self.publisher = publisher
        self.replies = replies
        self.timeout_ms = timeout_ms

    async def call(
        self, uow: UnitOfWork, kind: str, request: msgspec.Struct, *, session_id: uuid.UUID | None
    ) -> OnexEnvelopeV1 | None:
        """Publish a request and wait for its correlated response; None on timeout."""
        request_topic, _, event_type, _ = KINDS[kind]
        envelope = new_envelope(event_type=event_type, payload=request, session_id=session_id)
        future = self.replies.expect(envelope.correlation_id)
        try:
            await self.publisher.publish(uow, request_topic, envelope)
            await uow.commit()
            try:
                return await asyncio.wait_for(future, self.timeout_ms / 1000)
            except TimeoutError:
                return None
        finally:
            self.replies.forget(envelope.correlation_id)


class SessionService:
    """Status events of codegen sessions."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def record(self, envelope: OnexEnvelopeV1) -> None:
        """Store a status event (validated against ``CodegenStatusEvent``; invalid ones raise)."""
        status = msgspec.convert(envelope.payload, messages.CodegenStatusEvent)
        await self.uow.session.execute(
            pg_insert(SessionEvent)
            .values(
                event_id=envelope.event_id, session_id=status.session_id, status=status.status,
                progress_percent=status.progress_percent, current_step=status.current_step,
                details=status.metadata, correlation_id=envelope.correlation_id, occurred_at=envelope.timestamp,
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
        )  # fmt: skip

    async def timeline(self, session_id: uuid.UUID) -> schemas.SessionTimeline | None:
        """Every status event of a session, oldest first; None if there is none."""
        rows = (
            await self.uow.session.scalars(
                select(SessionEvent)
                .where(SessionEvent.session_id == session_id)
                .order_by(SessionEvent.occurred_at, SessionEvent.id)
            )
        ).all()
        if not rows:
            return None
        events = [
            schemas.SessionStatusEntry(
                event_id=r.event_id, status=r.status, progress_percent=r.progress_percent,
                current_step=r.current_step, metadata=dict(r.details or {}), correlation_id=r.correlation_id,
                occurred_at=r.occurred_at,
            )
            for r in rows
        ]  # fmt: skip
        return schemas.SessionTimeline(session_id=session_id, latest_status=events[-1].status, events=events)  # type: ignore[arg-type]  # stored statuses were SessionStatus


def status_envelope(
    session_id: uuid.UUID, update: schemas.CodegenStatusUpdate, correlation_id: str | None
) -> OnexEnvelopeV1:
    """The envelope of a status update posted over HTTP, keyed by the request's correlation id."""
    payload: dict[str, Any] = msgspec.to_builtins(
        messages.CodegenStatusEvent(session_id=session_id, **msgspec.structs.asdict(update))
    )
    return new_envelope(
        event_type="CodegenStatusEvent", payload=payload, session_id=session_id, correlation_id=correlation_id
    )
