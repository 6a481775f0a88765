"""Accepting hooks: validation, redaction, idempotency, storage and publication in one transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from typing import cast as typing_cast

import blake3
from sqlalchemy import Table, Text, bindparam, cast, func, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, staged_after
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.messages import (
    HOOK_TOPIC,
    MAX_EVENT_DATA_BYTES,
    AcceptedHook,
    encoded_envelope_of,
)
from omninode_bridge.modules.hooks.models import HOOK_EVENTS_TABLE, HookEvent, IdempotencyClaim, WebhookSource
from omninode_bridge.modules.hooks.redaction import Redactor
from omninode_bridge.modules.hooks.services._live import LiveFeed
from omninode_bridge.modules.hooks.services._webhook_body import body_text, parse_webhook_body
from omninode_bridge.modules.hooks.settings import HooksSettings

__all__ = ["HookIngestService", "body_hash", "event_type_of", "json_path"]

_EVENT_COLUMNS = [
    "event_id", "kind", "source", "event_type", "session_id", "correlation_id", "tool_name", "tool_call_id",
    "occurred_at", "received_at", "data", "body_hash", "raw_body", "content_type", "redacted", "batch_id", "key_id",
    "namespace",
]  # fmt: skip


def _event_record(hook: AcceptedHook) -> tuple[Any, ...]:
    """A ``hook_events`` row in ``_EVENT_COLUMNS`` order, for COPY (jsonb as JSON text)."""
    return (
        hook.event_id, hook.kind, hook.source, hook.event_type, hook.session_id, hook.correlation_id, hook.tool_name,
        hook.tool_call_id, hook.occurred_at, hook.received_at, hook.encoded_data().decode(), hook.body_hash,
        hook.raw_body, hook.content_type, hook.redacted, hook.batch_id, hook.key_id, hook.namespace,
    )  # fmt: skip


_claims = typing_cast("Table", IdempotencyClaim.__table__)
_claim_values = pg_insert(_claims).values(
    scope=bindparam("scope", type_=_claims.c.scope.type),
    key=bindparam("key", type_=_claims.c.key.type),
    event_id=bindparam("event_id", type_=_claims.c.event_id.type),
    expires_at=bindparam("expires_at", type_=_claims.c.expires_at.type),
)
# The claim takes the key unless a live claim holds it (an expired one is taken over).
_claim = (
    _claim_values.on_conflict_do_update(
        index_elements=[_claims.c.scope, _claims.c.key],
        set_={"event_id": _claim_values.excluded.event_id, "expires_at": _claim_values.excluded.expires_at},
        where=_claims.c.expires_at < bindparam("now", type_=_claims.c.expires_at.type),
    )
    .returning(_claims.c.event_id)
    .cte("claim")
)
_stored = (
    insert(HOOK_EVENTS_TABLE)
    .from_select(
        _EVENT_COLUMNS,
        select(
            _claim.c.event_id,
            *[
                # data arrives as JSON text (msgspec), the same encoding as the batch's COPY.
                cast(bindparam(name, type_=Text()), JSONB) if name == "data"
                else bindparam(name, type_=HOOK_EVENTS_TABLE.c[name].type)
                for name in _EVENT_COLUMNS[1:]
            ],
        ).select_from(_claim),
        include_defaults=False,
    )
    .returning(HOOK_EVENTS_TABLE.c.event_id)
    .cte("stored")
)  # fmt: skip
_staged = staged_after(_stored)
# Claim, event row and outbox row in one round trip: the event row exists only if the claim succeeded and the
# outbox row only if the event row does. The SELECT reports whether the rows were written and, for a
# duplicate, which event holds the key (visible when it committed before this statement began).
_ACCEPT_ONE = select(
    select(func.count()).select_from(_staged).scalar_subquery().label("staged"),
    select(_claims.c.event_id)
    .where(_claims.c.scope == bindparam("scope"), _claims.c.key == bindparam("key"))
    .scalar_subquery()
    .label("holder"),
)
# Without a key: the event row and its outbox row, also one statement.
_staged_plain = staged_after(
    insert(HOOK_EVENTS_TABLE)
    .values(
        {
            name: cast(bindparam(name, type_=Text()), JSONB) if name == "data"
            else bindparam(name, type_=HOOK_EVENTS_TABLE.c[name].type)
            for name in _EVENT_COLUMNS
        }
    )
    .returning(HOOK_EVENTS_TABLE.c.event_id)
    .cte("stored")
)  # fmt: skip
_STORE_ONE = select(select(func.count()).select_from(_staged_plain).scalar_subquery())


def json_path(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``data.object.type``; list indexes as numbers), or None."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def event_type_of(source: WebhookSource, headers: Mapping[str, str], document: Any) -> str:
    """The event type of a webhook: from the source's header, else its JSON path, else its default."""
    candidate: Any = None
    if source.event_type_header:
        candidate = headers.get(source.event_type_header.lower())
    if not candidate and source.event_type_path:
        candidate = json_path(document, source.event_type_path)
    if isinstance(candidate, str) and 0 < len(candidate) <= 128:
        return candidate
    return source.default_event_type


