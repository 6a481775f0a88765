"""Platform tables: API keys and the audit log."""

from __future__ import annotations

import datetime as dt
import uuid

from advanced_alchemy.base import DefaultBase, UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Identity, Index, String, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["ApiKey", "AuditEntry"]


class ApiKey(UUIDv7AuditBase):
    """An API key. Only the SHA-256 of the key is stored; the key itself is shown once."""

    __tablename__ = "platform_api_keys"

    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), comment="First characters of the key, to recognise it")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(50)))
    namespaces: Mapped[list[str] | None] = mapped_column(ARRAY(String(255)), default=None)
    seeded: Mapped[bool] = mapped_column(default=False, comment="Created from OMNINODE_API_KEYS")
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class AuditEntry(DefaultBase):
    """One access decision or administrative action. Append-only."""

    __tablename__ = "platform_audit_log"
    __table_args__ = (
        Index("ix_platform_audit_log_action_id", "action", "id"),
        Index("ix_platform_audit_log_key_id", "key_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(64), comment="e.g. auth.failed, rate_limit.hit, api_key.created")
    outcome: Mapped[str] = mapped_column(String(16), comment="allowed or denied")
    key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    method: Mapped[str | None] = mapped_column(String(10), default=None)
    path: Mapped[str | None] = mapped_column(String(2048), default=None)
    correlation_id: Mapped[str | None] = mapped_column(String(128), default=None)
    detail: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict)
