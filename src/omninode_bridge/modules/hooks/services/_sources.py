"""Webhook sources: the third parties allowed to post to ``POST /hooks/{name}`` (admin CRUD, audited)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.models import WebhookSource
from omninode_bridge.modules.hooks.signatures import check_secret

__all__ = ["WebhookSourceService", "to_source"]


def to_source(row: WebhookSource) -> schemas.WebhookSource:
    """The listed form of a source (secrets are never shown)."""
    return schemas.WebhookSource(
        name=row.name, scheme=row.scheme, secret_count=len(row.secrets or []), description=row.description,
        namespace=row.namespace, event_type_header=row.event_type_header, event_type_path=row.event_type_path,
        default_event_type=row.default_event_type, enabled=row.enabled, endpoint=f"/hooks/{row.name}",
        created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


def _check(scheme: str, secrets: list[str]) -> None:
    if scheme != "none" and not secrets:
        raise ProblemError(
            422, f"A {scheme} source needs at least one secret.", extra={"errors": [{"field": "secrets"}]}
        )
    for secret in secrets:
        try:
            check_secret(scheme, secret)
        except ValueError as exc:
            raise ProblemError(422, f"Invalid secret: {exc}.", extra={"errors": [{"field": "secrets"}]}) from None


class WebhookSourceService:
    """Creates, lists, changes and deletes webhook sources; every change is audited and committed."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.audit = platform.AuditService(uow)

    async def get(self, name: str) -> WebhookSource | None:
        """The source called ``name``."""
        return await self.uow.session.get(WebhookSource, name)

    async def list(self) -> list[schemas.WebhookSource]:
        """Every source, by name."""
        rows = (await self.uow.session.scalars(select(WebhookSource).order_by(WebhookSource.name))).all()
        return [to_source(r) for r in rows]

    async def create(self, data: schemas.WebhookSourceCreate, *, actor: platform.Actor) -> schemas.WebhookSource:
        """Register a source.

        Raises:
            ProblemError: 409 when the name is taken; 422 for a reserved name or unusable secrets.
        """
        if data.name in schemas.RESERVED_SOURCE_NAMES:
            raise ProblemError(
                422, f"'{data.name}' is reserved by the hooks API.", extra={"errors": [{"field": "name"}]}
            )
        _check(data.scheme, data.secrets)
        if await self.get(data.name) is not None:
            raise ProblemError(409, f"A webhook source named {data.name} exists already.")
        now = dt.datetime.now(dt.UTC)
        row = WebhookSource(
            name=data.name, scheme=data.scheme, secrets=list(data.secrets), description=data.description,
            namespace=data.namespace,
            event_type_header=data.event_type_header, event_type_path=data.event_type_path,
            default_event_type=data.default_event_type, enabled=data.enabled, created_at=now, updated_at=now,
        )  # fmt: skip
        self.uow.session.add(row)
        self.audit.add(
            "hooks.source.created",
            "allowed",
            **actor.audit_fields(),
            detail={"source": data.name, "scheme": data.scheme},
        )
        await self.uow.commit()
        return to_source(row)

    async def update(
        self, name: str, data: schemas.WebhookSourceUpdate, *, actor: platform.Actor
    ) -> schemas.WebhookSource:
        """Change a source; ``secrets`` replaces the list (rotate by sending old and new, then only new).

        Raises:
            ProblemError: 404 when it does not exist; 422 for unusable secrets.
        """
        row = await self.uow.session.get(WebhookSource, name, with_for_update=True)
        if row is None:
            raise ProblemError(404, f"No webhook source named {name}.")
        changed = [f for f in data.__struct_fields__ if getattr(data, f) is not None]
        scheme = data.scheme or row.scheme
        secrets = list(data.secrets) if data.secrets is not None else list(row.secrets or [])
        _check(scheme, secrets)
        row.scheme, row.secrets = scheme, secrets
        for field in ("description", "namespace", "default_event_type", "enabled"):
            if getattr(data, field) is not None:
                setattr(row, field, getattr(data, field))
        for field in ("event_type_header", "event_type_path"):
            value = getattr(data, field)
            if value is not None:
                setattr(row, field, value or None)  # "" clears it
        row.updated_at = dt.datetime.now(dt.UTC)
        self.audit.add(
            "hooks.source.updated", "allowed", **actor.audit_fields(), detail={"source": name, "fields": changed}
        )
        await self.uow.commit()
        return to_source(row)

    async def delete(self, name: str, *, actor: platform.Actor) -> None:
        """Remove a source; its stored events stay.

        Raises:
            ProblemError: 404 when it does not exist.
        """
        row = await self.uow.session.get(WebhookSource, name)
        if row is None:
            raise ProblemError(404, f"No webhook source named {name}.")
        await self.uow.session.delete(row)
        self.audit.add("hooks.source.deleted", "allowed", **actor.audit_fields(), detail={"source": name})
        await self.uow.commit()