class HookIngestService:
    """Stores accepted hooks, stages their events in the outbox and commits, in the caller's unit of work.

    Args:
        uow: The request's unit of work.
        publisher: Stages the hooks' events in the outbox.
        settings: The hooks settings (body limit, idempotency window).
        redactor: The configured redactor.
        live: Where committed hooks go for live viewers.
    """

    def __init__(
        self, uow: UnitOfWork, publisher: EventPublisher, settings: HooksSettings, redactor: Redactor, live: LiveFeed
    ) -> None:
        self.uow = uow
        self.publisher = publisher
        self.settings = settings
        self.redactor = redactor
        self.live = live
        self.window = settings.idempotency_window_seconds

    def prepare(
        self,
        hook: schemas.HookEventIn,
        *,
        correlation_id: str,
        key_id: uuid.UUID | None,
        now: dt.datetime,
        measure: bool,
        namespace: str = schemas.DEFAULT_NAMESPACE,
        body_hash: str | None = None,
        batch_id: uuid.UUID | None = None,
        event_id: uuid.UUID | None = None,
    ) -> AcceptedHook:
        """Redact a validated hook and give it its event id.

        Args:
            hook: The validated hook.
            correlation_id: Used when the hook names none.
            key_id: The API key that posted it.
            now: Time of receipt (the default ``timestamp``).
            measure: Whether the data may exceed the per-hook limit and must be measured.
            namespace: The namespace the hook goes to (already checked against the key).
            body_hash: BLAKE3 of the request body (single hooks).
            batch_id: The batch it came in.
            event_id: Its event id (a new random one when not given).
        """
        data, redacted = self.redactor.redact(hook.data)
        accepted = AcceptedHook(
            event_id=event_id or uuid.uuid4(), kind="hook", source=hook.source, event_type=hook.event_type,
            correlation_id=hook.correlation_id or correlation_id, occurred_at=hook.timestamp or now, data=data,
            redacted=redacted, session_id=hook.session_id, tool_name=hook.tool_name, tool_call_id=hook.tool_call_id,
            body_hash=body_hash, batch_id=batch_id, key_id=key_id, received_at=now, namespace=namespace,
        )  # fmt: skip
        if measure:
            # The encoding the row, the event and the live entry share: measuring it costs nothing extra.
            size = len(accepted.encoded_data())
            if size > self.settings.max_body_bytes:
                raise ProblemError(413, f"A hook's data is {size} bytes; the limit is {self.settings.max_body_bytes}.")
            accepted.data_truncated = size > MAX_EVENT_DATA_BYTES
        return accepted

    def prepare_webhook(
        self,
        source: WebhookSource,
        body: bytes,
        headers: Mapping[str, str],
        *,
        correlation_id: str,
        key_id: uuid.UUID | None,
        now: dt.datetime,
    ) -> AcceptedHook:
        """Turn a verified webhook body into a hook: JSON bodies (and GitHub's form-encoded ``payload=<json>``)
        become (redacted) data; the raw body is kept with its BLAKE3 hash unless something in it had to be
        redacted. A body we cannot parse is scanned as text: with a secret in it, its redacted text becomes
        ``data.body`` and the raw body is not kept.

        Args:
            source: The webhook source.
            body: The raw, verified body.
            headers: The request headers (lower-case names).
            correlation_id: The request's correlation id.
            key_id: The API key, when one was presented.
            now: Time of receipt.
        """
        content_type = headers.get("content-type")
        document, redacted = self.redactor.redact(parse_webhook_body(body, content_type))
        if document is None:
            text = body_text(body)
            scanned, redacted = self.redactor.redact(text) if text else (text, False)
            document = scanned if redacted else None
        data: dict[str, Any] = document if isinstance(document, dict) else ({"body": document} if document else {})
        occurred = now
        stamp = headers.get("webhook-timestamp", "")
        if source.scheme == "standard_webhooks" and stamp.isdigit():
            occurred = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
        return AcceptedHook(
            event_id=uuid.uuid4(), kind="webhook", source=source.name,
            event_type=event_type_of(source, headers, document), correlation_id=correlation_id, occurred_at=occurred,
            data=data, redacted=redacted, body_hash=body_hash(body), raw_body=None if redacted else body,
            content_type=content_type[:255] if content_type else None, key_id=key_id,
            data_truncated=len(body) > MAX_EVENT_DATA_BYTES, received_at=now,
        )  # fmt: skip

    async def accept(self, hook: AcceptedHook, *, idempotency_key: str | None) -> schemas.HookAccepted:
        """Store and publish one hook and commit; a duplicate returns the original event instead.

        With a key, the idempotency claim, the ``hook_events`` row and the outbox row are written by one
        statement (one round trip): the event row and the outbox row exist only if the claim succeeded.

        Args:
            hook: The prepared hook.
            idempotency_key: The sender's key (``webhook-id``, ``Idempotency-Key``). Without one, only a
                webhook is deduplicated by its body hash (per source); agent hooks repeat byte for byte on
                purpose (Claude Code's ``Stop`` every turn), so they are never deduplicated by content.
        """
        body_key = f"blake3:{hook.body_hash}" if hook.body_hash and hook.kind == "webhook" else None
        key = idempotency_key or body_key
        params = {
            **hook.row(),
            "data": hook.encoded_data().decode(),
            **self.publisher.staged_encoded_params(self.uow, HOOK_TOPIC, encoded_envelope_of(hook)),
        }
        # One statement is the whole transaction: committed by PostgreSQL in one round trip (no BEGIN/COMMIT).
        if key is None or self.window <= 0:
            await self.uow.commit_one(_STORE_ONE, params)
        else:
            scope, key = f"{hook.kind}:{hook.source}"[:120], key[:300]
            now = dt.datetime.now(dt.UTC)
            params |= {"scope": scope, "key": key, "now": now, "expires_at": now + dt.timedelta(seconds=self.window)}
            outcome: Any = (await self.uow.commit_one(_ACCEPT_ONE, params)).one()
            staged, holder = outcome[0], outcome[1]
            if not staged:
                if holder is None:  # the claim was committed after this statement's snapshot
                    holder = await self.uow.session.scalar(
                        select(IdempotencyClaim.event_id).where(
                            IdempotencyClaim.scope == scope, IdempotencyClaim.key == key
                        )
                    )
                return await self._duplicate(holder)
        self.live.push([hook.live()])  # committed: live viewers may see it
        return schemas.HookAccepted(event_id=hook.event_id, correlation_id=hook.correlation_id)

    async def accept_batch(
        self, hooks: list[AcceptedHook], *, batch_id: uuid.UUID, source: str, idempotency_key: str | None
    ) -> schemas.HookBatchAccepted:
        """Store and publish a batch in one transaction and commit; a repeated batch returns the original ids.

        Args:
            hooks: The prepared hooks.
            batch_id: The batch's id (stored on every row).
            source: The idempotency scope: the first event's source.
            idempotency_key: ``Idempotency-Key`` or the batch body's hash.
        """
        if idempotency_key is not None and self.window > 0:
            original = await self._claim(f"batch:{source}", idempotency_key, batch_id)
            if original is not None:
                return await self._duplicate_batch(original)
        # COPY on the unit of work's own connection (same transaction): per-row parameter binding through
        # SQLAlchemy costs more than everything else a batch does. The outbox's COPY is the publisher's.
        driver = await self.uow.driver_connection()
        await driver.copy_records_to_table(
            "hook_events", columns=_EVENT_COLUMNS, records=[_event_record(h) for h in hooks]
        )
        await self.publisher.stage_encoded(self.uow, HOOK_TOPIC, [encoded_envelope_of(h) for h in hooks])
        self.uow.after_commit(lambda: self.live.push([h.live() for h in hooks]))
        await self.uow.commit()
        return schemas.HookBatchAccepted(
            batch_id=batch_id,
            accepted=len(hooks),
            events=[schemas.HookAccepted(event_id=h.event_id, correlation_id=h.correlation_id) for h in hooks],
        )

    async def accept_tool_calls(self, pairs: Sequence[schemas.ToolCallPair]) -> None:
        """Store and publish each pair as a ``pre_tool_use`` and a ``post_tool_use`` hook (redacted like any hook),
        all in one transaction, as ``POST /hooks/batch`` does, and commit."""
        now = dt.datetime.now(dt.UTC)
        hooks: list[AcceptedHook] = []
        for pair in pairs:
            for event_type, at, data in (("pre_tool_use", pair.started_at, pair.pre),
                                         ("post_tool_use", pair.finished_at, pair.post)):  # fmt: skip
                hook = schemas.HookEventIn(
                    source=pair.source, event_type=event_type, session_id=pair.session_id,
                    correlation_id=pair.correlation_id, tool_name=pair.tool_name, tool_call_id=pair.tool_call_id,
                    timestamp=at, data=data,
                )  # fmt: skip
                hooks.append(self.prepare(hook, correlation_id=pair.correlation_id, key_id=pair.key_id, now=now,
                                          measure=True, namespace=pair.namespace))  # fmt: skip
        await self.accept_batch(hooks, batch_id=uuid.uuid4(), source="tool-calls", idempotency_key=None)

    async def _claim(self, scope: str, key: str, event_id: uuid.UUID) -> uuid.UUID | None:
        """Claim ``key`` for ``event_id``; the event that holds it already when this is a duplicate.

        Under READ COMMITTED a concurrent claim of the same key waits for the first transaction: after its
        commit the key is taken (a duplicate), after its rollback the claim goes through.
        """
        table = IdempotencyClaim.__table__
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.window)
        statement = pg_insert(IdempotencyClaim).values(
            scope=scope, key=key[:300], event_id=event_id, expires_at=expires
        )
        claimed = await self.uow.session.scalar(
            statement.on_conflict_do_update(
                index_elements=[table.c.scope, table.c.key],
                set_={"event_id": statement.excluded.event_id, "expires_at": statement.excluded.expires_at},
                where=table.c.expires_at < dt.datetime.now(dt.UTC),
            ).returning(table.c.event_id)
        )
        if claimed is not None:
            return None
        return await self.uow.session.scalar(
            select(IdempotencyClaim.event_id).where(IdempotencyClaim.scope == scope, IdempotencyClaim.key == key[:300])
        )

    async def _duplicate(self, event_id: uuid.UUID) -> schemas.HookAccepted:
        correlation_id = await self.uow.session.scalar(
            select(HookEvent.correlation_id).where(HookEvent.event_id == event_id)
        )
        await self.uow.rollback()
        return schemas.HookAccepted(event_id=event_id, correlation_id=correlation_id or "", status="duplicate")

    async def _duplicate_batch(self, batch_id: uuid.UUID) -> schemas.HookBatchAccepted:
        rows = (
            await self.uow.session.execute(
                select(HookEvent.event_id, HookEvent.correlation_id)
                .where(HookEvent.batch_id == batch_id)
                .order_by(HookEvent.id)
            )
        ).all()
        await self.uow.rollback()
        events = [
            schemas.HookAccepted(event_id=r.event_id, correlation_id=r.correlation_id, status="duplicate") for r in rows
        ]
        return schemas.HookBatchAccepted(batch_id=batch_id, accepted=len(events), events=events, status="duplicate")


def body_hash(body: bytes) -> str:
    """BLAKE3 hex digest of a request body."""
    return blake3.blake3(body).hexdigest()
