"""Ingest endpoints: ``POST /hooks``, ``POST /hooks/batch`` and signed webhooks at ``POST /hooks/{source}``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.deps import (
    actor_of,
    check_body_size,
    check_content_length,
    hooks_state,
)
from omninode_bridge.modules.hooks.services import HookIngestService, WebhookSourceService, body_hash
from omninode_bridge.modules.hooks.signatures import SignatureError, idempotency_header, verify_signature

__all__ = ["HookIngestController"]

_DUPLICATE = documented(schemas.HookAccepted, "A duplicate: the original event")
_INGEST_RESPONSES = error_responses({200: _DUPLICATE, 413: "Body over the per-hook limit"})
_BATCH_RESPONSES = error_responses({
    200: documented(schemas.HookBatchAccepted, "A duplicate: the original batch"),
    413: "Body over the size limit, or an event over the per-hook limit",
})  # fmt: skip
_WEBHOOK_RESPONSES = error_responses({
    200: _DUPLICATE, 401: "Missing, wrong or stale signature (audited)", 404: "No such (enabled) webhook source",
    413: "Body over the per-hook limit",
})  # fmt: skip


def _ingest(request: Request[Any, Any, Any], state: State, uow: UnitOfWork) -> HookIngestService:
    hooks = hooks_state(state)
    return HookIngestService(uow, state.runtime, hooks.redactor, hooks.live)


def _answer(accepted: schemas.HookAccepted | schemas.HookBatchAccepted) -> Response[Any]:
    return Response(accepted, status_code=200 if accepted.status == "duplicate" else 202)


class HookIngestController(Controller):
    """Hooks from services, agents and third parties (scope ``hooks``; webhooks authenticate by signature)."""

    path = "/hooks"
    tags = ["hooks"]
    security = platform.API_KEY_SECURITY

    @post("/", operation_id="postHook", summary="Accept a hook event", status_code=202,
          guards=[platform.require_scope("hooks")], before_request=check_content_length,
          responses=_INGEST_RESPONSES)  # fmt: skip
    async def post_hook(
        self, request: Request[Any, Any, Any], state: State, uow: NamedDependency[UnitOfWork],
        data: JSONBody[schemas.HookEventIn],
    ) -> Response[schemas.HookAccepted]:  # fmt: skip
        """Validate, redact secrets in `data`, store in `hook_events` and publish `HookEventReceived` through
        the outbox, in one transaction. 202 with the event id; 200 with the original event id when the same
        `Idempotency-Key` (or, without one, the same source and body) was accepted within the idempotency
        window."""
        body = await request.body()
        check_body_size(body, state.runtime.settings.hooks.max_body_bytes)
        service = _ingest(request, state, uow)
        hook = service.prepare(
            data, correlation_id=correlation_id_of(request) or str(uuid.uuid4()),
            key_id=platform.principal_of(request).key_id, now=dt.datetime.now(dt.UTC), measure=False,
            body_hash=body_hash(body),
        )  # fmt: skip
        key = request.headers.get("idempotency-key")
        return _answer(await service.accept(hook, idempotency_key=key[:300] if key else None))

    @post("/batch", operation_id="postHookBatch", summary="Accept up to 1,000 hook events in one transaction",
          status_code=202, guards=[platform.require_scope("hooks")], responses=_BATCH_RESPONSES)  # fmt: skip
    async def post_batch(
        self, request: Request[Any, Any, Any], state: State, uow: NamedDependency[UnitOfWork],
        data: JSONBody[schemas.HookBatch],
    ) -> Response[schemas.HookBatchAccepted]:  # fmt: skip
        """All events are stored and published in one transaction, or none. Each event's data is subject to
        the per-hook limit. A repeated `Idempotency-Key` (or, without one, the same body) returns the
        original batch with 200."""
        body = await request.body()
        limit = state.runtime.settings.hooks.max_body_bytes
        service = _ingest(request, state, uow)
        batch_id = uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        correlation_id = correlation_id_of(request) or str(uuid.uuid4())
        key_id = platform.principal_of(request).key_id
        # Only a body over the per-hook limit can hold an event over it (or over the event-size cap).
        measure = len(body) > min(limit, 256 * 1024)
        hooks = [
            service.prepare(
                event, correlation_id=correlation_id, key_id=key_id, now=now, measure=measure, batch_id=batch_id
            )
            for event in data.events
        ]
        key = request.headers.get("idempotency-key")
        idempotency_key = key[:300] if key else f"blake3:{body_hash(body)}"
        return _answer(
            await service.accept_batch(
                hooks, batch_id=batch_id, source=data.events[0].source, idempotency_key=idempotency_key
            )
        )

    @post("/{source:str}", operation_id="postWebhook", summary="Accept a third-party webhook", status_code=202,
          opt=platform.OPTIONAL_AUTH, before_request=check_content_length, responses=_WEBHOOK_RESPONSES,
          security=[])  # fmt: skip
    async def post_webhook(
        self, request: Request[Any, Any, Any], state: State, uow: NamedDependency[UnitOfWork], source: FromPath[str]
    ) -> Response[schemas.HookAccepted]:
        """The raw body is verified with the source's scheme (Standard Webhooks: `webhook-id`,
        `webhook-timestamp` within 5 minutes, `webhook-signature`; GitHub: `X-Hub-Signature-256`), then stored
        with its BLAKE3 hash and published. A bad or stale signature is a 401 and is audited. Sources with
        scheme `none` need an API key with scope `hooks` instead. Duplicates (same `webhook-id`,
        `X-GitHub-Delivery` or `Idempotency-Key`, or else the same body) return 200 with the original event."""
        runtime = state.runtime
        row = await WebhookSourceService(uow).get(source)
        if row is None or not row.enabled:
            raise ProblemError(404, f"No enabled webhook source named {source}.")
        body = await request.body()
        check_body_size(body, runtime.settings.hooks.max_body_bytes)
        headers = {k.lower(): v for k, v in request.headers.items()}
        principal = platform.principal_or_none(request)
        if row.scheme == "none":
            if principal is None:
                raise ProblemError(401, "This webhook source is unsigned: an API key with scope 'hooks' is required.",
                                   headers={"WWW-Authenticate": 'Bearer realm="omninode-bridge"'})  # fmt: skip
            if not principal.has_scope("hooks"):
                raise ProblemError(403, "This API key lacks the 'hooks' scope.")
        else:
            try:
                verify_signature(row.scheme, row.secrets, body, headers)
            except SignatureError as exc:
                await platform.record_audit(
                    runtime.database, "hooks.webhook.rejected", "denied",
                    **actor_of(request, principal.key_id if principal else None),
                    detail={"source": source, "scheme": row.scheme, "reason": str(exc)[:200]},
                )  # fmt: skip
                raise ProblemError(401, f"Webhook signature rejected: {exc}.", slug="invalid-signature") from None
        service = _ingest(request, state, uow)
        hook = service.prepare_webhook(
            row, body, headers, correlation_id=correlation_id_of(request) or str(uuid.uuid4()),
            key_id=principal.key_id if principal else None, now=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        return _answer(await service.accept(hook, idempotency_key=idempotency_header(row.scheme, headers)))
