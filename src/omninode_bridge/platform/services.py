"""API keys and the audit log. Services commit; repositories never do."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, select

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.db import Database, UnitOfWork, is_database_unavailable
from omninode_bridge.core.paging import Filter, newest_first
from omninode_bridge.platform import models, schemas

__all__ = [
    "KEY_PREFIX",
    "ApiKeyService",
    "AuditService",
    "KeySpec",
    "generate_key",
    "hash_key",
    "parse_key_specs",
    "record_audit",
]

log = structlog.get_logger(__name__)
#: The advisory lock that serialises key seeding across processes (an arbitrary constant of ours).
_SEED_LOCK = 0x6F6E625F6B657973  # "onb_keys"

KEY_PREFIX = "onb_"


def generate_key() -> str:
    """A new random API key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key.

    Generated keys carry 256 random bits, so a plain SHA-256 is not brute-forceable and keeps the
    per-request lookup cheap (a slow KDF would cost milliseconds on every request).
    """
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KeySpec(msgspec.Struct, frozen=True):
    """One key of ``OMNINODE_API_KEYS``."""

    name: str
    key: str
    scopes: tuple[str, ...]
    namespaces: tuple[str, ...] | None


def parse_key_specs(raw: str) -> list[KeySpec]:
    """Parse ``name:key[:scope+scope[:namespace+namespace]]`` entries, or bare keys, separated by commas.

    A bare key (an entry without ``:``) gets the admin scope and a name derived from its hash
    (``key-<first 8 hex digits of its SHA-256>``), stable across restarts so seeding stays idempotent.

    Raises:
        ValueError: An entry is malformed; the message names it by position, never by its key.
    """
    specs = []
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), start=1):
        parts = entry.split(":")
        if len(parts) == 1:
            parts = [f"key-{hash_key(entry)[:8]}", entry]
        if len(parts) > 4 or not parts[0] or len(parts[1]) < 16:
            raise ValueError(
                f"OMNINODE_API_KEYS entry {position} must be a key or 'name:key[:scopes[:namespaces]]' "
                "with a key of at least 16 characters"
            )
        scopes = tuple(parts[2].split("+")) if len(parts) > 2 and parts[2] else ("admin",)
        namespaces = tuple(parts[3].split("+")) if len(parts) > 3 and parts[3] else None
        specs.append(KeySpec(name=parts[0], key=parts[1], scopes=scopes, namespaces=namespaces))
    return specs


class ApiKeyRepository(SQLAlchemyAsyncRepository[models.ApiKey]):
    """API key rows."""

    model_type = models.ApiKey


def _to_schema(row: models.ApiKey, now: dt.datetime | None = None) -> schemas.ApiKey:
    now = now or _now()
    active = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    return schemas.ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes),
        namespaces=list(row.namespaces) if row.namespaces is not None else None,
        seeded=row.seeded,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        active=active,
    )


class AuditService:
    """Writes and pages the audit log inside a unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def add(self, action: str, outcome: str, **fields: Any) -> None:
        """Stage an entry in the current transaction (it commits with the change it describes)."""
        detail = fields.pop("detail", None) or {}
        self.uow.session.add(models.AuditEntry(action=action, outcome=outcome, detail=detail, **fields))

    async def page(
        self,
        *,
        limit: int,
        cursor: int | None = None,
        action: str | None = None,
        outcome: str | None = None,
        key_id: uuid.UUID | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> schemas.AuditPage:
        """Entries newest first, after ``cursor`` (an entry id), matching every filter given."""
        table = models.AuditEntry
        filters: list[Filter] = [
            (action, lambda: table.action == action),
            (outcome, lambda: table.outcome == outcome),
            (key_id, lambda: table.key_id == key_id),
            (since, lambda: table.occurred_at >= since),
            (until, lambda: table.occurred_at < until),
        ]
        rows, next_cursor = await newest_first(self.uow.session, table, limit=limit, cursor=cursor, filters=filters)
        items = [
            schemas.AuditEntry(
                id=r.id,
                occurred_at=r.occurred_at,
                action=r.action,
                outcome=r.outcome,
                key_id=r.key_id,
                client_ip=r.client_ip,
                method=r.method,
                path=r.path,
                correlation_id=r.correlation_id,
                detail=dict(r.detail or {}),
            )
            for r in rows
        ]
        return schemas.AuditPage(items=items, next_cursor=next_cursor)


async def record_audit(database: Database, action: str, outcome: str, **fields: Any) -> None:
    """Write one audit entry in its own transaction (access decisions outside any unit of work).

    When the database is unreachable the entry goes to the log instead, so an outage never turns a
    401 or 429 into a 500.
    """
    try:
        async with database.unit_of_work() as uow:
            AuditService(uow).add(action, outcome, **fields)
            await uow.commit()
    except Exception as exc:
        if not (is_database_unavailable(exc) or isinstance(exc, CircuitOpenError)):
            raise
        log.warning("audit entry not stored; database unavailable", action=action, outcome=outcome, **fields)


class ApiKeyService:
    """Creates, lists, verifies, revokes and seeds API keys."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.repository = ApiKeyRepository(session=uow.session, auto_commit=False, auto_expunge=False)
        self.audit = AuditService(uow)

    async def create(self, data: schemas.ApiKeyCreate, *, actor: uuid.UUID | None) -> schemas.ApiKeyCreated:
        """Create a key, audit it and commit; the plain key is in the response only."""
        key = generate_key()
        row = models.ApiKey(
            name=data.name,
            prefix=key[:12],
            key_hash=hash_key(key),
            scopes=sorted(set(data.scopes)),
            namespaces=sorted(set(data.namespaces)) if data.namespaces is not None else None,
            expires_at=data.expires_at,
        )
        await self.repository.add(row)
        self.audit.add("api_key.created", "allowed", key_id=actor, detail={"api_key_id": str(row.id)})
        await self.uow.commit()
        listed = _to_schema(row)
        return schemas.ApiKeyCreated(**msgspec.structs.asdict(listed), key=key)

    async def list(self, *, include_revoked: bool = False) -> list[schemas.ApiKey]:
        """Every key, newest first."""
        query = select(models.ApiKey).order_by(models.ApiKey.created_at.desc())
        if not include_revoked:
            query = query.where(models.ApiKey.revoked_at.is_(None))
        now = _now()
        return [_to_schema(r, now) for r in (await self.uow.session.scalars(query)).all()]

    async def revoke(self, key_id: uuid.UUID, *, actor: uuid.UUID | None) -> schemas.ApiKey | None:
        """Revoke a key (idempotent); None if it does not exist."""
        row = await self.repository.get_one_or_none(id=key_id)
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = _now()
            self.audit.add("api_key.revoked", "allowed", key_id=actor, detail={"api_key_id": str(row.id)})
            await self.uow.commit()
        return _to_schema(row)

    async def verify(self, key: str) -> schemas.Principal | None:
        """The principal of an active key, or None."""
        row = await self.uow.session.scalar(select(models.ApiKey).where(models.ApiKey.key_hash == hash_key(key)))
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= _now():
            return None
        return schemas.Principal(
            key_id=row.id,
            name=row.name,
            scopes=frozenset(row.scopes),
            namespaces=frozenset(row.namespaces) if row.namespaces is not None else None,
        )

    async def seed(self, specs: Sequence[KeySpec]) -> int:
        """Insert the keys of ``OMNINODE_API_KEYS`` that are not stored yet; returns how many were new.

        A seeded key that an admin revoked stays revoked. Processes starting at once seed one after the other (a
        transaction-level advisory lock): each would find the keys missing, and the second insert failed its
        start-up on the unique key hash.
        """
        await self.uow.session.execute(select(func.pg_advisory_xact_lock(_SEED_LOCK)))
        created = 0
        for spec in specs:
            digest = hash_key(spec.key)
            existing = await self.uow.session.scalar(select(models.ApiKey).where(models.ApiKey.key_hash == digest))
            if existing is not None:
                if existing.revoked_at is not None:
                    log.warning("seeded API key is revoked; leaving it revoked", name=spec.name)
                continue
            await self.repository.add(
                models.ApiKey(
                    name=spec.name,
                    prefix=spec.key[:12],
                    key_hash=digest,
                    scopes=sorted(set(spec.scopes)),
                    namespaces=sorted(set(spec.namespaces)) if spec.namespaces is not None else None,
                    seeded=True,
                )
            )
            self.audit.add("api_key.seeded", "allowed", detail={"name": spec.name})
            created += 1
        await self.uow.commit()
        return created
