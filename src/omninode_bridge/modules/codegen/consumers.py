"""Codegen consumers: the session status recorder and the listener for request-reply responses."""

from __future__ import annotations

import structlog
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import InvalidEnvelopeError, OnexEnvelopeV1, TopicCatalog, decode_envelope, subscribe
from omninode_bridge.modules.codegen.services import KINDS, PendingReplies, SessionService

__all__ = ["build_router"]

log = structlog.get_logger(__name__)


async def record_status(envelope: OnexEnvelopeV1, uow: UnitOfWork) -> None:
    """Store each session status event so ``GET /codegen/sessions/{id}`` can show the timeline."""
    await SessionService(uow).record(envelope)


def build_router(catalog: TopicCatalog, replies: PendingReplies) -> KafkaRouter:
    """The codegen module's FastStream router, bound to the catalog; responses go to ``replies``."""
    router = KafkaRouter()
    subscribe(router, catalog, "codegen.status_recorder", record_status)
    response_topics = [response for _, response, _, _ in KINDS.values()]
    catalog.require(*response_topics)

    # No consumer group: every app process sees every response and keeps the ones it waits for.
    # Nothing is stored, so there is nothing to commit or deduplicate.
    @router.subscriber(
        *response_topics,
        auto_offset_reset="latest",
        title="codegen.responses",
        description="Correlates responses with the requests waiting in this process.",
    )
    async def on_response(msg: KafkaMessage) -> None:
        try:
            envelope = decode_envelope(msg.body)
        except InvalidEnvelopeError as exc:
            log.warning("ignoring invalid codegen response", error=str(exc))
            return
        replies.resolve(envelope)

    return router
