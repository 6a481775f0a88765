"""Ingest endpoints: ``POST /hooks``, ``POST /hooks/claude-code``, ``POST /hooks/batch`` and signed webhooks
at ``POST /hooks/{source}``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.events import event_ids
from omninode_bridge.core.inputs import Namespace, param
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.controllers._openapi import BATCH_BODY_OPERATION, HOOK_BODY_OPERATION
from omninode_bridge.modules.hooks.controllers._requests import (
    check_body_size,
    check_content_length,
    namespace_for,
    read_hook_body,
    read_json_hook,
)
from omninode_bridge.modules.hooks.services import (
    CLAUDE_CODE_SOURCE,
    WebhookSourceService,
    body_hash,
    claude_code_hook,
    decode_batch,
    decode_hook,
    parse_claude_code,
)
from omninode_bridge.modules.hooks.signatures import SignatureError, idempotency_header, verify_signature
from omninode_bridge.modules.hooks.state import HooksState

__all__ = ["HookIngestController"]

_DUPLICATE = documented(schemas.HookAccepted, "A repeated Idempotency-Key: the original event")
_NOT_JSON = "The body is not sent as application/json"
_INGEST_RESPONSES = error_responses({200: _DUPLICATE, 413: "Body over the per-hook limit", 415: _NOT_JSON})
_HOOK_RESPONSES = _INGEST_RESPONSES
_BATCH_RESPONSES = error_responses({
    200: documented(schemas.HookBatchAccepted, "A repeated Idempotency-Key: the original batch"),
    413: "Body over the size limit, or an event over the per-hook limit",
    415: _NOT_JSON,
})  # fmt: skip
# Where a Claude Code hook's source and namespace may be overridden (the payload has no field for them).
_SourceOverride = Annotated[
    schemas.SourceName | None,
    param(schemas.SourceName, description="The hook's source (default: claude-code); or X-Hook-Source."),
]
_SourceHeader = Annotated[
    schemas.SourceName | None,
    param(
        schemas.SourceName,
        header=True,
        name="X-Hook-Source",
        description="The hook's source (default: claude-code).",
    ),
]
_NamespaceOverride = Annotated[
    Namespace | None,
    param(Namespace, description="Default: the key's namespace when it has exactly one, else 'default'."),
]
_NamespaceHeader = Annotated[
    Namespace | None, param(Namespace, header=True, name="X-Hook-Namespace", description="As ?namespace=.")
]
_PARSED = "hooks_parsed"


async def _read_hook(request: Request[Any, Any, Any]) -> None:
    """``before_request`` of POST /hooks: a Claude Code payload (it has ``hook_event_name``) or our format."""
    request.state[_PARSED] = decode_hook(await read_hook_body(request))


async def _read_claude_code(request: Request[Any, Any, Any]) -> None:
    request.state[_PARSED] = parse_claude_code(await read_json_hook(request))


async def _read_batch(request: Request[Any, Any, Any]) -> None:
    """``before_request`` of POST /hooks/batch: the body decoded once, straight to the batch struct."""
    request.state[_PARSED] = decode_batch(await read_hook_body(request))


_WEBHOOK_RESPONSES = error_responses({
    200: documented(schemas.HookAccepted, "A duplicate: the original event"),
    401: "Missing, wrong or stale signature (audited)", 404: "No such (enabled) webhook source",
    413: "Body over the per-hook limit",
})  # fmt: skip


def _answer(accepted: schemas.HookAccepted | schemas.HookBatchAccepted) -> Response[Any]:
    return Response(accepted, status_code=200 if accepted.status == "duplicate" else 202)


async def _unit_of_work(hooks: NamedDependency[HooksState]) -> AsyncGenerator[UnitOfWork, None]:
    """The request's unit of work, on the module's database, resolved after ``hooks``.

    Litestar resolves a handler's independent dependencies (here ``hooks`` and the app's ``uow``) in an
    anyio task group per request, ~5% of ``POST /hooks``'s CPU (py-spy); a chain resolves in sequence.
    """
    async with hooks.database.unit_of_work() as uow:
        yield uow


class HookIngestController(Controller):
    """Hooks from services, agents and third parties (scope ``hooks``; webhooks authenticate by signature)."""

    path = "/hooks"
    dependencies = {"uow": Provide(_unit_of_work)}
    tags = ["hooks"]
    security = platform.API_KEY_SECURITY

    @post("/", operation_id="postHook", summary="Accept a hook event (ours, or Claude Code's as sent)",
          status_code=202, opt=platform.require_scope("hooks"), before_request=_read_hook,
          responses=_HOOK_RESPONSES, operation_class=HOOK_BODY_OPERATION)  # fmt: skip
    async def post_hook(
        self, request: Request[Any, Any, Any], hooks: NamedDependency[HooksState], uow: NamedDependency[UnitOfWork],
    ) -> Response[schemas.HookAccepted]:  # fmt: skip
        """Validate, redact secrets in `data`, store in `hook_events` and publish `HookEventReceived` through
        the outbox, in one transaction. 202 with the event id. A body with `hook_event_name` is a Claude Code
        hook and is handled as by `POST /hooks/claude-code`. Only a repeated `Idempotency-Key` within the
        idempotency window is a duplicate (200 with the original event id): identical bodies are separate
        events (an agent's `Stop` repeats byte for byte every turn)."""
        parsed = request.state[_PARSED]
        if isinstance(parsed, tuple):
            return await self._claude_code(request, hooks, uow, parsed, None, None)
        service = hooks.ingest(uow)
        body = await request.body()
        hook = service.prepare(
            parsed, correlation_id=correlation_id_of(request) or str(uuid.uuid4()),
            key_id=platform.principal_of(request).key_id, now=dt.datetime.now(dt.UTC), measure=False,
            body_hash=body_hash(body), namespace=await namespace_for(request, parsed.namespace),
        )  # fmt: skip
        key = request.headers.get("idempotency-key")
        return _answer(await service.accept(hook, idempotency_key=key[:300] if key else None))

    @post("/claude-code", operation_id="postClaudeCodeHook", summary="Accept a Claude Code hook event as sent",
          status_code=202, opt=platform.require_scope("hooks"), before_request=_read_claude_code,
          responses=_HOOK_RESPONSES)  # fmt: skip
    async def post_claude_code(
        self, request: Request[Any, Any, Any], hooks: NamedDependency[HooksState], uow: NamedDependency[UnitOfWork],
        data: JSONBody[schemas.ClaudeCodeHookIn], source: _SourceOverride = None, x_hook_source: _SourceHeader = None,
        namespace: _NamespaceOverride = None, x_hook_namespace: _NamespaceHeader = None,
    ) -> Response[schemas.HookAccepted]:  # fmt: skip
        """The JSON a Claude Code command hook receives on stdin, posted unchanged (any event, any field; the
        whole payload is kept, redacted, in `data`). `hook_event_name` becomes the event type: PreToolUse ->
        `pre_tool_use`, PostToolUse and PostToolUseFailure -> `post_tool_use` (a failure has outcome `error`),
        paired by `tool_use_id`; SessionStart/SessionEnd -> `session_start`/`session_end` (open and close the
        session); Stop -> `stop`, SubagentStop -> `subagent_stop` (end of a turn); UserPromptSubmit,
        Notification, PreCompact -> `user_prompt_submit`, `notification`, `pre_compact`; others their
        snake_case name. The session id is the correlation id; the time of receipt is the event time. Answers
        202 at once; only a repeated `Idempotency-Key` is a duplicate."""
        return await self._claude_code(
            request, hooks, uow, request.state[_PARSED], source or x_hook_source, namespace or x_hook_namespace
        )

    async def _claude_code(
        self, request: Request[Any, Any, Any], hooks: NamedDependency[HooksState], uow: UnitOfWork,
        parsed: tuple[dict[str, Any], schemas.ClaudeCodeHookIn], source: str | None, namespace: str | None,
    ) -> Response[schemas.HookAccepted]:  # fmt: skip
        payload, event = parsed
        now = dt.datetime.now(dt.UTC)
        hook = claude_code_hook(
            payload, event, redactor=hooks.redactor, source=source or CLAUDE_CODE_SOURCE,
            namespace=await namespace_for(request, namespace), key_id=platform.principal_of(request).key_id,
            now=now, body_length=len(await request.body()),
        )  # fmt: skip
        key = request.headers.get("idempotency-key")
        return _answer(await hooks.ingest(uow).accept(hook, idempotency_key=key[:300] if key else None))

    @post("/batch", operation_id="postHookBatch", summary="Accept up to 1,000 hook events in one transaction",
          status_code=202, opt=platform.require_scope("hooks"), before_request=_read_batch,
          responses=_BATCH_RESPONSES, operation_class=BATCH_BODY_OPERATION)  # fmt: skip
    async def post_batch(
        self, request: Request[Any, Any, Any], hooks: NamedDependency[HooksState], uow: NamedDependency[UnitOfWork],
    ) -> Response[schemas.HookBatchAccepted]:  # fmt: skip
        """All events are stored and published in one transaction, or none. Each event's data is subject to
        the per-hook limit; a key restricted to namespaces may write only to those (403 otherwise). Only a
        repeated `Idempotency-Key` returns the original batch (200)."""
        batch: schemas.HookBatch = request.state[_PARSED]
        body = await request.body()
        limit = hooks.settings.max_body_bytes
        service = hooks.ingest(uow)
        batch_id = uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        correlation_id = correlation_id_of(request) or str(uuid.uuid4())
        key_id = platform.principal_of(request).key_id
        # Only a body over the per-hook limit can hold an event over it (or over the event-size cap).
        measure = len(body) > min(limit, 256 * 1024)
        namespaces = {name: await namespace_for(request, name) for name in {e.namespace for e in batch.events}}
        prepared = [
            service.prepare(
                event, correlation_id=correlation_id, key_id=key_id, now=now, measure=measure, batch_id=batch_id,
                namespace=namespaces[event.namespace], event_id=event_id,
            )
            # Time-ordered ids (UUIDv7, one clock read for the batch): their index entries append, not scatter.
            for event, event_id in zip(batch.events, event_ids(len(batch.events)), strict=True)
        ]  # fmt: skip
        key = request.headers.get("idempotency-key")
        idempotency_key = key[:300] if key else None
        return _answer(
            await service.accept_batch(
                prepared, batch_id=batch_id, source=batch.events[0].source, idempotency_key=idempotency_key
            )
        )

    @post("/{source:str}", operation_id="postWebhook", summary="Accept a third-party webhook", status_code=202,
          opt=platform.OPTIONAL_AUTH, before_request=check_content_length, responses=_WEBHOOK_RESPONSES,
          security=[])  # fmt: skip
    async def post_webhook(
        self,
        request: Request[Any, Any, Any],
        hooks: NamedDependency[HooksState],
        uow: NamedDependency[UnitOfWork],
        source: FromPath[str],
    ) -> Response[schemas.HookAccepted]:
        """The raw body is verified with the source's scheme (Standard Webhooks: `webhook-id`,
        `webhook-timestamp` within 5 minutes, `webhook-signature`; GitHub: `X-Hub-Signature-256`), then stored
        with its BLAKE3 hash and published. JSON bodies and form-encoded ones (GitHub's `payload=<json>`)
        become `data`; secrets are redacted by key name and by value shape, and a raw body that needed any
        redaction is not stored. A bad or stale signature is a 401 and is audited. Sources with scheme `none`
        need an API key with scope `hooks` instead. Duplicates return 200 with the original event: a delivery id
        is trusted only when the signature covers it or the source is unsigned (Standard Webhooks: the signed
        `webhook-id`; scheme `none`: `X-GitHub-Delivery` or `Idempotency-Key`); otherwise, and always for
        GitHub sources (whose signature does not cover `X-GitHub-Delivery`), the same body to the same source
        within the idempotency window is the duplicate."""
        row = await WebhookSourceService(uow).get(source)
        if row is None or not row.enabled:
            raise ProblemError(404, f"No enabled webhook source named {source}.")
        body = await request.body()
        check_body_size(body, hooks.settings.max_body_bytes)
        headers = {k.lower(): v for k, v in request.headers.items()}
        principal = platform.principal_or_none(request)
        if row.scheme == "none":
            if principal is None:
                raise ProblemError(401, "This webhook source is unsigned: an API key with scope 'hooks' is required.",
                                   headers={"WWW-Authenticate": 'Bearer realm="omninode-bridge"'})  # fmt: skip
            if not principal.has_scope("hooks"):
                raise ProblemError(403, "This API key lacks the 'hooks' scope.")
            await platform.require_namespace(request, row.namespace)
        else:
            try:
                verify_signature(row.scheme, row.secrets, body, headers)
            except SignatureError as exc:
                await platform.record_audit(
                    hooks.database, "hooks.webhook.rejected", "denied",
                    **platform.Actor.from_request(request).audit_fields(),
                    detail={"source": source, "scheme": row.scheme, "reason": str(exc)[:200]},
                )  # fmt: skip
                raise ProblemError(401, f"Webhook signature rejected: {exc}.", slug="invalid-signature") from None
        service = hooks.ingest(uow)
        hook = service.prepare_webhook(
            row, body, headers, correlation_id=correlation_id_of(request) or str(uuid.uuid4()),
            key_id=principal.key_id if principal else None, now=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        hook.namespace = row.namespace  # the source's configuration decides where its hooks go
        # No trusted delivery id: the body hash per source identifies a duplicate.
        delivery = idempotency_header(row.scheme, headers) or f"blake3:{hook.body_hash}"
        return _answer(await service.accept(hook, idempotency_key=delivery))
