"""Codegen endpoints: request-reply over Kafka and session status."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.modules.codegen import messages, schemas
from omninode_bridge.modules.codegen.services import (
    STATUS_TOPIC,
    RequestReply,
    SessionService,
    status_envelope,
)
from omninode_bridge.platform import API_KEY_SECURITY, require_scope

__all__ = ["CodegenController"]

_REPLY_RESPONSES = error_responses(
    {504: "No response arrived within the catalog's request_reply.timeout_ms"}, body=True
)
_SESSION_RESPONSES = error_responses({404: "No status events for this session yet"})


async def _call(
    codegen: RequestReply, uow: UnitOfWork, kind: str, data: msgspec.Struct, session_id: uuid.UUID | None
) -> schemas.CodegenReply:
    reply = await codegen.call(uow, kind, data, session_id=session_id)
    if reply is None:
        timeout = codegen.timeout_ms
        raise ProblemError(504, f"No {kind} response arrived within {timeout} ms.", slug="codegen-timeout")
    return schemas.CodegenReply(
        correlation_id=reply.correlation_id,
        event_type=reply.event_type,
        source=reply.source,
        payload=reply.payload,
    )


class CodegenController(Controller):
    """Requests to the code generation services, answered over Kafka (scope ``codegen``)."""

    path = "/codegen"
    tags = ["codegen"]
    opt = require_scope("codegen")
    security = API_KEY_SECURITY

    @post("/analyze", operation_id="codegenAnalyze", summary="PRD analysis (request-reply)", status_code=200,
          responses=_REPLY_RESPONSES)  # fmt: skip
    async def analyze(
        self, codegen: NamedDependency[RequestReply], uow: NamedDependency[UnitOfWork],
        data: JSONBody[messages.CodegenAnalysisRequest],
        session_id: FromQuery[uuid.UUID | None] = None,
    ) -> schemas.CodegenReply:  # fmt: skip
        """Publish on the analyze request topic and wait for the correlated response (504 on timeout)."""
        return await _call(codegen, uow, "analyze", data, session_id)

    @post("/validate", operation_id="codegenValidate", summary="Code validation (request-reply)", status_code=200,
          responses=_REPLY_RESPONSES)  # fmt: skip
    async def validate(
        self, codegen: NamedDependency[RequestReply], uow: NamedDependency[UnitOfWork],
        data: JSONBody[messages.CodegenValidationRequest],
        session_id: FromQuery[uuid.UUID | None] = None,
    ) -> schemas.CodegenReply:  # fmt: skip
        """Publish on the validate request topic and wait for the correlated response (504 on timeout)."""
        return await _call(codegen, uow, "validate", data, session_id)

    @post("/pattern", operation_id="codegenPattern", summary="Pattern matching (request-reply)", status_code=200,
          responses=_REPLY_RESPONSES)  # fmt: skip
    async def pattern(
        self, codegen: NamedDependency[RequestReply], uow: NamedDependency[UnitOfWork],
        data: JSONBody[messages.CodegenPatternRequest],
        session_id: FromQuery[uuid.UUID | None] = None,
    ) -> schemas.CodegenReply:  # fmt: skip
        """Publish on the pattern request topic and wait for the correlated response (504 on timeout)."""
        return await _call(codegen, uow, "pattern", data, session_id)

    @post("/mixin", operation_id="codegenMixin", summary="Mixin recommendation (request-reply)", status_code=200,
          responses=_REPLY_RESPONSES)  # fmt: skip
    async def mixin(
        self, codegen: NamedDependency[RequestReply], uow: NamedDependency[UnitOfWork],
        data: JSONBody[messages.CodegenMixinRequest],
        session_id: FromQuery[uuid.UUID | None] = None,
    ) -> schemas.CodegenReply:  # fmt: skip
        """Publish on the mixin request topic and wait for the correlated response (504 on timeout)."""
        return await _call(codegen, uow, "mixin", data, session_id)

    @post("/sessions/{session_id:uuid}/status", operation_id="postCodegenStatus",
          summary="Publish a session status event", status_code=202,
          responses=error_responses({404: "Not a session id (a UUID)"}, body=True))  # fmt: skip
    async def post_status(
        self, request: Request[Any, Any, Any], codegen: NamedDependency[RequestReply], uow: NamedDependency[UnitOfWork],
        session_id: FromPath[uuid.UUID], data: JSONBody[schemas.CodegenStatusUpdate],
    ) -> schemas.CodegenStatusAccepted:  # fmt: skip
        """Accept a status update; it is published on the status topic and recorded by the consumer."""
        envelope = status_envelope(session_id, data, correlation_id_of(request))
        await codegen.publisher.publish(uow, STATUS_TOPIC, envelope)
        await uow.commit()
        return schemas.CodegenStatusAccepted(event_id=envelope.event_id, correlation_id=envelope.correlation_id)

    @get("/sessions/{session_id:uuid}", operation_id="getCodegenSession", summary="Status timeline of a session",
         responses=_SESSION_RESPONSES)  # fmt: skip
    async def session(
        self, uow: NamedDependency[UnitOfWork], session_id: FromPath[uuid.UUID]
    ) -> schemas.SessionTimeline:
        """Every status event recorded for the session, oldest first (404 if none yet)."""
        timeline = await SessionService(uow).timeline(session_id)
        if timeline is None:
            raise NotFoundException(f"No status events for session {session_id}.")
        return timeline
